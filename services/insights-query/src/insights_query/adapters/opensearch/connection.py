"""HTTP/1.1 to one OpenSearch node on asyncio's own transports: the connection class under
opensearch-py's transport.

The transport keeps what it does: choosing a node, retrying on another, setting aside one that
fails, the JSON. Under it, opensearch-py's stock connection speaks HTTP through aiohttp, which
cost the query process about 0.25 ms of CPU a request on a 2-core machine, more than OpenSearch
spends answering a message's details (docs/performance.md, "The OpenSearch client's own HTTP").
Here a request is written in one piece and its response parsed by httptools (llhttp, the
parser uvicorn serves with): bodies by length or chunked, a `HEAD` answer without one, and the
connection kept for the next request unless the node says otherwise.

A node's connections are a pool of at most `maxsize` (`pool_maxsize`): a request finding them
all busy waits for one. A connection whose request timed out, was cancelled or failed is closed,
never reused half-read; one left idle longer than `IDLE_SECONDS` is closed rather than trusted.
A kept connection the node had closed while it lay idle takes the request again on a new one,
once, when nothing at all came back on it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import ssl
import time
from collections.abc import Collection, Mapping
from typing import Any, cast
from urllib.parse import urlencode

import httptools
from opensearchpy import AsyncConnection
from opensearchpy.exceptions import (
    ConnectionError,  # noqa: A004 - opensearch-py's, which its transport retries
    ConnectionTimeout,
    ImproperlyConfigured,
    SSLError,
)

IDLE_SECONDS = 30.0  # a kept connection idle longer is closed, not reused

# An answer: its status, its headers (lower-case names), its body, whether the connection stays.
_Answer = tuple[int, dict[str, str], bytes, bool]


class _Lost(Exception):
    """The connection ended before its answer was whole."""

    def __init__(self, cause: BaseException | None, *, answered: bool) -> None:
        super().__init__(f"the connection closed mid-exchange{f': {cause}' if cause else ''}")
        self.answered = answered


class _Link(asyncio.Protocol):
    """One TCP (or TLS) connection to a node, carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[_Answer] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._head = False
        self._answered = False
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    async def exchange(self, request: bytes, *, head: bool) -> _Answer:
        """Write `request`; answer (status, headers with lower-case names, body, keep-alive)."""
        if self.transport is None or self.closed:
            raise _Lost(None, answered=False)
        self._parser = httptools.HttpResponseParser(self)
        self._head = head
        self._answered = False
        self._headers = {}
        self._body = []
        waiter: asyncio.Future[_Answer] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(request)
        try:
            return await waiter
        finally:
            self._waiter = None

    def sent_whole(self) -> bool:
        """Whether all of the request left: a node can answer (a 413, a 400) before it has read
        a large body, and the rest of it must not arrive as the start of the next request."""
        return self.transport is not None and self.transport.get_write_buffer_size() == 0

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, unregistered

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(_Lost(exc, answered=self._answered))

    def data_received(self, data: bytes) -> None:
        self._answered = True
        if self._parser is None:
            # Bytes no request asked for: nothing after them can be trusted on this connection.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError("N/A", f"an unreadable response: {exc}", exc))
            self.close()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        earlier = self._headers.get(key)
        self._headers[key] = text if earlier is None else f"{earlier}, {text}"

    def on_headers_complete(self) -> None:
        if self._head:
            self._done()  # a HEAD answer has no body, whatever length it names

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._done()

    def _done(self) -> None:
        parser, self._parser = self._parser, None
        waiter = self._waiter
        if parser is None or waiter is None or waiter.done():
            return
        status = parser.get_status_code()
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        waiter.set_result((status, self._headers, body, parser.should_keep_alive()))

    def _fail(self, error: BaseException) -> None:
        self._parser = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


def _transport_error(exc: BaseException) -> BaseException:
    """What opensearch-py's transport retries on, for what an exchange raised."""
    if isinstance(exc, ConnectionError):  # opensearch-py's own already (an unreadable answer)
        return exc
    if isinstance(exc, TimeoutError):
        return ConnectionTimeout("TIMEOUT", f"no answer within the timeout: {exc}", exc)
    if isinstance(exc, ssl.SSLError):
        return SSLError("N/A", str(exc), exc)
    return ConnectionError("N/A", str(exc), exc)


