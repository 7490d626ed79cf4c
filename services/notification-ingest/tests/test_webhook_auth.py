"""Who may post to the webhook: both signature forms, the tolerance on a fixed clock, the app's
timestamped-only switch and a rotated secret's overlap, on the real SQLite key store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from ingest_support import RecordingBus, delivered

from insights_common.auth import sign
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from notification_ingest.adapters.sqlite import SqliteDedupStore
from notification_ingest.domain.errors import Unauthenticated
from notification_ingest.service import IngestService
from notification_ingest.settings import IngestSettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
T = int(NOW.timestamp())
BODY = orjson.dumps([delivered("acme", "d1")])


def service_at(
    db: SqliteDatabase,
    bus: RecordingBus,
    keys: SqliteKeyStore,
    moment: datetime = NOW,
    tolerance: timedelta = timedelta(seconds=300),
) -> IngestService:
    return IngestService(
        dedup=SqliteDedupStore(db),
        publisher=bus,
        secrets=keys,
        max_batch=1000,
        clock=lambda: moment,
        signature_tolerance=tolerance,
    )


async def test_a_timestamped_signature_within_the_tolerance_is_taken(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore, acme_secret: str
) -> None:
    service = service_at(db, bus, keys)
    for offset, event_id in ((0, "d0"), (-300, "d1"), (300, "d2")):
        body = orjson.dumps([delivered("acme", event_id)])
        result = await service.receive_webhook(
            app_id="acme", signature=sign(acme_secret, body, timestamp=T + offset), body=body
        )
        assert result.accepted == 1
    assert [e.event_id for e in bus.received] == ["d0", "d1", "d2"]


@pytest.mark.parametrize(
    ("offset", "told"), [(-301, "301 s old"), (301, "301 s ahead"), (-T, "s old")]
)
async def test_a_timestamp_outside_the_tolerance_is_refused_before_the_body(
    db: SqliteDatabase,
    bus: RecordingBus,
    keys: SqliteKeyStore,
    acme_secret: str,
    offset: int,
    told: str,
) -> None:
    service = service_at(db, bus, keys)
    header = sign(acme_secret, BODY, timestamp=T + offset)
    with pytest.raises(Unauthenticated, match=told):
        await service.authenticate_webhook(app_id="acme", signature=header)
    assert bus.calls == []


async def test_the_tolerance_is_a_setting(
    db: SqliteDatabase,
    bus: RecordingBus,
    keys: SqliteKeyStore,
    acme_secret: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INGEST_SIGNATURE_TOLERANCE_SECONDS", "60")
    tolerance = IngestSettings().signature_tolerance
    assert tolerance == timedelta(seconds=60)
    service = service_at(db, bus, keys, tolerance=tolerance)
    with pytest.raises(Unauthenticated, match="at most 60 s"):
        await service.authenticate_webhook(
            app_id="acme", signature=sign(acme_secret, BODY, timestamp=T - 61)
        )
    await service.authenticate_webhook(
        app_id="acme", signature=sign(acme_secret, BODY, timestamp=T - 60)
    )


async def test_a_replayed_timestamp_cannot_sign_another_body(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore, acme_secret: str
) -> None:
    service = service_at(db, bus, keys)
    header = sign(acme_secret, BODY, timestamp=T)
    other = orjson.dumps([delivered("acme", "forged")])
    sender = await service.authenticate_webhook(app_id="acme", signature=header)
    with pytest.raises(Unauthenticated, match="does not match"):
        await service.take_webhook(sender, other)
    assert bus.calls == []


@pytest.mark.parametrize(
    ("app_id", "header", "told"),
    [
        (None, "sha256=" + "0" * 64, "Missing header X-Insights-App"),
        ("", "sha256=" + "0" * 64, "Missing header X-Insights-App"),
        ("acme", None, "Missing header X-Insights-Signature"),
        ("acme", "", "Missing header X-Insights-Signature"),
        ("acme", "sha256=xyz", "malformed"),
        ("acme", "t=1,v1=short", "malformed"),
        ("acme", "Bearer abc", "malformed"),
        ("initech", "sha256=" + "0" * 64, "does not match"),
    ],
)
async def test_headers_that_cannot_be_the_app_are_refused_before_the_body(
    db: SqliteDatabase,
    bus: RecordingBus,
    keys: SqliteKeyStore,
    acme_secret: str,
    app_id: str | None,
    header: str | None,
    told: str,
) -> None:
    with pytest.raises(Unauthenticated, match=told):
        await service_at(db, bus, keys).authenticate_webhook(app_id=app_id, signature=header)


async def test_an_app_that_requires_timestamps_refuses_the_legacy_form(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore, acme_secret: str
) -> None:
    service = service_at(db, bus, keys)
    legacy = sign(acme_secret, BODY)
    assert (await service.receive_webhook(app_id="acme", signature=legacy, body=BODY)).accepted
    assert await keys.require_webhook_timestamp("acme", required=True)
    with pytest.raises(Unauthenticated, match="takes only timestamped signatures"):
        await service.authenticate_webhook(app_id="acme", signature=legacy)
    body = orjson.dumps([delivered("acme", "d2")])
    timestamped = sign(acme_secret, body, timestamp=T)
    result = await service.receive_webhook(app_id="acme", signature=timestamped, body=body)
    assert result.accepted == 1


async def test_the_replaced_secret_signs_during_the_overlap_only(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore, acme_secret: str
) -> None:
    new = await keys.rotate_webhook_secret("acme", overlap=timedelta(hours=2))
    rotated_at = datetime.now(UTC)
    during = service_at(db, bus, keys, moment=rotated_at + timedelta(hours=1))
    after = service_at(db, bus, keys, moment=rotated_at + timedelta(hours=2, seconds=5))
    for secret in (acme_secret, new):
        sender = await during.authenticate_webhook(app_id="acme", signature=sign(secret, BODY))
        await during.take_webhook(sender, BODY)
    sender = await after.authenticate_webhook(app_id="acme", signature=sign(acme_secret, BODY))
    with pytest.raises(Unauthenticated, match="does not match"):
        await after.take_webhook(sender, BODY)
    sender = await after.authenticate_webhook(app_id="acme", signature=sign(new, BODY))
    assert (await after.take_webhook(sender, BODY)).duplicates == 1


async def test_a_sender_mid_rotation_may_sign_with_both_secrets(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore, acme_secret: str
) -> None:
    new = await keys.rotate_webhook_secret("acme")  # no overlap: only the new one signs
    old_sig = sign(acme_secret, BODY, timestamp=T).split(",")[1]
    new_sig = sign(new, BODY, timestamp=T).split(",")[1]
    service = service_at(db, bus, keys)
    sender = await service.authenticate_webhook(app_id="acme", signature=f"t={T},{old_sig}")
    with pytest.raises(Unauthenticated):
        await service.take_webhook(sender, BODY)
    sender = await service.authenticate_webhook(
        app_id="acme", signature=f"t={T},{old_sig},{new_sig}"
    )
    assert (await service.take_webhook(sender, BODY)).accepted == 1


async def test_a_stale_timestamp_gets_the_same_answer_for_any_app(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore, acme_secret: str
) -> None:
    service = service_at(db, bus, keys)
    answers = []
    for app_id in ("acme", "initech"):
        with pytest.raises(Unauthenticated) as refused:
            await service.authenticate_webhook(
                app_id=app_id, signature=sign(acme_secret, BODY, timestamp=T - 3600)
            )
        answers.append(str(refused.value))
    assert answers[0] == answers[1]
    assert "3600 s old" in answers[0]
