"""The edge (Debian's nginx with deploy/nginx/insights.conf.template) sends each API path to the
service that owns it, passes requests and answers on as sent, serves the dashboard with its cache
headers, enforces the services' limits and says, as a problem document, which service is down.

The services here are small aiohttp apps that answer what they were sent; the distributed flows
(tests/e2e/test_flow.py and the others on the `distributed` fixture) go through the same edge to
the real services.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.deployments import local_edge

pytestmark = pytest.mark.e2e

SERVICES = ("import", "ingest", "query")
EXPORT = b"".join(bytes([n]) * 16_384 for n in range(64))
NAME = web.AppKey("name", str)


async def echo(request: web.Request) -> web.StreamResponse:
    """What the service was sent: its name, the request line, headers and the body's digest; a
    body of unknown length on /api/v1/imports/export; a large JSON on /api/v1/users/big."""
    if request.path == "/api/v1/events" and "refuse" in request.query:
        # As ingest does with a caller it cannot authenticate: answered from the headers.
        return web.json_response({"refused": True}, status=401)
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
            "service": request.app[NAME],
            "method": request.method,
            "target": request.raw_path,
            "headers": [[k.lower(), v] for k, v in request.headers.items()],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_length": len(body),
            "padding": "x" * (20_000 if request.path == "/api/v1/users/big" else 0),
        },
        status=201 if request.method == "POST" else 200,
    )
    answer.headers.add("X-Multi", "one")
    answer.headers.add("X-Multi", "two")
    answer.headers["Keep-Alive"] = "timeout=5"
    return answer


@contextlib.asynccontextmanager
async def upstreams() -> AsyncIterator[dict[str, str]]:
    """An echoing service per name; host:port of each."""
    runners = []
    addresses = {}
    try:
        for name in SERVICES:
            service = web.Application(client_max_size=80 * 1024 * 1024)
            service[NAME] = name
            service.router.add_route("*", "/{tail:.*}", echo)
            runner = web.AppRunner(service)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            addresses[name] = f"{host}:{port}"
        yield addresses
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
def dashboard() -> Iterator[Path]:
    """A built dashboard: index.html and one hashed file (under /tmp: nginx's workers run as
    nobody and must reach it)."""
    root = Path(tempfile.mkdtemp(prefix="insights-dashboard-"))
    root.chmod(0o755)
    (root / "assets").mkdir(mode=0o755)
    (root / "index.html").write_text("<!doctype html><title>built</title>")
    (root / "assets" / "app-3f9a.js").write_text("console.log(1);" * 200)
    for path in (root / "index.html", root / "assets" / "app-3f9a.js"):
        path.chmod(0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def edge_to(
    addresses: dict[str, str], work_dir: Path, dashboard: Path | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    extra: dict[str, Any] = {"dashboard": dashboard} if dashboard else {}
    edge = local_edge().Edge(
        addresses["import"],
        addresses["ingest"],
        addresses["query"],
        free_port(),
        work_dir=work_dir,
        **extra,
    )
    await asyncio.to_thread(edge.start)
    try:
        async with httpx.AsyncClient(base_url=edge.url, timeout=30) as client:
            yield client
    finally:
        await asyncio.to_thread(edge.stop)


@pytest.fixture
async def edge(tmp_path: Path, dashboard: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with upstreams() as addresses, edge_to(addresses, tmp_path / "edge", dashboard) as c:
        yield c


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
        ("/api/v1/eventsx", "query"),
        ("/api/v1/messages/m1", "query"),
        ("/api/v1/openapi.json", "query"),
        ("/api/v1/asyncapi.json", "query"),
        ("/api/docs", "query"),
    ],
)
async def test_each_path_goes_to_its_service(
    edge: httpx.AsyncClient, path: str, service: str
) -> None:
    answer = await edge.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.json()["service"] == service


@pytest.mark.parametrize(
    ("path", "service"), [("/api/v1/users", "query"), ("/api/v1/events", "ingest")]
)
async def test_a_method_nginx_refuses_itself_is_answered_by_the_owner(
    edge: httpx.AsyncClient, path: str, service: str
) -> None:
    """TRACE: the service that owns the path says which methods it allows."""
    answer = await edge.request("TRACE", path)
    assert (answer.json()["service"], answer.json()["method"]) == (service, "TRACE")


async def test_requests_go_on_as_sent_less_hop_by_hop_headers_plus_forwarded_ones(
    edge: httpx.AsyncClient,
) -> None:
    answer = await edge.get(
        "/api/v1/users?q=%EA%B9%80+min&limit=2",
        headers={
            "Authorization": "Bearer uik_x",
            "X-Forwarded-For": "198.51.100.1",
            "TE": "trailers",
            "Accept-Encoding": "identity",
        },
    )
    assert answer.status_code == 200
    seen = answer.json()
    assert seen["target"] == "/api/v1/users?q=%EA%B9%80+min&limit=2"
    headers = dict(seen["headers"])
    assert headers["authorization"] == "Bearer uik_x"
    assert headers["x-forwarded-for"] == "198.51.100.1, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert "te" not in headers
    assert answer.headers.get_list("x-multi") == ["one", "two"]
    assert "keep-alive" not in answer.headers
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    # One of each browser header, whoever set it.
    assert len(answer.headers.get_list("content-security-policy")) == 1


@pytest.mark.parametrize("size", [10, 3 * 1024 * 1024])
async def test_bodies_small_and_large_arrive_whole_both_ways(
    edge: httpx.AsyncClient, size: int
) -> None:
    upload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    posted = await edge.post(
        "/api/v1/imports", content=upload, headers={"Content-Type": "text/csv"}
    )
    export = await edge.get("/api/v1/imports/export")
    assert posted.status_code == 201
    seen = posted.json()
    assert (seen["method"], seen["body_length"]) == ("POST", size)
    assert seen["body_sha256"] == hashlib.sha256(upload).hexdigest()
    assert export.status_code == 200
    assert export.content == EXPORT


async def test_a_webhook_is_refused_from_its_headers_before_its_body_is_sent(
    edge: httpx.AsyncClient,
) -> None:
    """The edge does not hold the body back: the service answers before the caller sends it."""
    port = edge.base_url.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /api/v1/events?refuse HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n[" + b" " * 1000
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert status.startswith(b"HTTP/1.1 401"), status


async def test_answers_are_compressed_for_clients_that_take_it(edge: httpx.AsyncClient) -> None:
    answer = await edge.get("/api/v1/users/big", headers={"Accept-Encoding": "gzip"})
    assert answer.headers["content-encoding"] == "gzip"
    assert len(gzip.compress(answer.content)) < 2_000 < len(answer.content)
    assert answer.json()["service"] == "query"


async def test_the_dashboard_is_served_with_the_cache_headers_of_insights_dev(
    edge: httpx.AsyncClient,
) -> None:
    pages = [await edge.get(path) for path in ("/", "/users/alex", "/imports", "/templates/w")]
    assert {page.status_code for page in pages} == {200}
    assert {page.headers["cache-control"] for page in pages} == {"no-cache"}
    assert {page.text for page in pages} == {"<!doctype html><title>built</title>"}
    asset = await edge.get("/assets/app-3f9a.js")
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asset.headers["x-content-type-options"] == "nosniff"
    missing = await edge.get("/assets/app-old.js")
    assert missing.status_code == 404
    assert "its file names changed" in missing.json()["detail"]
    # A browser opening an address no page has gets the dashboard, which says so; an API
    # client a problem document.
    unknown = await edge.get("/nowhere", headers={"Accept": "text/html"})
    assert (unknown.status_code, unknown.text) == (404, pages[0].text)
    assert (await edge.get("/nowhere")).headers["content-type"] == "application/problem+json"


async def test_the_services_limits_are_the_edges(edge: httpx.AsyncClient) -> None:
    huge = await edge.get("/api/v1/users", headers={"X-Big": "x" * 17_000})
    assert huge.status_code == 431
    assert "16 KiB" in huge.json()["detail"]
    webhook = await edge.post("/api/v1/events", content=b"[" + b" " * (11 * 1024 * 1024) + b"]")
    assert webhook.status_code == 413
    assert webhook.headers["content-type"] == "application/problem+json"
    assert "10 MiB for a webhook batch" in webhook.json()["detail"]
    taken = await edge.post("/api/v1/events", content=b"[" + b" " * (9 * 1024 * 1024) + b"]")
    assert taken.json()["service"] == "ingest"


async def test_a_service_that_is_down_gives_a_502_naming_it(tmp_path: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"
    async with edge_to(dict.fromkeys(SERVICES, closed), tmp_path / "edge") as edge:
        for path, name in (("/api/v1/users", "query"), ("/api/v1/imports", "import")):
            answer = await edge.get(path)
            assert answer.status_code == 502
            assert answer.headers["content-type"] == "application/problem+json"
            assert f"The {name} service is not answering" in answer.json()["detail"]
        assert (await edge.get("/healthz")).status_code == 200


# A replica of its own process, to be killed: it answers every request with its address.
REPLICA = """
import http.server, json, sys

