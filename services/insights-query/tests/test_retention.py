"""Retention: the cut-off, the chunked pass on each store, the users it leaves, and the API.

Every instant is relative to the fixed NOW the service's clock answers, never today's date.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from insights_common.audit import AuditFilter
from insights_common.retention import InvalidRetention
from insights_common.sqlite.audit import SqliteAuditLog
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from insights_common.sqlite.retention import SqliteRetentionSettings
from insights_query.domain.retention import cutoff
from insights_query.domain.time import Window
from insights_query.retention import RetentionService

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
"""The clock of the service the fixtures wire (conftest.py)."""
DAY = timedelta(days=1)
OLD = NOW - 40 * DAY
RECENT = NOW - 2 * DAY
ALL_TIME = Window(since=NOW - 400 * DAY, until=NOW)


@pytest.mark.unit
def test_the_cut_off_is_days_before_now_and_keeps_the_boundary() -> None:
    assert cutoff(NOW, 30) == NOW - 30 * DAY
    assert cutoff(NOW, 1) == NOW - DAY
    for bad in (0, -1, 36_501):
        with pytest.raises(InvalidRetention, match="from 1 to 36500"):
            cutoff(NOW, bad)


def passes(store: Any, db: SqliteDatabase, *, chunk: int) -> RetentionService:
    return RetentionService(
        settings=SqliteRetentionSettings(db),
        store=store,
        every=None,
        chunk=chunk,
        clock=lambda: NOW,
    )


async def test_a_pass_removes_only_older_messages_in_chunks_and_recounts_their_users(
    store: Any, db: SqliteDatabase, ev: Any, other_ev: Any
) -> None:
    boundary = NOW - 30 * DAY
    await store.apply(
        [
            ev.user("alex", OLD - 5 * DAY, nickname="Alex Kim", source="import:i1"),
            ev.sent("a1", "alex", OLD),
            ev.read("a1", "alex", (OLD + timedelta(hours=1)).isoformat()),
            ev.sent("a2", "alex", OLD + DAY, key="welcome"),
            ev.sent("b1", "bo", OLD + 2 * DAY),
            ev.sent("b2", "bo", RECENT),
            ev.delivered("b2", "bo", (RECENT + timedelta(minutes=5)).isoformat()),
            ev.sent("edge", "bo", boundary),
            ev.sent("g1", "ghost", OLD + 3 * DAY),
            ev.sent("g2", "ghost", OLD + 4 * DAY),
            other_ev.sent("o1", "alex", OLD),
        ]
    )
    retention = passes(store, db, chunk=2)
    await retention.settings.set("acme", 30, now=NOW)

    [result] = await retention.run_pass() or []

    assert (result.app_id, result.messages, result.before) == ("acme", 5, boundary)
    assert result.chunks == 3  # 2 + 2 + 1: the last, not full, ends the pass
    for gone in ("a1", "a2", "b1", "g1", "g2"):
        assert await store.get_message("acme", gone) is None, gone
    for kept in ("b2", "edge"):
        assert await store.get_message("acme", kept) is not None, kept
    assert await store.get_message("other", "o1") is not None  # another app's own setting

    # Alex was imported: he stays, with no messages and his activity back to his import.
    alex = await store.get_user("acme", "alex")
    assert alex is not None and alex.nickname == "Alex Kim"
    assert alex.last_activity_at == OLD - 5 * DAY
    assert (await store.user_stats("acme", "alex", ALL_TIME)).totals.sent == 0
    # Bo's activity and counts are those of his remaining messages only.
    bo = await store.get_user("acme", "bo")
    assert bo is not None
    assert bo.created_at == boundary
    assert bo.last_activity_at == RECENT + timedelta(minutes=5)
    brief = await store.brief_stats("acme", ["alex", "bo"])
    assert "alex" not in brief and brief["bo"].sent == 2
    # Ghost was known only from the removed messages.
    assert await store.get_user("acme", "ghost") is None
    # Templates count the messages that remain.
    summaries = {t.key: t.sent for t in await store.list_templates("acme", after_key=None, limit=9)}
    assert summaries.get("welcome", 0) == 0 and summaries["order_shipped"] == 2

    # Nothing is left to remove: a second pass is one empty chunk.
    [again] = await retention.run_pass() or []
    assert (again.messages, again.chunks) == (0, 1)


async def test_a_late_event_of_a_removed_message_does_not_bring_it_back(
    store: Any, db: SqliteDatabase, ev: Any
) -> None:
    await store.apply([ev.sent("a1", "alex", OLD)])
    retention = passes(store, db, chunk=100)
    await retention.settings.set("acme", 7, now=NOW)
    assert (await retention.apply("acme")) is not None
    await store.apply([ev.read("a1", "alex", RECENT.isoformat())])
    assert await store.get_message("acme", "a1") is None
    assert await store.brief_stats("acme", ["alex"]) == {}


async def test_an_app_without_retention_keeps_every_message(
    store: Any, db: SqliteDatabase, ev: Any
) -> None:
    await store.apply([ev.sent("a1", "alex", NOW - 4000 * DAY)])
    retention = passes(store, db, chunk=100)
    assert await retention.apply("acme") is None
    assert await retention.run_pass() == []
    await retention.settings.set("acme", 30, now=NOW)
    await retention.settings.set("acme", None, now=NOW)
    assert await retention.run_pass() == []
    assert await store.get_message("acme", "a1") is not None


@pytest.mark.unit
async def test_one_pass_at_a_time(db: SqliteDatabase) -> None:
    settings = SqliteRetentionSettings(db)
    async with settings.exclusive() as first:
        async with settings.exclusive() as second:
            assert (first, second) == (True, False)
    async with settings.exclusive() as later:
        assert later


@pytest.mark.parametrize("store_backend", ["sqlite"], indirect=True)
async def test_admins_set_retention_through_the_api_and_a_pass_follows(
    client: httpx.AsyncClient,
    acme: dict[str, str],
    keys: SqliteKeyStore,
    db: SqliteDatabase,
    store: Any,
    ev: Any,
) -> None:
    await store.apply([ev.sent("a1", "alex", OLD), ev.sent("a2", "alex", RECENT)])
    url = "/api/v1/settings/retention"
    assert (await client.get(url, headers=acme)).json() == {"days": None, "updated_at": None}

    for bad, says in (
        ({"days": 0}, "from 1 to 36500"),
        ({"days": 36_501}, "from 1 to 36500"),
        ({"days": "30"}, "valid integer"),
        ({"days": 1.5}, "valid integer"),
        ({}, "Field required"),
        ({"days": 30, "weeks": 2}, "Extra inputs"),
    ):
        refused = await client.put(url, headers=acme, json=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert says in refused.json()["detail"], (bad, refused.json())

    as_json = {**acme, "Content-Type": "application/json"}
    not_json = await client.put(url, headers=as_json, content=b"days=30")
    assert not_json.status_code == 422 and not_json.json()["errors"][0]["type"] == "json_invalid"
    not_text = await client.put(url, headers=as_json, content=b"\xff\xfe{")
    assert not_text.status_code == 400, not_text.text
    assert not_text.headers["content-type"] == "application/problem+json"

    changed = await client.put(url, headers=acme, json={"days": 30})
    assert changed.status_code == 200, changed.text
    assert changed.json()["days"] == 30
    assert (await client.get(url, headers=acme)).json()["days"] == 30
    for _ in range(200):  # the pass runs in the background, right after the answer
        if await store.get_message("acme", "a1") is None:
            break
        await asyncio.sleep(0.02)
    assert await store.get_message("acme", "a1") is None
    assert await store.get_message("acme", "a2") is not None

    off = await client.put(url, headers=acme, json={"days": None})
    assert off.json() == {"days": None, "updated_at": None}

    trail = await SqliteAuditLog(db).search(
        "acme", AuditFilter(action="retention.set"), before_seq=None, limit=10
    )
    assert [e.detail for e in trail] == ["off", "30 days"]

    reader = {"Authorization": f"Bearer {await keys.create_api_key('acme', scopes=('read',))}"}
    refused = await client.put(url, headers=reader, json={"days": 30})
    assert refused.status_code == 403 and refused.json()["permission"] == "manage_settings"
    assert (await client.get(url, headers=reader)).status_code == 403
