"""Dead letters in both modes, from the failure to `insights dlq list` and `insights dlq replay`.

The realistic case: a projection bug (simulated by a store wrapper that cannot apply one
message's events) sends that event to the dead letters while the others are applied; once the bug
is fixed (the wrapper removed), `insights dlq replay` sends it back and the projection takes it.
The embedded import stays all or nothing: an event the projector cannot apply fails the import,
and nothing of it is visible.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from import_svc.adapters.sqlite import SqliteImportStore
from import_svc.app import HttpDoor, build_imports
from import_svc.domain.model import ImportOptions, ImportStatus
from import_svc.settings import ImportSettings
from insights_common.audit import GroupedAuditLog
from insights_common.auth import SecretBox
from insights_common.bus import AtOnce, InProcessBus
from insights_common.http.access import Access
from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_common.settings import KafkaSettings
from insights_common.sqlite.audit import SqliteAuditLog
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.dead_letters import SqliteDeadLetters
from insights_common.sqlite.keys import SqliteKeyStore
from insights_common.sqlite.members import SqliteMemberStore
from insights_contracts import AnyEvent, parse_event
from insights_contracts.topics import NOTIFICATIONS
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.app import EMBEDDED_PROJECTOR, build_projector
from insights_query.settings import QuerySettings
from notification_ingest.adapters.sqlite import (
    SqliteDedupStore,
    SqlitePendingCallbacks,
    SqlitePhoneDirectory,
)
from notification_ingest.app import build_ingest
from notification_ingest.settings import IngestSettings
from tests.conftest import INSIGHTS

pytestmark = pytest.mark.e2e


class BuggyStore:
    """The real store, except that it cannot apply the events of `broken` messages or users."""

    def __init__(self, inner: Any, broken: set[str]) -> None:
        self.inner = inner
        self.broken = broken

    async def apply(self, events: Sequence[AnyEvent]) -> None:
        for event in events:
            if {getattr(event, "message_id", None), getattr(event, "user_id", None)} & self.broken:
                raise RuntimeError(f"projection bug on {event.event_id}")
        await self.inner.apply(events)

    async def erased(self, users: Any) -> Any:
        return await self.inner.erased(users)

    async def erase(self, erasures: Any) -> None:
        await self.inner.erase(erasures)

    async def ping(self) -> bool:
        return bool(await self.inner.ping())


def sent(message_id: str, user_id: str = "alex", minute: int = 0) -> dict[str, Any]:
    return {
        "event_id": f"sent-{message_id}",
        "event_type": "notification.sent",
        "schema_version": 1,
        "app_id": "acme",
        "occurred_at": f"2026-11-02T10:{minute:02d}:00Z",
        "message_id": message_id,
        "user_id": user_id,
        "channel": "push",
        "template": {"key": "order_shipped", "name": "Order shipped", "version": 3},
        "content": {"title": "Your order shipped", "body": f"Order {message_id} is on its way"},
    }


def insights(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INSIGHTS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**(env or os.environ), "COLUMNS": "250"},
    )


def listed(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = insights("dlq", "list", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def wait_for(check: Callable[[], Awaitable[bool]], limit: float = 60) -> Awaitable[None]:
    async def wait() -> None:
        deadline = asyncio.get_running_loop().time() + limit
        while not await check():
            assert asyncio.get_running_loop().time() < deadline, "not reached in time"
            await asyncio.sleep(0.1)

    return wait()


# -- embedded -------------------------------------------------------------------------------


async def ingest_with_a_bug(data_dir: Path) -> None:
    """The embedded ingest and projector, on the data dir, with the projection bug on m2."""
    db = SqliteDatabase(data_dir / "insights.db")
    try:
        bus = InProcessBus(dead_letters=SqliteDeadLetters(db))
        build_projector(
            store=BuggyStore(SqliteInsightsStore(db), broken={"m2"}),
            bus=bus,
            group=EMBEDDED_PROJECTOR,
            settings=QuerySettings(),
        )
        keys = SqliteKeyStore(db, SecretBox.from_data_dir(data_dir))
        service = build_ingest(
            dedup=SqliteDedupStore(db),
            publisher=bus.isolating(),
            watermark=AtOnce(),
            keys=keys,
            phones=SqlitePhoneDirectory(db),
            pending=SqlitePendingCallbacks(db),
            users=bus,
            raw=None,
            healthy=None,
            settings=IngestSettings(),
        ).service
        result = await service.ingest(
            app_id="acme", items=[sent("m1"), sent("m2", minute=1), sent("m3", "bo", 2)]
        )
        assert (result.accepted, result.rejected) == (3, ())
    finally:
        db.close()


async def messages(data_dir: Path) -> list[str]:
    db = SqliteDatabase(data_dir / "insights.db")
    try:
        store = SqliteInsightsStore(db)
        return [m for m in ("m1", "m2", "m3") if await store.get_message("acme", m)]
    finally:
        db.close()


def test_embedded_dead_letters_are_listed_and_replayed_once_the_bug_is_fixed(
    data_dir: Path,
) -> None:
    asyncio.run(ingest_with_a_bug(data_dir))
    assert asyncio.run(messages(data_dir)) == ["m1", "m3"]
    where = ("--data-dir", str(data_dir))

    before = listed(*where)
    assert (before["total"], before["pending"]) == (1, 1)
    [letter] = before["items"]
    assert letter["topic"] == NOTIFICATIONS
    assert letter["consumer"] == "insights-projector"
    assert letter["error"] == "RuntimeError: projection bug on sent-m2"
    assert parse_event(letter["value"]) == parse_event(sent("m2", minute=1))
    assert letter["key"] == "acme:alex" and letter["replayed"] is False
    table = insights("dlq", "list", *where)
    assert table.returncode == 0 and "pending" in table.stdout and "sent-m2" in table.stdout

    # The fix is deployed: the CLI's own wiring has the real store.
    replay = insights("dlq", "replay", "--all", *where)
    assert replay.returncode == 0, replay.stderr
    assert f"replayed 1 dead letters: 1 to {NOTIFICATIONS}" in replay.stdout
    assert asyncio.run(messages(data_dir)) == ["m1", "m2", "m3"]
    after = listed(*where)
    assert (after["total"], after["pending"]) == (1, 0)
    assert after["items"][0]["replayed"] is True

    again = insights("dlq", "replay", "--id", letter["id"], *where)
    assert again.returncode == 0, again.stderr
    assert listed(*where)["total"] == 1
    assert insights("dlq", "replay", "--all", *where).stdout.startswith("nothing to replay")
    unknown = insights("dlq", "replay", "--id", "999", *where)
    assert unknown.returncode == 1 and "999" in unknown.stderr
    assert insights("dlq", "replay", *where).returncode == 2


async def import_with_a_bug(data_dir: Path) -> tuple[ImportStatus, list[str], int]:
    db = SqliteDatabase(data_dir / "insights.db")
    try:
        letters = SqliteDeadLetters(db)
        bus = InProcessBus(dead_letters=letters)
        store = SqliteInsightsStore(db)
        build_projector(
            store=BuggyStore(store, broken={"kim"}),
            bus=bus,
            group=EMBEDDED_PROJECTOR,
            settings=QuerySettings(),
        )
        keys = SqliteKeyStore(db, SecretBox.from_data_dir(data_dir))
        imports = build_imports(
            store=SqliteImportStore(db),
            publisher=bus,
            watermark=AtOnce(),
            users=bus,
            door=HttpDoor(Access(keys, SqliteMemberStore(db)), GroupedAuditLog(SqliteAuditLog(db))),
            settings=ImportSettings(data_dir=data_dir),
        ).service
        csv = b"user_id,phone_number\nalex,+14155550171\nkim,+821012345678\nsam,+447911123456\n"
        record = await imports.run_import(
            app_id="acme", filename="users.csv", chunks=iter([csv]), options=ImportOptions()
        )
        visible = [u for u in ("alex", "kim", "sam") if await store.get_user("acme", u)]
        return record.status, visible, (await letters.listing(topic=None, limit=5)).total
    finally:
        db.close()


def test_an_embedded_import_the_projector_cannot_apply_fails_whole(data_dir: Path) -> None:
    status, visible, dead_letters = asyncio.run(import_with_a_bug(data_dir))

    assert status == ImportStatus.FAILED
    assert visible == []
    assert dead_letters == 0


# -- distributed ----------------------------------------------------------------------------


async def project_with_a_bug_then_fixed(
    *, bootstrap: str, prefix: str, search: OpenSearchInsightsStore, env: dict[str, str]
) -> None:
    options = KafkaOptions(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=2)
    # The topic's dead letters alone: the kept callbacks are the PostgreSQL's of a deployment.
    on_kafka = ("--topic", NOTIFICATIONS, "--distributed")
    settings = QuerySettings(kafka=KafkaSettings(projector_group="insights-projector"))
    events = [parse_event(e) for e in (sent("m1"), sent("m2", minute=1), sent("m3", "bo", 2))]

    async def projected(*wanted: str) -> bool:
        return all([await search.get_message("acme", m) for m in wanted])

    buggy_bus, publisher = KafkaBus(options), KafkaBus(options)
    buggy = BuggyStore(search, broken={"m2"})
    build_projector(
        store=buggy,
        bus=buggy_bus,
        group=settings.kafka.projector_group,
        settings=settings,
        consumers=settings.projector_consumers,
        healthy=buggy.ping,
    )
    await buggy_bus.start()
    await publisher.start()
    try:
        await publisher.publish(events)
        await wait_for(lambda: projected("m1", "m3"))

        async def dead_lettered() -> bool:
            return bool((await asyncio.to_thread(listed, *on_kafka, env=env))["total"])

        await wait_for(dead_lettered)
    finally:
        await buggy_bus.stop()
        await publisher.stop()
    assert await search.get_message("acme", "m2") is None

    letters = await asyncio.to_thread(listed, *on_kafka, env=env)
    assert (letters["total"], letters["pending"]) == (1, 1)
    [letter] = letters["items"]
    assert letter["topic"] == NOTIFICATIONS
    assert letter["consumer"] == f"{prefix}insights-projector"
    assert letter["error"] == "RuntimeError: projection bug on sent-m2"
    assert letter["id"] == f"{NOTIFICATIONS}:{letter['partition']}:{letter['offset']}"
    assert letter["source_offset"] is not None and letter["failed_at"].endswith("Z")

    # The fixed projector is deployed, then the dead letter replayed.
    fixed_bus = KafkaBus(options)
    build_projector(
        store=search,
        bus=fixed_bus,
        group=settings.kafka.projector_group,
        settings=settings,
        consumers=settings.projector_consumers,
        healthy=search.ping,
    )
    await fixed_bus.start()
    try:
        replay = await asyncio.to_thread(insights, "dlq", "replay", "--all", *on_kafka, env=env)
        assert replay.returncode == 0, replay.stderr
        assert f"replayed 1 dead letters: 1 to {NOTIFICATIONS}" in replay.stdout
        await wait_for(lambda: projected("m1", "m2", "m3"))
    finally:
        await fixed_bus.stop()
    after = await asyncio.to_thread(
        listed, "--topic", f"{NOTIFICATIONS}.dlq", "--distributed", env=env
    )
    assert (after["total"], after["pending"]) == (1, 0)
    assert after["items"][0]["replayed"] is True


def test_distributed_dead_letters_are_listed_and_replayed_once_the_bug_is_fixed(
    kafka_bootstrap: str, topic_prefix: str, opensearch_url: str, os_prefix: str
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
    }

    async def run() -> None:
        client = create_client(opensearch_url)
        try:
            search = OpenSearchInsightsStore(client, prefix=os_prefix, refresh=True)
            await search.ensure_indices()
            await project_with_a_bug_then_fixed(
                bootstrap=kafka_bootstrap, prefix=topic_prefix, search=search, env=env
            )
        finally:
            await client.close()

    asyncio.run(run())