class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def answer(self, status):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"replica": sys.argv[1]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(200)

    def do_POST(self):
        self.answer(201)

    def log_message(self, *args):
        pass

host, port = sys.argv[1].rsplit(":", 1)
http.server.ThreadingHTTPServer((host, int(port)), Answer).serve_forever()
"""


@contextlib.asynccontextmanager
async def replicas(count: int) -> AsyncIterator[dict[str, asyncio.subprocess.Process]]:
    """`count` replica processes, by host:port, each answering."""
    started = {}
    try:
        for _ in range(count):
            address = f"127.0.0.1:{free_port()}"
            started[address] = await asyncio.create_subprocess_exec(
                *(sys.executable, "-I", "-S", "-c", REPLICA, address),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        async with httpx.AsyncClient(timeout=1) as client:
            for address in started:
                for _ in range(200):
                    with contextlib.suppress(httpx.TransportError):
                        await client.get(f"http://{address}/")
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"the replica at {address} did not answer in 10 s")
        yield started
    finally:
        for process in started.values():
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_replica_that_dies_costs_no_request(tmp_path: Path) -> None:
    """Two query and two ingest replicas; one of each is SIGKILLed: every GET and POST after it
    is answered by the other, the first ones after trying the dead one."""
    async with upstreams() as addresses, replicas(4) as started:
        query, ingest = list(started)[:2], list(started)[2:]
        addresses |= {"query": ",".join(query), "ingest": ",".join(ingest)}
        async with edge_to(addresses, tmp_path / "edge") as edge:

            async def answered_by(method: str, path: str) -> str:
                answer = await edge.request(
                    method, path, content=b"[]" if method == "POST" else None
                )
                assert answer.status_code == (201 if method == "POST" else 200), answer.text
                return str(answer.json()["replica"])

            both = {await answered_by("GET", "/api/v1/users") for _ in range(4)}
            both |= {await answered_by("POST", "/api/v1/events") for _ in range(4)}
            assert both == set(started)
            for dead in (query[1], ingest[1]):
                started[dead].kill()
                await started[dead].wait()
            after = [await answered_by("GET", "/api/v1/users") for _ in range(10)]
            after += [await answered_by("POST", "/api/v1/events") for _ in range(10)]
            assert set(after) == {query[0], ingest[0]}
        log = [json.loads(line) for line in (tmp_path / "edge/access.log").read_text().splitlines()]
        # The first request of each after the kill tried the dead replica, then the live one.
        tried = {line["upstream"] for line in log if "," in line["upstream"]}
        assert tried == {f"{query[1]}, {query[0]}", f"{ingest[1]}, {ingest[0]}"}


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp_path / "edge.crt", tmp_path / "edge.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",  # noqa: S607
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_the_edge_terminates_tls_where_configured(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    async with upstreams() as addresses:
        edge = local_edge().Edge(
            addresses["import"],
            addresses["ingest"],
            addresses["query"],
            free_port(),
            work_dir=tmp_path / "edge",
            tls_cert=cert,
            tls_key=key,
        )
        await asyncio.to_thread(edge.start)
        try:
            assert edge.url.startswith("https://")
            trust = ssl.create_default_context(cafile=str(cert))
            async with httpx.AsyncClient(base_url=edge.url, verify=trust) as client:
                answer = await client.get("/api/v1/users")
            forwarded = dict(answer.json()["headers"])
            assert forwarded["x-forwarded-proto"] == "https"
        finally:
            await asyncio.to_thread(edge.stop)
