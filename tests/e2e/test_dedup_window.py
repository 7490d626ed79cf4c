"""Ingest remembers taken event ids for a window (INGEST_DEDUP_DAYS), then forgets them: an
event sent again after that is taken again, and the message the API shows does not change."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from insights_common.clock import sortable
from tests.deployments import EmbeddedDeployment, eventually_true
from tests.e2e.test_flow import LIFECYCLE, SENT, post_events

if TYPE_CHECKING:
    from tests.conftest import Deployment

pytestmark = pytest.mark.e2e


def age_taken_event_ids(deployment: Deployment, days: int) -> None:
    """Make every event id the deployment's ingest took look taken `days` ago."""
    if isinstance(deployment, EmbeddedDeployment):
        then = sortable(datetime.now(UTC) - timedelta(days=days))
        path = deployment.data_dir / "insights.db"
        with closing(sqlite3.connect(path, timeout=30)) as conn, conn:
            conn.execute("UPDATE ing_seen_events SET seen_at = ?", (then,))
        return

    async def age() -> None:
        conn = await asyncpg.connect(deployment.postgres)
        try:
            await conn.execute(
                f'UPDATE "{deployment.schema}".ing_seen_events'  # noqa: S608 - the test's schema
                " SET seen_at = now() - make_interval(days => $1)",
                days,
            )
        finally:
            await conn.close()

    asyncio.run(age())


def test_an_event_sent_again_after_the_dedup_window_is_taken_again(
    deployment: Deployment,
) -> None:
    key = deployment.cli("keys", "create", "--app", "acme")
    secret = deployment.cli("webhooks", "secret", "--app", "acme")
    read = LIFECYCLE[0]

    def taken(events: list[dict[str, Any]]) -> tuple[int, int]:
        answer = post_events(deployment, secret, events)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        return body["accepted"], body["duplicates"]

    assert taken([SENT, read]) == (2, 0)
    assert taken([SENT, read]) == (0, 2)

    # Within the default window (30 days), a restart forgets nothing.
    age_taken_event_ids(deployment, 29)
    deployment.restart()
    assert taken([SENT]) == (0, 1)

    # Past it, the ingest forgets the ids as it starts, and takes the events again.
    age_taken_event_ids(deployment, 31)
    deployment.restart()
    eventually_true(lambda: taken([SENT]) == (1, 0))
    assert taken([SENT, read]) == (1, 1)  # the read event's id was forgotten with it
    assert taken([SENT, read]) == (0, 2)

    # The projections fold a message's events by id: taking one again changes nothing shown.
    with deployment.client(key) as api:

        def message() -> dict[str, Any]:
            answer = api.get("/api/v1/messages/m1")
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        eventually_true(lambda: message()["status"] == "read")
        assert [step["status"] for step in message()["timeline"]] == ["sent", "read"]
