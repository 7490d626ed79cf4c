"""A client span for each PostgreSQL statement made within a trace (`postgresql INSERT`), when
tracing is on.

asyncpg calls a connection's query loggers after each statement (`execute`, `fetch*`,
`executemany`; not COPY), in the caller's context: the span is made then, dated from the
statement's own timing, under the span that was current. A connection gets the logger only when
the process traces, so without tracing asyncpg does no extra work; statements made outside any
trace (the readiness probe, migrations) make no span.

opentelemetry-instrumentation-asyncpg would wrap the same calls, but it has no release of the
version the other instrumentations are pinned at (0.66b2), and it starts a trace of its own for
every statement made outside one.
"""

from __future__ import annotations

import time

import asyncpg
from asyncpg.connection import LoggedQuery
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode


class StatementSpans:
    """The query logger a traced process adds to each of its connections."""

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = trace.get_tracer(__name__, tracer_provider=provider)

    async def watch(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        """Add the logger to a new connection (asyncpg's pool `init`, or after `connect`)."""
        conn.add_query_logger(self)

    def __call__(self, record: LoggedQuery) -> None:
        if not trace.get_current_span().is_recording():
            return
        end = time.time_ns()
        operation = operation_of(record.query)
        attributes: dict[str, str | int] = {
            "db.system.name": "postgresql",
            "db.operation.name": operation,
            # The statement's text: values are bound as parameters, never part of it.
            "db.query.text": record.query,
        }
        database = getattr(record.conn_params, "database", None)
        if database:
            attributes["db.namespace"] = database
        if isinstance(record.conn_addr, tuple):
            attributes["server.address"], attributes["server.port"] = record.conn_addr[:2]
        span = self._tracer.start_span(
            f"postgresql {operation}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=end - int(record.elapsed * 1e9),
        )
        if record.exception is not None:
            # Its type only: a constraint's message may quote the values it refused.
            kind = type(record.exception).__qualname__
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end(end_time=end)


def operation_of(query: str) -> str:
    """The statement's first keyword (`SELECT`, `INSERT`, `WITH`...), upper-cased."""
    words = query.split(None, 1)
    return words[0].upper().rstrip(";") if words else "QUERY"
