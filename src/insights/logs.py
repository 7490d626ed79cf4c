"""How `insights serve` logs: one JSON line per record (python-json-logger), or plain text.

Each line carries its time, level, logger, message, the service (the process kind) and whatever
the call gave in `extra` (app_id, import_id...), so a log store can search by them. uvicorn's
loggers go through the same handler (the process gives uvicorn no log config of its own).
INSIGHTS_LOG_FORMAT=text gives the plain lines instead.
"""

from __future__ import annotations

import logging
import os
import sys

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("json", "text")


def log_format() -> str:
    chosen = os.environ.get("INSIGHTS_LOG_FORMAT", "json").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(
            f"INSIGHTS_LOG_FORMAT must be one of {', '.join(FORMATS)} (got {chosen!r})"
        )
    return chosen


def configure(service: str, *, chosen: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
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
