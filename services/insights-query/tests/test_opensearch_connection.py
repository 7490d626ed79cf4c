"""The HTTP under the OpenSearch client (`LeanConnection`): against a real node, and against a
small HTTP server that answers in the shapes a node or a proxy in front of one can (chunked,
closing, stalling, compressed, garbled, over TLS), which a real node cannot be made to on cue."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import (
    ConnectionError,  # noqa: A004
    ConnectionTimeout,
    NotFoundError,
    SSLError,
)

from insights_query.adapters.opensearch import create_client
from insights_query.adapters.opensearch.connection import LeanConnection
from insights_query.adapters.opensearch.errors import passing
from insights_query.adapters.opensearch.traced import TracedTransport

# -- against a real node ---------------------------------------------------------------------


@pytest.mark.integration
async def test_a_real_node_answers_every_shape_the_store_asks_in(opensearch_url: str) -> None:
    client = create_client(opensearch_url, pool=4)
    index = f"lean-{uuid.uuid4().hex[:8]}"
    try:
        assert await client.indices.exists(index=index) is False  # HEAD, answered 404
        await client.indices.create(index=index)
        assert await client.indices.exists(index=index) is True  # HEAD with a length, no body
        # A bulk body over a mebibyte, Hangul in it: written whole, read back the same.
        text = "알림톡 " * 40
        lines = b"".join(
            orjson.dumps({"index": {"_index": index, "_id": str(n)}})
            + b"\n"
            + orjson.dumps({"n": n, "text": text})
            + b"\n"
            for n in range(6_000)
        )
        assert len(lines) > 1_000_000
        response = await client.bulk(body=lines, params={"refresh": "true"})
        assert response["errors"] is False and len(response["items"]) == 6_000
        got = await client.mget(index=index, body={"ids": ["0", "5999", "none"]})
        assert [d["found"] for d in got["docs"]] == [True, True, False]
        assert got["docs"][1]["_source"] == {"n": 5999, "text": text}
        with pytest.raises(NotFoundError) as missing:
            await client.get(index=index, id="none")
        assert missing.value.status_code == 404
        # Many at once through a pool of four: each answered, never more than four opened.
        answers = await asyncio.gather(
            *(client.get(index=index, id=str(n)) for n in range(0, 6_000, 60))
        )
        assert [a["_source"]["n"] for a in answers] == list(range(0, 6_000, 60))
        (connection,) = client.transport.connection_pool.connections
        assert isinstance(connection, LeanConnection)
        assert len(connection._idle) <= 4
        # Text, not JSON, comes back as text, as the stock connection gives it.
        listed = await client.cat.indices(index=index, h="index")
        assert isinstance(listed, str) and listed.strip() == index
    finally:
        await client.indices.delete(index=index, ignore_unavailable=True)
        await client.close()


@pytest.mark.integration
async def test_credentials_in_the_url_are_sent_as_basic_auth(opensearch_url: str) -> None:
    """The node here has no security plugin, so it answers whatever the credentials; the
    request that carried them is what is checked, through the connection the URL made."""
    host = opensearch_url.split("://", 1)[1]
    client = create_client(f"http://ops%40example:pa%3Ass@{host}")
    try:
        assert (await client.info())["version"]["distribution"] == "opensearch"
        (connection,) = client.transport.connection_pool.connections
        assert "authorization: Basic b3BzQGV4YW1wbGU6cGE6c3M=\r\n" in connection._fixed
    finally:
        await client.close()


# -- against a server that answers in each shape ---------------------------------------------


@dataclass
class Shapes:
    """An HTTP/1.1 server on loopback; the request's path says how it answers."""

    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b" /early " in head:
                    # Refused on its head alone, as a node refuses a body over its limit; the
                    # body is left unread while the client may still be writing it.
                    writer.write(_response(b'{"error":"too_long"}', status=b"413 Too Large"))
                    await writer.drain()
                    await asyncio.sleep(1)
                    break
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                served += 1
                method, target = head.split(b" ", 2)[:2]
                path = target.split(b"?", 1)[0]
                if not await self.answer(method, path, served, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        finally:
            writer.close()

    async def answer(
        self, method: bytes, path: bytes, served: int, body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer the request; whether the connection stays open for another."""
        json = b'{"ok":true,"served":%d}' % served
        if path == b"/json":
            writer.write(_response(json))
        elif path == b"/echo":
            writer.write(_response(body))
        elif path == b"/chunked":
            parts = [json[:5], json[5:9], json[9:]]
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"transfer-encoding: chunked\r\n\r\n" + chunks
            )
        elif path == b"/close":
            writer.write(_response(json, b"connection: close\r\n"))
            await writer.drain()
            return False
        elif path == b"/gzip":
            writer.write(_response(gzip.compress(json), b"content-encoding: gzip\r\n"))
        elif path == b"/head" and method == b"HEAD":
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n"
            )
        elif path == b"/missing":
            error = b'{"error":{"type":"index_not_found_exception"},"status":404}'
            writer.write(_response(error, status=b"404 Not Found"))
        elif path == b"/drop-second" and served == 2:
            return False  # closed as the request came in: never read, never answered
        elif path == b"/drop-second":
            writer.write(_response(json))
        elif path == b"/half":
            writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"ok":')
            await writer.drain()
            return False
        elif path == b"/garbage":
            writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        elif path == b"/early":
            return False  # answered before the body was read (never reached: see `serve`)
        elif path == b"/stall":
            await asyncio.sleep(30)
        await writer.drain()
        return True


def _response(body: bytes, extra: bytes = b"", status: bytes = b"200 OK") -> bytes:
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json; charset=UTF-8\r\n"
        b"content-length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)
    )


@pytest.fixture
async def shapes() -> AsyncIterator[Shapes]:
    served = Shapes()
    server = await asyncio.start_server(served.serve, "127.0.0.1", 0)
    served.port = server.sockets[0].getsockname()[1]
    try:
        yield served
    finally:
        server.close()


def _connection(port: int, **options: object) -> LeanConnection:
    return LeanConnection(host="127.0.0.1", port=port, **options)  # type: ignore[arg-type]


Connect = Callable[..., LeanConnection]


@pytest.fixture
async def connect(shapes: Shapes) -> AsyncIterator[Connect]:
    """Connections to `shapes` with the options given, each closed at the test's end."""
    made: list[LeanConnection] = []

    def connection(**options: object) -> LeanConnection:
        made.append(_connection(shapes.port, **options))
        return made[-1]

    yield connection
    for each in made:
        await each.close()


async def _get(connection: LeanConnection, path: str, method: str = "GET") -> tuple[int, object]:
    status, _, data = await connection.perform_request(method, path)
    return status, orjson.loads(data) if data else data


@pytest.mark.unit
async def test_a_kept_connection_carries_the_next_request(shapes: Shapes, connect: Connect) -> None:
    connection = connect()
    for served in (1, 2, 3):
        assert await _get(connection, "/json") == (200, {"ok": True, "served": served})
    assert shapes.connections == 1


@pytest.mark.unit
async def test_a_request_goes_out_whole_with_its_length_and_query(
    shapes: Shapes, connect: Connect
) -> None:
    connection = connect(headers={"X-Opaque-Id": "trail"})
    body = "알림톡".encode() * 1000
    status, _, data = await connection.perform_request(
        "POST", "/echo", params={"refresh": "true", "q": "a b"}, body=body
    )
    assert status == 200 and data == body
    request = shapes.requests[-1]
    assert request.startswith(b"POST /echo?refresh=true&q=a+b HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:%d\r\n" % shapes.port in request
    assert b"\r\nx-opaque-id: trail\r\n" in request
    assert b"\r\ncontent-length: %d\r\n" % len(body) in request


@pytest.mark.unit
async def test_an_answer_before_the_body_left_closes_the_connection(connect: Connect) -> None:
    connection = connect()
    status, _, data = await connection.perform_request(
        "POST", "/early", body=b"x" * 64_000_000, ignore=(413,)
    )
    assert status == 413
    assert not connection._idle  # the rest of the body would be the next request's start
    assert await _get(connection, "/json") == (200, {"ok": True, "served": 1})


@pytest.mark.unit
async def test_a_chunked_answer_is_read_whole(connect: Connect) -> None:
    connection = connect()
    assert await _get(connection, "/chunked") == (200, {"ok": True, "served": 1})
    assert await _get(connection, "/json") == (200, {"ok": True, "served": 2})


@pytest.mark.unit
async def test_a_head_answer_has_no_body_whatever_length_it_names(
    shapes: Shapes, connect: Connect
) -> None:
    connection = connect()
    assert await _get(connection, "/head", method="HEAD") == (200, b"")
    # The next answer on the same connection is read from its own start.
    assert await _get(connection, "/json") == (200, {"ok": True, "served": 2})
    assert shapes.connections == 1


@pytest.mark.unit
async def test_a_connection_the_node_closes_is_not_used_again(
    shapes: Shapes, connect: Connect
) -> None:
    connection = connect()
    assert await _get(connection, "/close") == (200, {"ok": True, "served": 1})
    assert await _get(connection, "/json") == (200, {"ok": True, "served": 1})
    assert shapes.connections == 2


@pytest.mark.unit
async def test_a_kept_connection_closed_as_the_request_came_is_retried_on_a_new_one(
    shapes: Shapes, connect: Connect
) -> None:
    connection = connect()
    assert await _get(connection, "/drop-second") == (200, {"ok": True, "served": 1})
    # The second request on that connection is dropped unanswered; it goes again, once.
    assert await _get(connection, "/drop-second") == (200, {"ok": True, "served": 1})
    assert shapes.connections == 2


@pytest.mark.unit
async def test_an_answer_cut_short_is_a_connection_error_and_not_retried(
    shapes: Shapes, connect: Connect
) -> None:
    connection = connect()
    await _get(connection, "/json")
    with pytest.raises(ConnectionError) as raised:
        await _get(connection, "/half")
    assert passing(raised.value)
    assert len([r for r in shapes.requests if b" /half " in r]) == 1
    assert await _get(connection, "/json") == (200, {"ok": True, "served": 1})


@pytest.mark.unit
async def test_what_is_not_http_is_a_connection_error(shapes: Shapes, connect: Connect) -> None:
    connection = connect()
    with pytest.raises(ConnectionError, match="unreadable response"):
        await _get(connection, "/garbage")
    assert await _get(connection, "/json") == (200, {"ok": True, "served": 1})
    assert shapes.connections == 2


@pytest.mark.unit
async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_dropped(
    shapes: Shapes, connect: Connect
) -> None:
    connection = connect(timeout=0.3)
    with pytest.raises(ConnectionTimeout):
        await _get(connection, "/stall")
    assert passing(ConnectionTimeout("TIMEOUT", "", None))
    # The late answer can never be taken for the next request's.
    assert await _get(connection, "/json") == (200, {"ok": True, "served": 1})
    assert shapes.connections == 2


@pytest.mark.unit
async def test_a_cancelled_request_leaves_no_connection_half_read(connect: Connect) -> None:
    connection = connect()
    stalled = asyncio.create_task(_get(connection, "/stall"))
    await asyncio.sleep(0.2)
    stalled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stalled
    assert await _get(connection, "/json") == (200, {"ok": True, "served": 1})
    assert not connection._busy


@pytest.mark.unit
async def test_requests_beyond_the_pool_wait_for_a_connection(
    shapes: Shapes, connect: Connect
) -> None:
    connection = connect(pool_maxsize=2)
    answers = await asyncio.gather(*(_get(connection, "/json") for _ in range(20)))
    assert all(status == 200 for status, _ in answers)
    assert shapes.connections == 2


@pytest.mark.unit
async def test_a_compressed_answer_is_inflated(connect: Connect) -> None:
    connection = connect()
    assert await _get(connection, "/gzip") == (200, {"ok": True, "served": 1})


@pytest.mark.unit
async def test_an_error_status_raises_what_the_stock_connection_raises(shapes: Shapes) -> None:
    client = AsyncOpenSearch(
        hosts=[f"http://127.0.0.1:{shapes.port}"],
        transport_class=TracedTransport,
        connection_class=LeanConnection,
        max_retries=0,
    )
    try:
        with pytest.raises(NotFoundError) as raised:
            await client.transport.perform_request("GET", "/missing")
        assert raised.value.error == "index_not_found_exception"
        assert passing(raised.value)
    finally:
        await client.close()


@pytest.mark.unit
async def test_nothing_listening_is_a_connection_error() -> None:
    connection = _connection(9)  # discard: nothing listens there
    with pytest.raises(ConnectionError):
        await _get(connection, "/json")
    await connection.close()


# -- TLS -----------------------------------------------------------------------------------


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opensearch.test")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=36_500))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "node.pem", directory / "node.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.unit
async def test_tls_is_verified_against_the_authorities_given(tmp_path: Path) -> None:
    (tmp_path / "node").mkdir()
    (tmp_path / "stranger").mkdir()
    cert, key = _certificate(tmp_path / "node")
    stranger, _ = _certificate(tmp_path / "stranger")
    served = Shapes()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(served.serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        trusting = _connection(port, use_ssl=True, ca_certs=str(cert))
        try:
            assert await _get(trusting, "/json") == (200, {"ok": True, "served": 1})
        finally:
            await trusting.close()
        doubting = _connection(port, use_ssl=True, ca_certs=str(stranger))
        try:
            with pytest.raises(SSLError) as raised:
                await _get(doubting, "/json")
            assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
        finally:
            await doubting.close()
    finally:
        server.close()
