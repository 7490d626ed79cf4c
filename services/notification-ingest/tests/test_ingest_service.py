"""The ingest use case on the real SQLite dedup store and the real in-process bus."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from ingest_support import RecordingBus, contract_events, delivered
from pydantic import ValidationError

from insights_common.auth import sign
from insights_common.bus import InProcessBus
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from insights_contracts import AnyEvent
from notification_ingest.adapters.sqlite import SqliteDedupStore
from notification_ingest.domain.errors import BatchTooLarge, MalformedBody, Unauthenticated
from notification_ingest.service import IngestService
from notification_ingest.settings import IngestSettings

pytestmark = pytest.mark.unit


def make_service(db: SqliteDatabase, bus: InProcessBus, keys: SqliteKeyStore) -> IngestService:
    return IngestService(dedup=SqliteDedupStore(db), publisher=bus, secrets=keys, max_batch=1000)


async def test_new_events_are_published_once_in_their_order(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    items = contract_events()
    result = await make_service(db, bus, keys).ingest(app_id="acme", items=items)

    assert (result.accepted, result.duplicates, result.rejected) == (len(items), 0, ())
    assert len(bus.calls) == 1
    assert [e.event_id for e in bus.calls[0]] == [item["event_id"] for item in items]
    # The bus splits the batch per topic; every event reaches a subscriber exactly once.
    assert sorted(e.event_id for e in bus.received) == sorted(item["event_id"] for item in items)


async def test_repeats_within_a_batch_and_across_batches_are_counted_not_published(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    service = make_service(db, bus, keys)
    first = await service.ingest(
        app_id="acme",
        items=[delivered("acme", event_id) for event_id in ("d1", "d2", "d1")],
    )
    second = await service.ingest(
        app_id="acme", items=[delivered("acme", "d2"), delivered("acme", "d3")]
    )

    assert (first.accepted, first.duplicates) == (2, 1)
    assert (second.accepted, second.duplicates) == (1, 1)
    assert [e.event_id for e in bus.received] == ["d1", "d2", "d3"]


async def test_a_batch_of_only_duplicates_publishes_nothing(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    service = make_service(db, bus, keys)
    await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    again = await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    assert (again.accepted, again.duplicates) == (0, 1)
    assert len(bus.calls) == 1


async def test_dedup_survives_a_restart_on_the_same_file(
    db_path: Path, keys: SqliteKeyStore
) -> None:
    before = SqliteDatabase(db_path)
    try:
        await make_service(before, InProcessBus(), keys).ingest(
            app_id="acme", items=[delivered("acme", "d1")]
        )
    finally:
        before.close()

    after = SqliteDatabase(db_path)
    try:
        published: list[AnyEvent] = []

        async def collect(batch: Sequence[AnyEvent]) -> None:
            published.extend(batch)

        bus = InProcessBus()
        bus.subscribe(["insights.notifications.v1"], collect, group="collector")
        result = await make_service(after, bus, keys).ingest(
            app_id="acme", items=[delivered("acme", "d1"), delivered("acme", "d2")]
        )
    finally:
        after.close()

    assert (result.accepted, result.duplicates) == (1, 1)
    assert [e.event_id for e in published] == ["d2"]


async def test_the_same_event_id_in_two_apps_is_two_events(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    service = make_service(db, bus, keys)
    acme = await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    globex = await service.ingest(app_id="globex", items=[delivered("globex", "d1")])
    assert (acme.accepted, globex.accepted) == (1, 1)
    assert [(e.app_id, e.event_id) for e in bus.received] == [("acme", "d1"), ("globex", "d1")]


async def test_valid_events_are_taken_when_others_in_the_batch_are_rejected(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    items: list[object] = [
        delivered("acme", "d1"),
        {**delivered("acme", "d2"), "user_id": "bad id"},
        delivered("acme", "d3"),
        {**delivered("acme", "d4"), "app_id": "globex"},
    ]
    result = await make_service(db, bus, keys).ingest(app_id="acme", items=items)

    assert (result.accepted, result.duplicates) == (2, 0)
    assert [(r.index, r.event_id, [e.loc for e in r.errors]) for r in result.rejected] == [
        (1, "d2", ["user_id"]),
        (3, "d4", ["app_id"]),
    ]
    assert [e.event_id for e in bus.received] == ["d1", "d3"]


async def test_a_rejected_event_is_not_remembered_so_its_fix_is_taken(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    service = make_service(db, bus, keys)
    broken = await service.ingest(
        app_id="acme", items=[{**delivered("acme", "d1"), "message_id": ""}]
    )
    fixed = await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    assert (broken.accepted, len(broken.rejected)) == (0, 1)
    assert (fixed.accepted, fixed.duplicates) == (1, 0)


class FailingOncePublisher:
    def __init__(self) -> None:
        self.attempts = 0
        self.published: list[AnyEvent] = []

    async def publish(self, events: Sequence[AnyEvent]) -> tuple[()]:
        self.attempts += 1
        if self.attempts == 1:
            raise ConnectionError("broker unavailable")
        self.published.extend(events)
        return ()


async def test_events_are_remembered_only_after_they_were_published(
    db: SqliteDatabase, keys: SqliteKeyStore
) -> None:
    publisher = FailingOncePublisher()
    service = IngestService(
        dedup=SqliteDedupStore(db), publisher=publisher, secrets=keys, max_batch=1000
    )
    with pytest.raises(ConnectionError):
        await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    retried = await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    assert (retried.accepted, retried.duplicates) == (1, 0)
    assert [e.event_id for e in publisher.published] == ["d1"]


async def test_a_webhook_for_an_app_without_secret_is_refused(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    body = b'{"event_id": "d1"}'
    with pytest.raises(Unauthenticated, match="does not match"):
        await make_service(db, bus, keys).receive_webhook(
            app_id="nobody", signature=sign("guess", body), body=body
        )
    assert bus.calls == []


async def test_a_signed_body_is_decoded_after_the_signature_is_checked(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore, acme_secret: str
) -> None:
    body = b"not json"
    service = make_service(db, bus, keys)
    with pytest.raises(Unauthenticated):
        await service.receive_webhook(app_id="acme", signature=sign("wrong", body), body=body)
    with pytest.raises(MalformedBody):
        await service.receive_webhook(app_id="acme", signature=sign(acme_secret, body), body=body)


async def test_the_batch_limit_comes_from_the_service_settings(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore, acme_secret: str
) -> None:
    service = IngestService(dedup=SqliteDedupStore(db), publisher=bus, secrets=keys, max_batch=2)
    body = orjson.dumps([delivered("acme", f"d{n}") for n in range(3)])
    with pytest.raises(BatchTooLarge, match="has 3 events; send at most 2"):
        await service.receive_webhook(app_id="acme", signature=sign(acme_secret, body), body=body)
    assert bus.calls == []


def test_settings_are_read_from_ingest_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert IngestSettings().max_batch == 1000
    assert IngestSettings().max_body_bytes == 10 * 1024 * 1024
    monkeypatch.setenv("INGEST_MAX_BATCH", "50")
    monkeypatch.setenv("INGEST_MAX_BODY_BYTES", "4096")
    assert (IngestSettings().max_batch, IngestSettings().max_body_bytes) == (50, 4096)


def test_the_dedup_window_is_read_in_days_and_zero_keeps_ids_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert IngestSettings().dedup_window == timedelta(days=30)
    monkeypatch.setenv("INGEST_DEDUP_DAYS", "2")
    assert IngestSettings().dedup_window == timedelta(days=2)
    monkeypatch.setenv("INGEST_DEDUP_DAYS", "0")
    assert IngestSettings().dedup_window is None
    monkeypatch.setenv("INGEST_DEDUP_DAYS", "-1")
    with pytest.raises(ValidationError, match="dedup_days"):
        IngestSettings()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def windowed_service(
    db: SqliteDatabase,
    bus: InProcessBus,
    keys: SqliteKeyStore,
    clock: Clock,
    window: timedelta | None,
) -> IngestService:
    return IngestService(
        dedup=SqliteDedupStore(db, clock=clock),
        publisher=bus,
        secrets=keys,
        max_batch=1000,
        dedup_window=window,
        clock=clock,
    )


async def test_an_event_sent_again_after_the_dedup_window_is_taken_again(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    clock = Clock(datetime(2026, 11, 2, 10, tzinfo=UTC))
    service = windowed_service(db, bus, keys, clock, timedelta(days=1))
    await service.ingest(app_id="acme", items=[delivered("acme", "d1")])

    clock.now += timedelta(hours=23)
    assert await service.forget_old_ids() == 0
    again = await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    assert (again.accepted, again.duplicates) == (0, 1)

    clock.now += timedelta(hours=2)
    assert await service.forget_old_ids() == 1
    later = await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    assert (later.accepted, later.duplicates) == (1, 0)
    assert [e.event_id for e in bus.received] == ["d1", "d1"]


async def test_without_a_window_no_id_is_forgotten(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    clock = Clock(datetime(2026, 11, 2, 10, tzinfo=UTC))
    service = windowed_service(db, bus, keys, clock, None)
    await service.start()
    await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    clock.now += timedelta(days=3650)
    assert await service.forget_old_ids() == 0
    again = await service.ingest(app_id="acme", items=[delivered("acme", "d1")])
    assert again.duplicates == 1
    await service.stop()


async def test_a_started_service_forgets_old_ids_at_once_and_stops_cleanly(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    clock = Clock(datetime(2026, 11, 2, 10, tzinfo=UTC))
    service = windowed_service(db, bus, keys, clock, timedelta(days=1))
    await service.ingest(app_id="acme", items=[delivered("acme", "d1"), delivered("acme", "d2")])
    clock.now += timedelta(days=2)
    store = SqliteDedupStore(db)

    await service.start()
    try:
        for _ in range(200):
            if not await store.seen("acme", ["d1", "d2"]):
                break
            await asyncio.sleep(0.01)
        assert await store.seen("acme", ["d1", "d2"]) == set()
    finally:
        await service.stop()
    await service.stop()  # stopping twice is harmless
