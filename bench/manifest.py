"""What bench.generate loaded, and where: the manifest bench.query reads.

The sample is drawn while the data streams past (reservoirs, with their own random generator, so
sampling never changes the data): users uniformly, users weighted by the messages they got,
the heaviest users, nickname prefixes per script, phone queries, and message ids per status and
per channel.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.people import SCRIPTS, Person
from bench.traffic import STAGES, Sent
from insights_query.domain.search import words

DEFAULT_PATH = Path(tempfile.gettempdir()) / "insights-bench" / "manifest.json"
CHANNELS = ("in_app", "push", "sms", "alimtalk", "whatsapp", "email")
SAMPLE = 400
PER_CATEGORY = 100


@dataclass
class Deployment:
    """How to reach a loaded deployment, and how to remove it when this run started it."""

    url: str
    key: str
    secret: str
    app: str
    opensearch_url: str
    index_prefix: str
    topic_prefix: str
    partitions: int
    how: str
    run: str | None = None  # the Names of a deployment bench.generate started
    work: str | None = None
    pids: dict[str, list[int]] = field(default_factory=dict)
    kept: bool = False


@dataclass
class Manifest:
    seed: int
    users: int
    messages: int
    events: int
    days: float
    zipf: float
    now: str
    start: str
    templates: list[str]
    sample: dict[str, Any]
    figures: dict[str, Any]
    deployment: Deployment | None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # It holds the deployment's API key and webhook secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out, ensure_ascii=False, indent=1, default=str)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.exists():
            raise SystemExit(
                f"no manifest at {path}: load a deployment first with"
                " `python -m bench.generate --users N --messages M --keep`"
            )
        raw = json.loads(path.read_text())
        deployment = raw.pop("deployment")
        return cls(**raw, deployment=Deployment(**deployment) if deployment else None)


class _Reservoir:
    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        self.size = size
        self.items: list[Any] = []
        self.seen = 0

    def offer(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            slot = self.rng.randrange(self.seen)
            if slot < self.size:
                self.items[slot] = item


class Sampler:
    """Reservoirs fed as users and messages are generated."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed ^ 0x5A5A5A)
        self.users = _Reservoir(self.rng, SAMPLE)
        self.active = _Reservoir(self.rng, SAMPLE)
        self.messages = {
            name: _Reservoir(self.rng, PER_CATEGORY)
            for name in (*STAGES, "failed", "responded", *CHANNELS)
        }

    def user(self, who: Person, phone: str) -> None:
        self.users.offer((who, phone))

    def message(self, sent: Sent) -> None:
        self.active.offer(sent.user_id)
        self.messages[sent.status].offer(sent.message_id)
        self.messages[sent.channel].offer(sent.message_id)
        if sent.responded:
            self.messages["responded"].offer(sent.message_id)

    def result(self, heavy: list[str]) -> dict[str, Any]:
        people: list[tuple[Person, str]] = self.users.items
        return {
            "users": [
                {"user_id": p.user_id, "nickname": p.nickname, "script": p.script, "phone": n}
                for p, n in people
            ],
            "active_users": self.active.items,
            "heavy_users": heavy,
            "nickname_prefixes": self._prefixes(people),
            "phones": self._phones([n for _, n in people]),
            "messages": {name: r.items for name, r in self.messages.items()},
        }

    def _prefixes(self, people: list[tuple[Person, str]]) -> dict[str, list[str]]:
        """2 to 4 leading letters of a word of the nickname, as someone would type them."""
        found: dict[str, list[str]] = {script: [] for script in SCRIPTS}
        for who, _ in people:
            typed = [w for w in words(who.nickname or "") if len(w) >= 2 and not w.isdigit()]
            if typed:
                word = self.rng.choice(typed)
                found[who.script].append(word[: self.rng.randint(2, min(4, len(word)))])
        return found

    def _phones(self, numbers: list[str]) -> list[str]:
        """The number as E.164, its digits, or the first 7+ of its digits."""
        queries = []
        for number in numbers:
            form = self.rng.randrange(3)
            digits = number.lstrip("+")
            if form == 0:
                queries.append(number)
            elif form == 1:
                queries.append(digits)
            else:
                queries.append(digits[: self.rng.randint(7, len(digits) - 1)])
        return queries
