"""Killing the projector in the middle of a stream loses and doubles nothing.

The projector commits its Kafka offsets only after a batch is written to OpenSearch, so a kill
replays at most the batches it had not committed, and the projection absorbs the replay (a
message's state is a function of the set of its events). The test checks the figures the API
derives from every document: per-user counts, message lists and per-template-version counts.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from tests.dates import at, day
from tests.deployments import eventually_true
from tests.e2e.test_flow import post_events

if TYPE_CHECKING:
    from tests.deployments import DistributedDeployment

pytestmark = pytest.mark.e2e

USERS = [f"user{n:02d}" for n in range(20)]


def stream(seed: int = 7) -> tuple[list[dict[str, Any]], dict[str, Counter[str]]]:
    """Events of 300 messages (sent, then mostly delivered, some read and clicked), shuffled in
    small windows as a platform sends them, and the counts each user must end with."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    expected: dict[str, Counter[str]] = {user: Counter() for user in USERS}

    def event(kind: str, n: int, message: str, user: str, minute: int, **extra: Any) -> None:
        events.append(
            {
                "event_id": f"{kind}-{n}",
                "event_type": f"notification.{kind}",
                "schema_version": 1,
                "app_id": "acme",
                "occurred_at": at(f"{minute // 60:02d}:{minute % 60:02d}:00"),
                "message_id": message,
                "user_id": user,
                **extra,
            }
        )

    for n in range(300):
        user = USERS[n % len(USERS)]
        message = f"m{n:04d}"
        version = 1 + n % 3
        event(
            "sent",
            n,
            message,
            user,
            n,
            channel="push",
            template={"key": "weekly_digest", "name": "Weekly digest", "version": version},
            content={"title": "Your week", "body": f"Digest {n}"},
        )
        expected[user]["sent"] += 1
        if rng.random() < 0.9:
            event("delivered", n, message, user, n + 1)
            expected[user]["delivered"] += 1
            if rng.random() < 0.5:
                event("read", n, message, user, n + 2)
                expected[user]["read"] += 1
                if rng.random() < 0.4:
                    event("clicked", n, message, user, n + 3)
                    expected[user]["clicked"] += 1
    for start in range(0, len(events), 20):
        window = events[start : start + 20]
        rng.shuffle(window)
        events[start : start + 20] = window
    return events, expected


def post(deployment: DistributedDeployment, secret: str, batch: list[dict[str, Any]]) -> None:
    answer = post_events(deployment, secret, batch)
    assert answer.status_code == 202, answer.text
    assert answer.json()["rejected"] == []


def test_killing_the_projector_mid_stream_loses_and_doubles_nothing(
    distributed: DistributedDeployment,
) -> None:
    # Small batches keep the projector busy through the stream, so the kill lands between a
    # batch it has read and the commit of that batch (each batch also waits for the index's
    # refresh, up to a second, before its commit).
    distributed.stop_one("projector")
    distributed.env["QUERY_PROJECTOR_BATCH"] = "25"
    distributed.start("projector")
    distributed.wait_ready("projector")
    key = distributed.cli("keys", "create", "--app", "acme")
    secret = distributed.cli("webhooks", "secret", "--app", "acme")
    events, expected = stream()
    batches = [events[start : start + 25] for start in range(0, len(events), 25)]
    half = len(batches) // 2

    with distributed.client(key) as api:

        def sent_so_far() -> int:
            return sum(
                api.get(f"/api/v1/users/{user}", params={"since": str(day(-1))})
                .json()
                .get("stats", {})
                .get("sent", 0)
                for user in USERS[:3]
            )

        for batch in batches[:half]:
            post(distributed, secret, batch)
        # Kill it once it is busy with the stream: some of it is projected, not all of it.
        eventually_true(lambda: sent_so_far() > 0)
        distributed.kill("projector")
        for batch in batches[half:]:
            post(distributed, secret, batch)
        distributed.start("projector")
        distributed.wait_ready("projector")

        def user_counts(user: str) -> dict[str, int]:
            stats = api.get(f"/api/v1/users/{user}", params={"since": str(day(-1))}).json()["stats"]
            return {k: stats[k] for k in ("sent", "delivered", "read", "clicked")}

        eventually_true(
            lambda: all(
                user_counts(user) == {k: expected[user][k] for k in user_counts(user)}
                for user in USERS
            ),
            limit=60,
        )
        for user in USERS:
            listed = api.get(f"/api/v1/users/{user}/messages", params={"limit": 200}).json()
            ids = [m["message_id"] for m in listed["items"]]
            assert len(ids) == len(set(ids)) == expected[user]["sent"]

        template = api.get("/api/v1/templates/weekly_digest").json()
        sent_by_version = {v["version"]: v["sent"] for v in template["versions"]}
        assert sent_by_version == {1: 100, 2: 100, 3: 100}
