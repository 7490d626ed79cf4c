"""Erasing a user, in each mode: afterwards no store holds their phone number, nickname or
messages, and none but the audit trail and the erase marker their id; late and replayed events
about them are dropped, also after the projector restarts; a new import makes them anew.

Every store is read whole: the SQLite file's tables and its bytes on disk (embedded); every table
of the deployment's PostgreSQL schema, every document of its OpenSearch indices and the users
topic (distributed).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from opensearchpy import AsyncOpenSearch

from tests.dates import at
from tests.deployments import DistributedDeployment, EmbeddedDeployment, eventually_true
from tests.e2e.test_flow import event, post_events, wait_for_import

if TYPE_CHECKING:
    from tests.conftest import Deployment

pytestmark = pytest.mark.e2e

API = "/api/v1"
USER = "erase-me.7"
PHONE = "+14155550177"
NICK = "Quokka Zelda"
BODY = "parcel ZX81 for quokka"
# What of the user no store may keep: the whole number and its digits (as search keeps them).
PERSONAL = (PHONE, PHONE[1:], NICK, BODY)
# Where the id may stay: the audit trail proves the erase; the marker drops later events.
KEEPS_THE_ID = ("audit_log", "q_erased_users", "imp_erased_users", "ing_erased_users", "erasures")

CSV = f"user_id,phone_number,nickname\n{USER},{PHONE},{NICK}\nkeep-me,+14155550178,Keeper\n"
CSV += f"{USER},+14155550179,Twice\n"  # a rejected row naming the user


def sent(event_id: str, message_id: str, user_id: str, when: str) -> dict[str, Any]:
    body = BODY if user_id == USER else "your parcel is on its way"
    return event(
        "notification.sent",
        event_id,
        when,
        message_id=message_id,
        user_id=user_id,
        channel="sms",
        template={"key": "shipping", "name": "Shipping", "version": 1, "variables": {}},
        content={"title": "Shipped", "body": body, "buttons": []},
    )


def found_in(text: str, *, table: str) -> list[str]:
    """What of the erased user `text` (a row, a document, a record) holds."""
    needles = [*PERSONAL, *(() if table.startswith(KEEPS_THE_ID) else (USER,))]
    # bytea columns are shown as hex by PostgreSQL's text cast
    return [n for n in needles if n in text or n.encode().hex() in text]


# -- the stores, read whole ------------------------------------------------------------------


def sqlite_leftovers(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{data_dir / 'insights.db'}?mode=ro", uri=True)
    try:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        left = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - its own tables
                text = " ".join(v.hex() if isinstance(v, bytes) else str(v) for v in row)
                left += [f"{table}: {n}" for n in found_in(text, table=table)]
        return left
    finally:
        conn.close()


def file_bytes_leftovers(data_dir: Path) -> list[str]:
    """The data dir's files as bytes: a deleted row's old copy in a free page or the log would
    show here, not in a query."""
    left = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and path.name != "master.key":
            raw = path.read_bytes()
            left += [f"{path.name}: {n}" for n in PERSONAL if n.encode() in raw]
    return left


async def postgres_leftovers(deployment: DistributedDeployment) -> list[str]:
    conn = await asyncpg.connect(deployment.postgres)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
            deployment.schema,
        )
        left = []
        for (table,) in tables:
            rows = await conn.fetch(
                f'SELECT t::text AS row FROM "{deployment.schema}"."{table}" t'  # noqa: S608
            )
            for row in rows:
                left += [f"{table}: {n}" for n in found_in(row["row"], table=table)]
        return left
    finally:
        await conn.close()


async def opensearch_leftovers(deployment: DistributedDeployment) -> list[str]:
    client = AsyncOpenSearch(hosts=[deployment.opensearch])
    try:
        pattern = f"{deployment.index_prefix}-*"
        await client.indices.refresh(index=pattern)
        hits = (
            await client.search(index=pattern, body={"query": {"match_all": {}}, "size": 10000})
        )["hits"]["hits"]
        left = []
        for hit in hits:
            table = hit["_index"].removeprefix(f"{deployment.index_prefix}-")
            left += [f"{hit['_index']}: {n}" for n in found_in(json.dumps(hit), table=table)]
        return left
    finally:
        await client.close()


async def users_topic(deployment: DistributedDeployment) -> list[tuple[bytes | None, bytes]]:
    """Every record of the users topic: (key, value), in each partition's order."""
    consumer = AIOKafkaConsumer(
        f"{deployment.topic_prefix}insights.users.v1",
        bootstrap_servers=deployment.kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[tuple[bytes | None, bytes]] = []
    try:
        while batches := await consumer.getmany(timeout_ms=2000):
            records += [(r.key, r.value) for b in batches.values() for r in b]
    finally:
        await consumer.stop()
    return records


def leftovers(deployment: Deployment) -> list[str]:
    if isinstance(deployment, EmbeddedDeployment):
        return sqlite_leftovers(deployment.data_dir) + file_bytes_leftovers(deployment.data_dir)

    async def read() -> list[str]:
        return await postgres_leftovers(deployment) + await opensearch_leftovers(deployment)

    return asyncio.run(read())


def until_clean(deployment: Deployment, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while (left := leftovers(deployment)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == []


def dropped(deployment: Deployment) -> float:
    """insights_events_dropped_total{reason="erased"} of the process that projects."""
    if isinstance(deployment, EmbeddedDeployment):
        url = f"{deployment.url}/metrics"
    else:
        url = f"http://127.0.0.1:{deployment.ports['projector']}/metrics"
    for line in httpx.get(url, timeout=10).text.splitlines():
        if line.startswith('insights_events_dropped_total{reason="erased"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- the test ----------------------------------------------------------------------------------


def test_an_erased_user_is_gone_from_every_store_and_stays_gone(deployment: Deployment) -> None:
    key = deployment.cli("keys", "create", "--app", "acme")
    secret = deployment.cli("webhooks", "secret", "--app", "acme")
    with deployment.client(key) as api:
        upload = api.post(f"{API}/imports", files={"file": ("users.csv", CSV, "text/csv")})
        done = wait_for_import(api, f"{API}/imports/{upload.json()['id']}")
        assert (done["status"], done["created"], done["rejected"]) == ("completed", 2, 1)
        events = [
            sent("s-1", "m-erase", USER, at("10:00:00")),
            event("notification.read", "r-1", at("10:05:00"), message_id="m-erase", user_id=USER),
            sent("s-2", "m-keep", "keep-me", at("10:00:00")),
        ]
        assert post_events(deployment, secret, events).json()["accepted"] == 3
        eventually_true(lambda: api.get(f"{API}/messages/m-erase").status_code == 200)
        assert api.get(f"{API}/users/{USER}").json()["nickname"] == NICK
        assert leftovers(deployment), "the test must see the user in the stores before"

        erased = api.delete(f"{API}/users/{USER}")
        assert erased.status_code == 200, erased.text
        assert erased.json()["complete"] is True
        # what the API shows is gone at once; every store, once each service took the erase
        assert api.get(f"{API}/users/{USER}").status_code == 404
        assert api.get(f"{API}/messages/m-erase").status_code == 404
        assert api.get(f"{API}/users", params={"q": PHONE}).json()["items"] == []
        until_clean(deployment)
        report = api.get(f"{API}/imports/{done['id']}/errors").json()["items"]
        assert report == []
        assert api.get(f"{API}/messages/m-keep").status_code == 200
        if isinstance(deployment, DistributedDeployment):
            records = asyncio.run(users_topic(deployment))
            mine = [value for k, value in records if k == f"acme:{USER}".encode()]
            # The users topic is not compacted: the user's earlier records stay until the
            # topic's retention removes them; the erase is the latest, and holds only the id.
            assert json.loads(mine[-1])["event_type"] == "user.erased"
            assert not any(n.encode() in mine[-1] for n in PERSONAL)

        # late and replayed events, dated before the erase: taken at the door, dropped
        late = [
            event(
                "notification.clicked", "c-1", at("10:06:00"), message_id="m-erase", user_id=USER
            ),
            sent("s-1", "m-erase", USER, at("10:00:00")),
            event("user.upserted", "u-1", at("10:07:00"), user_id=USER, nickname=NICK),
        ]
        post_events(deployment, secret, late)
        eventually_true(lambda: dropped(deployment) >= 2)

    # the marker is kept: a restarted projector drops them too
    deployment.crash_and_restart("projector")
    with deployment.client(key) as api:
        post_events(deployment, secret, [sent("s-3", "m-late", USER, at("11:00:00"))])
        eventually_true(lambda: api.get(f"{API}/messages/m-keep").status_code == 200)
        eventually_true(lambda: dropped(deployment) >= 1)
        assert api.get(f"{API}/users/{USER}").status_code == 404
        assert api.get(f"{API}/messages/m-late").status_code == 404
        assert leftovers(deployment) == []

        # the trail keeps who erased whom and when, without the erased data, and still verifies
        trail = api.get(f"{API}/audit", params={"user_id": USER}).json()["items"]
        actions = [e["action"] for e in trail]
        erased = actions.index("user.erase")
        # newest first: the reads asked after the erase (404) are recorded as asked, and the
        # profile was viewed before it
        assert set(actions[:erased]) == {"user.view"}
        assert "user.view" in actions[erased + 1 :]
        assert trail[erased]["actor"].startswith("key:")
        assert not any(n in json.dumps(trail) for n in PERSONAL)
        assert "intact" in deployment.cli("audit", "verify", "--app", "acme")

        # a new import after the erase makes a new user, with nothing of the old one
        again = api.post(
            f"{API}/imports",
            files={"file": ("again.csv", f"user_id,phone_number\n{USER},+14155550180\n")},
        )
        redone = wait_for_import(api, f"{API}/imports/{again.json()['id']}")
        assert (redone["status"], redone["created"]) == ("completed", 1)
        anew = api.get(f"{API}/users/{USER}").json()
        assert (anew["nickname"], anew["stats"]["sent"]) == (None, 0)

    printed = deployment.cli("users", "erase", "--app", "acme", "--user-id", "keep-me")
    assert "erased user 'keep-me'" in printed
    with deployment.client(key) as api:
        assert api.get(f"{API}/users/keep-me").status_code == 404
        trail = api.get(f"{API}/audit", params={"action": "user.erase"}).json()["items"]
        assert trail[0]["actor"].startswith("cli:") and trail[0]["user_id"] == "keep-me"
