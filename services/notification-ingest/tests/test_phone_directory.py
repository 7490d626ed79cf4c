"""The PhoneDirectory and PendingCallbacks port suites, the same tests on SQLite and PostgreSQL,
and the rule both directories keep (`domain.directory`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from insights_common.sqlite.database import SqliteDatabase
from insights_contracts import UserUpserted
from notification_ingest.adapters.postgres import (
    PostgresDedupStore,
    PostgresPendingCallbacks,
    PostgresPhoneDirectory,
)
from notification_ingest.adapters.sqlite import SqlitePendingCallbacks, SqlitePhoneDirectory
from notification_ingest.domain.directory import PhoneEntry, phone_entries
from notification_ingest.ports import PendingCallbacks, PhoneDirectory

if TYPE_CHECKING:
    from conftest import Databases


@pytest.fixture
async def directory(databases: Databases) -> PhoneDirectory:
    db = await databases.open()
    if isinstance(db, SqliteDatabase):
        return SqlitePhoneDirectory(db)
    await PostgresDedupStore(db).migrate()  # the ingest component's migrations
    return PostgresPhoneDirectory(db)


def upserted(user: str, phone: str | None, *, app: str = "acme") -> UserUpserted:
    return UserUpserted(
        event_id=f"u-{user}-{phone}",
        app_id=app,
        occurred_at="2026-11-02T10:00:00Z",  # type: ignore[arg-type]  # validated by pydantic
        user_id=user,
        phone_number=phone,
        source="import:imp_1",
    )


@pytest.mark.unit
def test_the_last_number_of_each_user_wins_and_no_number_changes_nothing() -> None:
    events = [
        upserted("alex", "+14155550171"),
        upserted("kim", "+821012345678"),
        upserted("alex", "+14155550172"),
        upserted("kim", None),
    ]
    assert phone_entries(events) == [
        PhoneEntry("acme", "kim", "+821012345678"),
        PhoneEntry("acme", "alex", "+14155550172"),
    ]


async def test_a_number_names_its_user_per_app(directory: PhoneDirectory) -> None:
    await directory.record(
        [
            PhoneEntry("acme", "alex", "+14155550171"),
            PhoneEntry("globex", "gus", "+14155550171"),
            PhoneEntry("acme", "kim", "+821012345678"),
        ]
    )
    found = await directory.users_by_phone("acme", ["+14155550171", "+821012345678", "+1999"])
    assert found == {"+14155550171": "alex", "+821012345678": "kim"}
    assert await directory.users_by_phone("globex", ["+14155550171"]) == {"+14155550171": "gus"}
    assert await directory.users_by_phone("acme", []) == {}


async def test_a_changed_number_no_longer_names_the_user_and_a_taken_one_moves(
    directory: PhoneDirectory,
) -> None:
    await directory.record([PhoneEntry("acme", "alex", "+14155550171")])
    await directory.record([PhoneEntry("acme", "alex", "+14155550172")])
    await directory.record([PhoneEntry("acme", "sam", "+14155550172")])
    found = await directory.users_by_phone("acme", ["+14155550171", "+14155550172"])
    assert found == {"+14155550172": "sam"}


async def test_in_one_batch_the_later_user_takes_a_shared_number(
    directory: PhoneDirectory,
) -> None:
    await directory.record(
        [PhoneEntry("acme", "alex", "+14155550171"), PhoneEntry("acme", "sam", "+14155550171")]
    )
    assert await directory.users_by_phone("acme", ["+14155550171"]) == {"+14155550171": "sam"}


async def test_an_erased_user_is_forgotten_with_their_numbers(
    directory: PhoneDirectory,
) -> None:
    await directory.record(
        [PhoneEntry("acme", "alex", "+14155550171"), PhoneEntry("acme", "sam", "+14155550172")]
    )
    at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    assert await directory.erase("acme", "alex", at=at) == ["+14155550171"]
    assert await directory.erase("acme", "alex", at=at - timedelta(days=1)) == []
    assert await directory.erased([("acme", "alex"), ("acme", "sam")]) == {("acme", "alex"): at}
    found = await directory.users_by_phone("acme", ["+14155550171", "+14155550172"])
    assert found == {"+14155550172": "sam"}


# An injected clock the tests move: the verdicts do not depend on today.
NOW = [datetime(2026, 11, 2, 10, 0, tzinfo=UTC)]


@pytest.fixture
async def pending(databases: Databases) -> PendingCallbacks:
    db = await databases.open()
    if isinstance(db, SqliteDatabase):
        return SqlitePendingCallbacks(db, clock=lambda: NOW[0])
    await PostgresDedupStore(db).migrate()
    return PostgresPendingCallbacks(db, clock=lambda: NOW[0])


async def test_kept_callbacks_wait_for_their_number_once_each(pending: PendingCallbacks) -> None:
    await pending.keep("acme", "twilio", [("+1001", b'{"a":1}'), ("+1002", b'{"a":2}')])
    await pending.keep("acme", "twilio", [("+1001", b'{"a":1}')])  # a retry: kept once
    await pending.keep("acme", "braze", [("+1001", b'{"b":1}')])
    await pending.keep("globex", "twilio", [("+1001", b'{"g":1}')])
    waiting = await pending.waiting("acme", ["+1001"])
    assert [(platform, body) for _, platform, body in waiting] == [
        ("twilio", b'{"a":1}'),
        ("braze", b'{"b":1}'),
    ]
    await pending.drop([kept_id for kept_id, _, _ in waiting])
    assert await pending.waiting("acme", ["+1001"]) == []
    assert [body for _, _, body in await pending.waiting("acme", ["+1002"])] == [b'{"a":2}']
    assert len(await pending.waiting("globex", ["+1001"])) == 1


async def test_callbacks_kept_before_a_moment_are_forgotten(pending: PendingCallbacks) -> None:
    start = NOW[0]
    try:
        await pending.keep("acme", "twilio", [("+1001", b'{"old":1}')])
        NOW[0] = start + timedelta(days=31)
        await pending.keep("acme", "twilio", [("+1001", b'{"new":1}')])
        assert await pending.forget(before=start + timedelta(days=30)) == 1
        assert [b for _, _, b in await pending.waiting("acme", ["+1001"])] == [b'{"new":1}']
    finally:
        NOW[0] = start


async def test_the_callbacks_kept_for_an_erased_users_numbers_go(pending: PendingCallbacks) -> None:
    await pending.keep("acme", "twilio", [("+1001", b'{"a":1}'), ("+1002", b'{"a":2}')])
    await pending.keep("globex", "twilio", [("+1001", b'{"g":1}')])
    await pending.erase("acme", ["+1001"])
    assert await pending.waiting("acme", ["+1001"]) == []
    assert [b for _, _, b in await pending.waiting("acme", ["+1002"])] == [b'{"a":2}']
    assert len(await pending.waiting("globex", ["+1001"])) == 1
