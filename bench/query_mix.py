"""What the query benchmark asks: a support console's mix of requests, drawn from a manifest.

Each kind of request has a share of the mix and a p99 target. The requests of a kind come from a
pool drawn once from the manifest's sample (same seed, same pools): user ids, nickname prefixes
in every script the sample has (taken in turn, so rare scripts are asked too), phone queries,
users weighted by how many messages they got (with the heaviest few), and message ids of every
status and channel. Second pages need a cursor from a first page, and a message read as one of
its user's (the dashboard's way) needs that user, so their pools are made by the runner: from
first-page candidates, and from the message pool once each message's user is known.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import cycle
from typing import Any

from bench.manifest import CHANNELS, Manifest
from bench.traffic import STAGES

API = "/api/v1"
STATUSES = (*STAGES, "failed")


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    weight: int
    target_ms: float


KINDS = (
    Kind("search_id", "search: exact user id", 10, 50),
    Kind("search_nickname", "search: nickname prefix", 12, 50),
    Kind("search_phone", "search: phone digits", 8, 50),
    Kind("user", "user + stats (default window)", 10, 100),
    Kind("user_window", "user + stats, since/until", 8, 100),
    Kind("messages", "message list", 12, 100),
    Kind("messages_filtered", "message list, filtered", 10, 100),
    Kind("messages_page2", "message list, page 2 (cursor)", 8, 100),
    Kind("message", "message details, by id", 8, 50),
    Kind("message_of_user", "message details, of its user", 14, 50),
)
BY_NAME = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True, eq=False)
class Spec:
    """One request: its kind, whom it is about (a query, user id or message id), its path.

    Compared and hashed by identity: the floor's recorded requests are kept per spec."""

    kind: str
    subject: str
    path: str
    params: dict[str, str] = field(default_factory=dict)


def _dates(manifest: Manifest, rng: random.Random) -> dict[str, str]:
    """A since/until window as a dashboard offers them: last 7 days, all 90, or 14 days."""
    now = datetime.fromisoformat(manifest.now)
    start = datetime.fromisoformat(manifest.start)
    roll = rng.random()
    if roll < 0.35:
        return {"since": (now - timedelta(days=7)).date().isoformat()}
    if roll < 0.6:
        return {"since": start.date().isoformat(), "until": now.date().isoformat()}
    first = start + timedelta(days=rng.uniform(0, max(0.0, manifest.days - 14)))
    return {
        "since": first.date().isoformat(),
        "until": (first + timedelta(days=13)).date().isoformat(),
    }


class Pools:
    """Pools of `size` requests per kind, deterministic by seed."""

    def __init__(self, manifest: Manifest, *, seed: int, size: int) -> None:
        self.manifest = manifest
        self.rng = random.Random(seed)
        self.size = size
        sample: dict[str, Any] = manifest.sample
        self.uniform = [str(user["user_id"]) for user in sample["users"]]
        self.active = [str(u) for u in sample["active_users"]] or self.uniform
        self.heavy = [str(u) for u in sample["heavy_users"]]
        self.phones = [str(n) for n in sample["phones"]]
        self.prefixes: dict[str, list[str]] = {
            script: found for script, found in sample["nickname_prefixes"].items() if found
        }
        self.messages = sorted({m for ids in sample["messages"].values() for m in ids})

    def user(self) -> str:
        """A user someone looks up: mostly one who gets messages, some the heaviest, some any."""
        roll = self.rng.random()
        if roll < 0.7 or not self.uniform:
            return self.rng.choice(self.active)
        if roll < 0.8 and self.heavy:
            return self.rng.choice(self.heavy)
        return self.rng.choice(self.uniform)

    def filters(self) -> dict[str, str]:
        chosen = self.rng.sample(
            ("status", "channel", "template", "dates"), k=self.rng.randint(1, 2)
        )
        params: dict[str, str] = {}
        for name in chosen:
            if name == "status":
                params["status"] = self.rng.choice(STATUSES)
            elif name == "channel":
                params["channel"] = self.rng.choice(CHANNELS)
            elif name == "template":
                params["template"] = self.rng.choice(self.manifest.templates)
            else:
                params |= _dates(self.manifest, self.rng)
        return params

    def build(self) -> dict[str, list[Spec]]:
        """Every kind but messages_page2 and message_of_user, which the runner makes."""
        rng, n = self.rng, self.size
        scripts = cycle(sorted(self.prefixes))

        def search(kind: str, q: str) -> Spec:
            return Spec(kind, q, f"{API}/users", {"q": q})

        def user_spec(kind: str, params: dict[str, str]) -> Spec:
            user_id = self.user()
            return Spec(kind, user_id, f"{API}/users/{user_id}", params)

        def list_spec(kind: str, params: dict[str, str]) -> Spec:
            user_id = self.user()
            return Spec(kind, user_id, f"{API}/users/{user_id}/messages", params)

        ids = self.uniform + self.active
        pools = {
            "search_id": [search("search_id", rng.choice(ids)) for _ in range(n)],
            "search_nickname": [
                search("search_nickname", rng.choice(self.prefixes[next(scripts)]))
                for _ in range(n if self.prefixes else 0)
            ],
            "search_phone": [search("search_phone", rng.choice(self.phones)) for _ in range(n)],
            "user": [user_spec("user", {}) for _ in range(n)],
            "user_window": [user_spec("user_window", _dates(self.manifest, rng)) for _ in range(n)],
            "messages": [list_spec("messages", {}) for _ in range(n)],
            "messages_filtered": [list_spec("messages_filtered", self.filters()) for _ in range(n)],
            "message": [
                Spec("message", m, f"{API}/messages/{m}")
                for m in (rng.choice(self.messages) for _ in range(n))
            ],
        }
        return {kind: specs for kind, specs in pools.items() if specs}

    def of_their_users(self, messages: list[Spec], owners: dict[str, str]) -> list[Spec]:
        """The messages of `messages` whose user `owners` knows, each read as that user's."""
        return [
            Spec("message_of_user", spec.subject, f"{API}/users/{user}/messages/{spec.subject}")
            for spec in messages
            if (user := owners.get(spec.subject)) is not None
        ]

    def first_pages(self, count: int) -> list[Spec]:
        """Candidates for a second page: busy users' lists, some with one filter."""
        specs = []
        for _ in range(count):
            user_id = self.rng.choice(self.heavy + self.active)
            params: dict[str, str] = {}
            if self.rng.random() < 0.4:
                name = self.rng.choice(("status", "channel"))
                params[name] = self.rng.choice(STATUSES if name == "status" else CHANNELS)
            specs.append(Spec("messages_page2", user_id, f"{API}/users/{user_id}/messages", params))
        return specs
