"""The limits in front of every process: header size and time, body pauses, connections, a
client that leaves mid-body, 405 with Allow, and absolute URLs from the public base URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from insights_common.http.conventions import install_problem_handlers
from insights_common.http.guard import HttpSettings, install_http_guards, public_origin
from tests.security.conftest import InProcess
from tests.security.serving import exchange, serving

pytestmark = pytest.mark.unit

FAST = HttpSettings(
    header_timeout_seconds=0.5, body_timeout_seconds=0.5, max_header_bytes=4096, max_connections=4
)


def small_app(http: HttpSettings = FAST) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_http_guards(app, http, default_origin="http://127.0.0.1:8000")
    release = asyncio.Event()
    app.state.release = release

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @app.get("/wait")
    async def wait() -> dict[str, bool]:
        await release.wait()
        return {"waited": True}

    @app.get("/where")
    async def where(request: Request) -> dict[str, str]:
        return {"url": str(request.url_for("where"))}

    return app


@pytest.fixture
async def port() -> AsyncIterator[int]:
    app = small_app()
    async with serving(app, FAST) as listening:
        yield listening
        app.state.release.set()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_headers_larger_than_the_cap_are_431(port: int) -> None:
    big = b"X-Filler: " + b"a" * 5000 + b"\r\n"
    answer = await exchange(port, b"GET /where HTTP/1.1\r\nHost: t\r\n" + big + b"\r\n")
    assert status_of(answer) == 431
    ok = await exchange(port, b"GET /where HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status_of(ok) == 200


async def test_many_small_headers_add_up_to_the_cap(port: int) -> None:
    many = b"".join(b"X-%d: %s\r\n" % (n, b"b" * 90) for n in range(60))
    answer = await exchange(port, b"GET /where HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n")
    assert status_of(answer) == 431


async def test_headers_sent_too_slowly_are_408(port: int) -> None:
    started = asyncio.get_running_loop().time()
    answer = await exchange(
        port, b"GET /where HTTP/1.1\r\n", b"Host: t\r\n", b"X-A: 1\r\n", pause=0.3
    )
    assert status_of(answer) == 408
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
    assert status_of(answer) == 408


async def test_a_body_that_stops_coming_is_408(port: int) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"x" * 10)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
    assert status_of(answer) == 408


async def test_a_body_that_keeps_coming_is_read_whole(port: int) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
    answer = await exchange(port, head, b"abcd", b"efgh", b"ijkl", pause=0.3)
    assert status_of(answer) == 200
    assert answer.endswith(b'{"length":12}')


async def test_a_client_that_leaves_mid_body_is_a_400_in_the_log(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100)
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await writer.wait_closed()
    for _ in range(50):
        if "went away" in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert "400 POST /echo: 127.0.0.1 went away before its request body ended" in caplog.text
    assert "Traceback" not in caplog.text and "Exception in ASGI" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_connections_past_the_limit_are_503(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        # uvicorn counts the new connection too: 3 open and 1 more make the 4 allowed.
        waiting = [asyncio.create_task(client.get("/wait")) for _ in range(3)]
        await asyncio.sleep(0.3)
        refused = await exchange(port, b"GET /where HTTP/1.1\r\nHost: t\r\n\r\n")
        assert status_of(refused) == 503
        done, _ = await asyncio.wait(waiting, timeout=0.1)
        assert not done


async def test_405_names_the_allowed_methods() -> None:
    app = small_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answer = await c.delete("/echo")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (None, "http://127.0.0.1:8000/where"),
        ("https://Insights.Example.com/", "https://insights.example.com/where"),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080/where"),
    ],
)
async def test_absolute_urls_come_from_the_public_base_url_never_the_host_header(
    configured: str | None, expected: str
) -> None:
    settings: dict[str, Any] = {"PUBLIC_BASE_URL": configured} if configured else {}
    app = small_app(HttpSettings.model_validate(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answer = await c.get(
            "/where", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        )
    assert answer.json() == {"url": expected}


@pytest.mark.parametrize(
    "bad", ["insights.example.com", "ftp://x", "https://x/insights", "https://x?a=1", "https://u@x"]
)
def test_a_public_base_url_that_is_not_an_origin_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="PUBLIC_BASE_URL"):
        public_origin(bad)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/api/v1/users", {"GET"}),
        ("DELETE", "/api/v1/imports", {"GET", "POST"}),
        ("PUT", "/api/docs", {"GET", "HEAD"}),
        ("POST", "/users/alex", {"GET", "HEAD"}),
    ],
)
async def test_405_of_the_product_names_what_the_path_allows(
    in_process: InProcess, method: str, path: str, allowed: set[str]
) -> None:
    answer = await in_process.client.request(method, path, headers=in_process.auth)
    assert answer.status_code == 405
    assert {part.strip() for part in answer.headers["allow"].split(",")} == allowed


async def test_an_import_s_location_names_the_public_origin_not_the_host_header(
    in_process: InProcess,
) -> None:
    answer = await in_process.client.post(
        "/api/v1/imports",
        headers={**in_process.auth, "Host": "evil.example"},
        files={"file": ("users.csv", b"user_id,phone_number\nalex,+14155550171\n", "text/csv")},
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == (
        f"http://127.0.0.1:8000/api/v1/imports/{answer.json()['id']}"
    )


async def test_each_distributed_service_app_has_the_guards() -> None:
    from insights.distributed import service_app  # noqa: PLC0415

    app = service_app("query", None, readiness=[])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        docs = await c.get("/api/docs")
        health = await c.get("/healthz")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    assert health.headers["x-content-type-options"] == "nosniff"
    assert app.state.public_origin == "http://127.0.0.1:8000"
