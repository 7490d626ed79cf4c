"""How `insights serve` logs: one JSON line per record (python-json-logger), or plain text.

Each line carries its time, level, logger, message, the service (the process kind), whatever
the call gave in `extra` (app_id, import_id...), and, while a span is current (tracing is on:
insights_common.tracing), its `trace_id` and `span_id`, so a log store can search by them and
go from a line to its trace. uvicorn's
loggers go through the same handler (the process gives uvicorn no log config of its own).
INSIGHTS_LOG_FORMAT=text gives the plain lines instead.
"""

from __future__ import annotations

import logging
import os
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

FORMATS = ("json", "text")


def log_format() -> str:
    chosen = os.environ.get("INSIGHTS_LOG_FORMAT", "json").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(
            f"INSIGHTS_LOG_FORMAT must be one of {', '.join(FORMATS)} (got {chosen!r})"
        )
    return chosen


class TraceIds(logging.Filter):
    """Adds the current span's `trace_id` and `span_id` (hex, as trace viewers show them) to a
    record; a record made outside any span gets neither."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def configure(service: str, *, chosen: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TraceIds())
    if chosen == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # opensearch-py logs every request at INFO, the readiness probes included.
    logging.getLogger("opensearch").setLevel(logging.WARNING)