class LeanConnection(AsyncConnection):
    """opensearch-py's connection class for one node (`AsyncOpenSearch(connection_class=...)`):
    the options of its stock aiohttp one that this product uses, over `_Link`s."""

    def __init__(
        self,
        host: str = "localhost",
        port: int | None = None,
        url_prefix: str = "",
        timeout: float = 10,
        http_auth: Any = None,
        use_ssl: bool = False,
        verify_certs: bool = True,
        ca_certs: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        ssl_assert_hostname: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        maxsize: int = 10,
        headers: Mapping[str, str] | None = None,
        http_compress: bool | None = None,
        opaque_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.headers: dict[str, str] = {}
        size = int(kwargs.pop("pool_maxsize", maxsize))
        kwargs.pop("loop", None)
        super().__init__(
            host=host,
            port=port,
            url_prefix=url_prefix,
            # typed int there; a float is what it is used as
            timeout=timeout,  # type: ignore[arg-type]
            use_ssl=use_ssl,
            headers=dict(headers) if headers else None,
            http_compress=http_compress,
            opaque_id=opaque_id,
            **kwargs,
        )
        if http_auth is not None:
            if isinstance(http_auth, tuple | list):
                http_auth = ":".join(http_auth)
            token = base64.b64encode(str(http_auth).encode()).decode()
            self.headers["authorization"] = f"Basic {token}"
        self._tls = (
            ssl_context
            if ssl_context is not None or not self.use_ssl
            else self._tls_context(verify_certs, ca_certs, client_cert, client_key)
        )
        if self._tls is not None and ssl_context is None:
            self._tls.check_hostname = verify_certs and ssl_assert_hostname
        authority = f"[{host}]" if ":" in host else host
        default_port = 443 if self.use_ssl else 80
        if self.port != default_port:
            authority = f"{authority}:{self.port}"
        self._fixed = f"host: {authority}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in self.headers.items()
        )
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Link] = []
        self._busy: set[_Link] = set()

    def _tls_context(
        self,
        verify: bool,
        ca_certs: str | None,
        client_cert: str | None,
        client_key: str | None,
    ) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if verify:
            authorities = ca_certs or self.default_ca_certs()
            if not authorities:
                raise ImproperlyConfigured("no root certificates to verify the node's with")
            if os.path.isdir(authorities):
                context.load_verify_locations(capath=authorities)
            else:
                context.load_verify_locations(cafile=authorities)
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if client_cert:
            context.load_cert_chain(client_cert, client_key)
        return context

    async def perform_request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the transport's own signature
        ignore: Collection[int] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        path = self.url_prefix + url
        if params:
            path = f"{path}?{urlencode(params)}"
        full_url = self.host + path
        sent = body.encode() if isinstance(body, str) else body
        lines = self._fixed
        if headers:
            lines += "".join(f"{name.lower()}: {value}\r\n" for name, value in headers.items())
        if sent and self.http_compress:
            sent = self._gzip_compress(sent)
            lines += "content-encoding: gzip\r\n"
        if sent is not None or method in ("POST", "PUT"):
            lines += f"content-length: {len(sent or b'')}\r\n"
        request = f"{method} {path} HTTP/1.1\r\n{lines}\r\n".encode()
        if sent:
            request += sent
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                status, answer_headers, raw = await self._exchange(request, head=method == "HEAD")
        except (TimeoutError, OSError, ConnectionError, _Lost) as exc:
            self.log_request_fail(
                method, full_url, path, body, time.perf_counter() - started, exception=exc
            )
            error = _transport_error(exc)
            if error is exc:
                raise
            raise error from exc
        duration = time.perf_counter() - started
        if answer_headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        content_type = answer_headers.get("content-type")
        # JSON goes to orjson as bytes, saving a copy; anything else as text, as the stock
        # connection gives it.
        data: bytes | str = (
            raw
            if content_type is not None and content_type.startswith("application/json")
            else raw.decode("utf-8", "surrogatepass")
        )
        if "warning" in answer_headers:
            self._raise_warnings([answer_headers["warning"]])
        if not 200 <= status < 300 and status not in ignore:
            self.log_request_fail(
                method, full_url, path, body, duration, status_code=status, response=str(data)
            )
            self._raise_error(status, data, content_type)
        self.log_request_success(method, full_url, path, body, status, data, duration)  # type: ignore[arg-type]
        return status, answer_headers, data

    async def _exchange(self, request: bytes, *, head: bool) -> tuple[int, dict[str, str], bytes]:
        async with self._slots:
            link, kept = await self._take()
            try:
                try:
                    answer = await link.exchange(request, head=head)
                except _Lost as lost:
                    if not kept or lost.answered:
                        raise
                    # The node closed it while it lay idle, before reading the request.
                    self._busy.discard(link)
                    link = await self._open()
                    answer = await link.exchange(request, head=head)
            except BaseException:
                link.close()
                raise
            finally:
                self._busy.discard(link)
            status, answer_headers, raw, keep_alive = answer
            if keep_alive and not link.closed and link.sent_whole():
                link.idle_since = time.monotonic()
                self._idle.append(link)
            else:
                link.close()
            return status, answer_headers, raw

    async def _take(self) -> tuple[_Link, bool]:
        """A kept connection if one is fit, else a new one; and whether it was kept."""
        now = time.monotonic()
        while self._idle:
            link = self._idle.pop()
            if not link.closed and now - link.idle_since < IDLE_SECONDS:
                self._busy.add(link)
                return link, True
            link.close()
        return await self._open(), False

    async def _open(self) -> _Link:
        loop = asyncio.get_running_loop()
        _, link = await loop.create_connection(
            _Link,
            self.hostname,
            self.port,
            ssl=self._tls,
            server_hostname=self.hostname if self._tls is not None else None,
        )
        self._busy.add(link)
        return link

    async def close(self) -> None:
        """Close every connection, idle or in use."""
        for link in [*self._idle, *self._busy]:
            link.close()
        self._idle.clear()
        self._busy.clear()
