"""The sources' door of `insights dev` in this process: the webhook door's answers for a caller
that cannot be the platform (401, headers only, connection closed), an unknown platform (404), a
body too large (413) and a body that is not the platform's callback (422)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from source_samples import KNOCK_SECRET, json_body, knock_sign

from insights.composition.embedded import build_embedded
from insights.embedded import EmbeddedSettings, create_app

pytestmark = pytest.mark.unit


@pytest.fixture
async def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("INGEST_MAX_BODY_BYTES", "2048")
    embedded = build_embedded(EmbeddedSettings(data_dir=tmp_path / "data"))
    await embedded.keys.set_source_secret("acme", "knock", KNOCK_SECRET)
    app = create_app(embedded)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://insights.test") as http,
    ):
        yield http


def knock_headers(body: bytes) -> dict[str, str]:
    # Signed now, on the real clock: the server checks the tolerance against its own.
    return {"x-knock-signature": knock_sign(body, at_ms=int(time.time() * 1000))}


async def test_each_refusal_is_a_problem_with_its_status(client: httpx.AsyncClient) -> None:
    body = json_body({"type": "message.sent", "data": {"id": "m1", "recipient": "alex"}})
    unknown = await client.post("/api/v1/sources/mailchimp/acme", content=body)
    assert unknown.status_code == 404
    assert "twilio, knock" in unknown.json()["detail"]

    unsigned = await client.post("/api/v1/sources/knock/acme", content=body)
    assert unsigned.status_code == 401
    assert unsigned.headers["connection"] == "close"
    assert "x-knock-signature" in unsigned.json()["detail"]

    other_app = await client.post(
        "/api/v1/sources/knock/globex", content=body, headers=knock_headers(body)
    )
    assert other_app.status_code == 401

    big = json_body({"type": "message.sent", "pad": "x" * 4096})
    too_large = await client.post(
        "/api/v1/sources/knock/acme", content=big, headers=knock_headers(big)
    )
    assert too_large.status_code == 413

    not_knock = b'{"hello": "world"}'
    shape = await client.post(
        "/api/v1/sources/knock/acme", content=not_knock, headers=knock_headers(not_knock)
    )
    assert shape.status_code == 422
    assert "data.id" in shape.json()["detail"]

    taken = await client.post(
        "/api/v1/sources/knock/acme", content=body, headers=knock_headers(body)
    )
    assert taken.status_code == 202, taken.text
    assert taken.json()["refused"] == []
    assert taken.json()["accepted"] == 1
