"""POST /api/v1/events through the embedded wiring, as the platform calls it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from ingest_support import RecordingBus, contract_events, delivered

from insights_common.auth import sign
from insights_common.bus import AtOnce
from insights_common.http.conventions import install_problem_handlers
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from notification_ingest.adapters.sqlite import (
    SqliteDedupStore,
    SqlitePendingCallbacks,
    SqlitePhoneDirectory,
)
from notification_ingest.app import build_ingest
from notification_ingest.settings import IngestSettings

pytestmark = pytest.mark.unit


BODY_LIMIT = 512 * 1024


@pytest.fixture
async def client(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> AsyncIterator[httpx.AsyncClient]:
    settings = IngestSettings(max_batch=1000, max_body_bytes=BODY_LIMIT)
    ingest = build_ingest(
        dedup=SqliteDedupStore(db),
        publisher=bus.isolating(),
        watermark=AtOnce(),
        keys=keys,
        phones=SqlitePhoneDirectory(db),
        pending=SqlitePendingCallbacks(db),
        users=bus,
        raw=None,
        healthy=None,
        settings=settings,
    )
    app = FastAPI()
    app.include_router(ingest.parts.router, prefix="/api/v1")
    install_problem_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


async def post(
    client: httpx.AsyncClient, body: bytes, *, app: str | None, secret: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if app is not None:
        headers["X-Insights-App"] = app
    if secret is not None:
        headers["X-Insights-Signature"] = sign(secret, body)
    return await client.post("/api/v1/events", content=body, headers=headers)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_a_signed_array_is_accepted(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    events = contract_events()
    response = await post(client, orjson.dumps(events), app="acme", secret=acme_secret)
    assert response.status_code == 202
    assert response.json() == {
        "accepted": len(events),
        "duplicates": 0,
        "rejected": [],
        "visible": None,
    }
    assert [e.event_id for e in bus.calls[0]] == [e["event_id"] for e in events]


async def test_a_single_object_is_one_event(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    body = orjson.dumps(delivered("acme", "d1"))
    response = await post(client, body, app="acme", secret=acme_secret)
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": [], "visible": None}
    assert [e.event_id for e in bus.received] == ["d1"]


async def test_a_resent_batch_counts_duplicates(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    first = orjson.dumps([delivered("acme", "d1"), delivered("acme", "d1")])
    second = orjson.dumps([delivered("acme", "d1"), delivered("acme", "d2")])
    one = await post(client, first, app="acme", secret=acme_secret)
    two = await post(client, second, app="acme", secret=acme_secret)
    assert one.json() == {"accepted": 1, "duplicates": 1, "rejected": [], "visible": None}
    assert two.json() == {"accepted": 1, "duplicates": 1, "rejected": [], "visible": None}
    assert [e.event_id for e in bus.received] == ["d1", "d2"]


async def test_a_partial_batch_names_each_rejected_index(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    items = [
        delivered("acme", "d1"),
        {**delivered("acme", "d2"), "app_id": "globex"},
        {**delivered("acme", "d3"), "event_type": "notification.opened"},
        delivered("acme", "d4"),
        "not an event",
    ]
    response = await post(client, orjson.dumps(items), app="acme", secret=acme_secret)
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [1, 2, 4]
    assert rejected[1] == {
        "index": 1,
        "event_id": "d2",
        "errors": [
            {"loc": "app_id", "message": "app_id 'globex' does not match X-Insights-App 'acme'"}
        ],
    }
    assert rejected[2]["errors"][0]["loc"] == "event_type"
    assert "notification.responded" in rejected[2]["errors"][0]["message"]
    assert rejected[4]["event_id"] is None
    assert rejected[4]["errors"] == [
        {"loc": "", "message": "An event must be a JSON object; got a string."}
    ]
    assert [e.event_id for e in bus.received] == ["d1", "d4"]


async def test_a_bad_signature_is_401_and_nothing_is_taken(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    body = orjson.dumps(delivered("acme", "d1"))
    response = await post(client, body, app="acme", secret=acme_secret + "x")
    assert "X-Insights-Signature does not match" in problem(response, 401)["detail"]
    assert bus.calls == []


async def test_a_body_changed_after_signing_is_401(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    signed = orjson.dumps(delivered("acme", "d1"))
    sent = orjson.dumps(delivered("acme", "d2"))
    response = await client.post(
        "/api/v1/events",
        content=sent,
        headers={"X-Insights-App": "acme", "X-Insights-Signature": sign(acme_secret, signed)},
    )
    problem(response, 401)
    assert bus.calls == []


async def test_a_signature_of_another_app_is_401(
    client: httpx.AsyncClient,
    bus: RecordingBus,
    keys: SqliteKeyStore,
    acme_secret: str,
) -> None:
    await keys.rotate_webhook_secret("globex")
    body = orjson.dumps(delivered("globex", "d1"))
    response = await post(client, body, app="globex", secret=acme_secret)
    problem(response, 401)
    assert bus.calls == []


async def test_an_unknown_app_gets_the_same_answer_as_a_bad_signature(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    body = orjson.dumps(delivered("initech", "d1"))
    unknown = problem(await post(client, body, app="initech", secret=acme_secret), 401)
    wrong = problem(await post(client, body, app="acme", secret="nope"), 401)
    assert unknown["detail"] == wrong["detail"]
    assert bus.calls == []


@pytest.mark.parametrize(
    ("app", "signed", "missing"),
    [(None, True, "X-Insights-App"), ("acme", False, "X-Insights-Signature")],
)
async def test_a_missing_header_is_named(
    client: httpx.AsyncClient,
    bus: RecordingBus,
    acme_secret: str,
    app: str | None,
    signed: bool,
    missing: str,
) -> None:
    body = orjson.dumps(delivered("acme", "d1"))
    response = await post(client, body, app=app, secret=acme_secret if signed else None)
    assert problem(response, 401)["detail"].startswith(f"Missing header {missing}")
    assert bus.calls == []


async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient, acme_secret: str) -> None:
    response = await post(client, b"event_id=d1", app="acme", secret=acme_secret)
    detail = problem(response, 400)["detail"]
    assert detail.startswith("The body is not valid JSON")
    assert "line 1, column 1" in detail


async def test_an_empty_array_is_400(client: httpx.AsyncClient, acme_secret: str) -> None:
    response = await post(client, b"[]", app="acme", secret=acme_secret)
    assert problem(response, 400)["detail"] == (
        "The body is an empty array; send at least one event."
    )


async def test_more_than_1000_events_is_413_and_nothing_is_taken(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    body = orjson.dumps([delivered("acme", f"d{n}") for n in range(1001)])
    assert len(body) < BODY_LIMIT
    response = await post(client, body, app="acme", secret=acme_secret)
    assert problem(response, 413)["detail"] == (
        "The body has 1,001 events; send at most 1,000 per request."
    )
    assert bus.calls == []


async def test_exactly_1000_events_are_taken(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    body = orjson.dumps([delivered("acme", f"d{n}") for n in range(1000)])
    response = await post(client, body, app="acme", secret=acme_secret)
    assert response.status_code == 202
    assert response.json()["accepted"] == 1000
    assert len(bus.received) == 1000


async def test_a_body_over_the_byte_limit_is_413_before_it_is_read(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    body = b"[" + b" " * BODY_LIMIT + b"]"
    response = await post(client, body, app="acme", secret=acme_secret)
    detail = problem(response, 413)["detail"]
    assert detail.startswith(f"The body is {len(body):,} bytes; the limit is {BODY_LIMIT:,} bytes")
    assert bus.calls == []


async def test_a_streamed_body_over_the_byte_limit_is_413_while_reading(
    client: httpx.AsyncClient, bus: RecordingBus, acme_secret: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"["
        for _ in range(8):
            yield b" " * (BODY_LIMIT // 4)
        yield b"]"

    response = await client.post(
        "/api/v1/events",
        content=chunks(),
        headers={"X-Insights-App": "acme", "X-Insights-Signature": sign(acme_secret, b"")},
    )
    detail = problem(response, 413)["detail"]
    assert detail.startswith(f"The body is larger than the limit of {BODY_LIMIT:,} bytes.")
    assert bus.calls == []
