"""The gateway sends each API path to the service that owns it, and says which one is down."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from insights.gateway import GatewaySettings, create_gateway, merge_openapi, route
from tests.conftest import free_port

pytestmark = pytest.mark.unit

SETTINGS = GatewaySettings(
    import_url="http://imports.internal", ingest_url="http://ingest.internal", query_url="http://q"
)


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/v1/imports", "import"),
        ("/api/v1/imports/imp_1/errors", "import"),
        ("/api/v1/events", "ingest"),
        ("/api/v1/sources/twilio/acme", "ingest"),
        ("/api/v1/sourcesx", "query"),
        ("/api/v1/users", "query"),
        ("/api/v1/users/imports", "query"),
        ("/api/v1/importsx", "query"),
        ("/api/v1/messages/m1", "query"),
        ("/api/v1/templates/welcome", "query"),
    ],
)
def test_each_path_goes_to_its_service(path: str, service: str) -> None:
    assert route(path, SETTINGS)[0] == service


async def test_a_service_that_is_down_gives_a_502_naming_it() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    app = create_gateway(GatewaySettings(import_url=closed, ingest_url=closed, query_url=closed))
    transport = httpx.ASGITransport(app=app)
    # The lifespan closes the gateway's pool of connections to the services.
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        answer = await client.get("/api/v1/users", params={"q": "alex"})
        ready = await client.get("/readyz")
    assert answer.status_code == 502
    assert answer.headers["content-type"] == "application/problem+json"
    assert "query service" in answer.json()["detail"]
    assert ready.status_code == 503


@contextlib.asynccontextmanager
async def upstream_service() -> AsyncIterator[str]:
    """A service that answers what it was sent: the request line, headers and body digest; a
    body of unknown length on /api/v1/imports/export; and no answer on /api/v1/users/slow."""

    done = asyncio.Event()

    async def echo(request: web.Request) -> web.StreamResponse:
        if request.path == "/api/v1/users/slow":
            await done.wait()
        body = await request.read()
        if request.path == "/api/v1/imports/export":
            streamed = web.StreamResponse(headers={"Content-Type": "text/csv"})
            await streamed.prepare(request)
            for number in range(64):
                await streamed.write(bytes([number]) * 16_384)
            await streamed.write_eof()
            return streamed
        answer = web.json_response(
            {
                "method": request.method,
                "target": request.raw_path,
                "headers": [[k.lower(), v] for k, v in request.headers.items()],
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "body_length": len(body),
            },
            status=201 if request.method == "POST" else 200,
        )
        answer.headers.add("X-Multi", "one")
        answer.headers.add("X-Multi", "two")
        answer.headers["Keep-Alive"] = "timeout=5"
        return answer

    service = web.Application(client_max_size=16 * 1024 * 1024)
    service.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(service)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        done.set()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def gateway_to(base: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_gateway(
        GatewaySettings(import_url=base, ingest_url=base, query_url=base, **settings)
    )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        yield client


async def test_requests_go_on_as_sent_less_hop_by_hop_headers_plus_forwarded_ones() -> None:
    async with upstream_service() as base, gateway_to(base) as client:
        answer = await client.get(
            "/api/v1/users?q=%EA%B9%80+min&limit=2",
            headers={
                "Authorization": "Bearer uik_x",
                "X-Forwarded-For": "198.51.100.1",
                "Proxy-Authorization": "Basic c2VjcmV0",
                "TE": "trailers",
                "Accept-Encoding": "identity",
            },
        )
    assert answer.status_code == 200
    seen = answer.json()
    assert seen["target"] == "/api/v1/users?q=%EA%B9%80+min&limit=2"
    headers = dict(seen["headers"])
    assert headers["authorization"] == "Bearer uik_x"
    assert headers["accept-encoding"] == "identity"
    assert headers["x-forwarded-for"] == "198.51.100.1, 203.0.113.7"
    assert headers["x-forwarded-proto"] == "http"
    assert "proxy-authorization" not in headers and "te" not in headers
    assert answer.headers.get_list("x-multi") == ["one", "two"]
    assert "keep-alive" not in answer.headers
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert seen["body_length"] == 0


@pytest.mark.parametrize("size", [10, 3 * 1024 * 1024])
async def test_bodies_small_and_large_arrive_whole_both_ways(size: int) -> None:
    upload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    async with upstream_service() as base, gateway_to(base) as client:
        posted = await client.post(
            "/api/v1/imports", content=upload, headers={"Content-Type": "text/csv"}
        )
        export = await client.get("/api/v1/imports/export")
    assert posted.status_code == 201
    seen = posted.json()
    assert (seen["method"], seen["body_length"]) == ("POST", size)
    assert seen["body_sha256"] == hashlib.sha256(upload).hexdigest()
    assert dict(seen["headers"])["content-type"] == "text/csv"
    assert export.status_code == 200
    assert export.content == b"".join(bytes([n]) * 16_384 for n in range(64))
    assert "content-length" not in export.headers or int(export.headers["content-length"]) == len(
        export.content
    )


async def test_a_service_that_does_not_answer_in_time_gives_a_504_naming_it() -> None:
    async with upstream_service() as base, gateway_to(base, timeout_seconds=0.2) as client:
        answer = await client.get("/api/v1/users/slow")
    assert answer.status_code == 504
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "The query service did not answer in 0.2 s."


def test_the_merged_openapi_keeps_each_services_answers_and_adds_the_gateways() -> None:
    imports = {"paths": {"/api/v1/imports": {"get": {"responses": {"200": {}, "502": {"x": 1}}}}}}
    events = {"paths": {"/api/v1/events": {"post": {"responses": {"202": {}}}}}}
    merged = merge_openapi([imports, events])
    listed = merged["paths"]["/api/v1/imports"]["get"]["responses"]
    assert listed["502"] == {"x": 1}  # a service's own word is kept
    assert set(listed) == {"200", "502", "504"}
    taken = merged["paths"]["/api/v1/events"]["post"]["responses"]
    assert set(taken) == {"202", "502", "504"}
    assert "application/problem+json" in taken["504"]["content"]
