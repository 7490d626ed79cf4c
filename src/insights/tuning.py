"""Process-wide tuning for a serving process (`insights dev`, `insights serve <name>`): its
garbage collector, its event loop, and the HTTP server in front of its app."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from insights_common.http.guard import HttpSettings

T = TypeVar("T")

# Collect young objects after 50,000 net allocations instead of 700. The services allocate
# events, documents and responses by the thousand for each batch; with the default the
# collector ran every few events and walked them all again, and took half of the projector's
# CPU. Cycles (tracebacks, closed connections) are still collected, only later.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_startup_objects() -> None:
    """Exempt what start-up built (modules, schemas, routes) from every later collection."""
    gc.collect()
    gc.freeze()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (Linux and macOS), else None: asyncio's own.

    At 1,000,000 users the query API answered 10% more requests a second on uvloop, the query
    service taking 0.8 ms of CPU a request instead of 0.9 and the gateway 0.3 instead of 0.4
    (docs/performance.md).
    """
    try:
        import uvloop  # noqa: PLC0415 - optional: not built for every platform
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the fastest event loop there is (uvicorn.run picks the same one itself)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)


def server_config(
    app: FastAPI,
    http: HttpSettings,
    *,
    host: str,
    port: int,
    log_level: str,
    own_logging: bool = True,
) -> uvicorn.Config:
    """uvicorn's settings for a serving process: the limits of `http` in front of `app`.

    uvicorn caps connections and kept-alive idleness itself; the size and time of a request's
    headers and the pauses in its body are `GuardedHttpTools`'s. Without `own_logging`, uvicorn
    leaves the logging the process set up as it is.
    """
    trusted = [entry.strip() for entry in http.trusted_proxies.split(",") if entry.strip()]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(http),
        log_level=log_level,
        log_config=uvicorn.config.LOGGING_CONFIG if own_logging else None,
        access_log=False,
        lifespan="on",
        limit_concurrency=http.max_connections,
        backlog=http.backlog,
        timeout_keep_alive=http.keep_alive_seconds,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        server_header=False,
    )


class _TooLarge(Exception):
    """Raised inside the parser to stop it; it reports a malformed request."""


def guarded_protocol(http: HttpSettings) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a bound on the bytes and time of a request's line and
    headers, and on the pauses between parts of its body."""

    class GuardedHttpTools(HttpToolsProtocol):
        max_header_bytes = http.max_header_bytes
        header_timeout = http.header_timeout_seconds
        body_timeout = http.body_timeout_seconds

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_bytes = 0
            self._header_timer: asyncio.TimerHandle | None = None
            self._body_timer: asyncio.TimerHandle | None = None
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timers()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            # The parser reports an exception raised by a callback as a malformed request.
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, "Request Header Fields Too Large", "the request's headers")
            else:
                super().send_400_response(msg)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes = 0
            self._arm_header_timer()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().on_headers_complete()
            self._arm_body_timer()

        def on_body(self, body: bytes) -> None:
            super().on_body(body)
            self._arm_body_timer()

        def on_message_complete(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            super().on_message_complete()

        def _count(self, size: int) -> None:
            self._header_bytes += size
            if self._header_bytes > self.max_header_bytes:
                raise _TooLarge

        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

        def _arm_body_timer(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_late)

        def _cancel_timers(self) -> None:
            for timer in (self._header_timer, self._body_timer):
                if timer is not None:
                    timer.cancel()
            self._header_timer = self._body_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            self._refuse(408, "Request Timeout", "the request's headers")

        def _body_late(self) -> None:
            self._body_timer = None
            if self.flow.read_paused:
                # The app is not reading (yet): the wait is ours, not the client's.
                self._arm_body_timer()
                return
            cycle = self.cycle
            if cycle is not None and not cycle.response_started:
                self._refuse(408, "Request Timeout", "the request's body")
            elif not self.transport.is_closing():
                self.transport.close()
            if cycle is not None:
                # The app reading the body learns that it will not come (a 400 in the log).
                cycle.disconnected = True
                cycle.message_event.set()

        def _refuse(self, status: int, phrase: str, what: str) -> None:
            if self.transport.is_closing():
                return
            self._cancel_timers()
            client = "%s:%d" % self.client if self.client else "a client"  # noqa: UP031
            self.logger.warning(
                "%d %s: %s sent %s too slowly or too large", status, phrase, client, what
            )
            message = f"{phrase}: {what} took too long or was too large.\n".encode()
            self.transport.write(
                b"".join(
                    [
                        f"HTTP/1.1 {status} {phrase}\r\n".encode(),
                        b"content-type: text/plain; charset=utf-8\r\n",
                        f"content-length: {len(message)}\r\n".encode(),
                        b"connection: close\r\n\r\n",
                        message,
                    ]
                )
            )
            self.transport.close()

    return GuardedHttpTools
