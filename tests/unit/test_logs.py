"""`insights serve`'s JSON log lines: the service, the ids a record names, and the trace and span
of the work it was logged in (none outside any)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from insights import logs

pytestmark = pytest.mark.unit


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_a_line_logged_in_a_span_names_its_trace(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("import", chosen="json")
    log = logging.getLogger("insights.test")
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("POST /api/v1/imports") as span:
        log.info("import started", extra={"app_id": "acme", "import_id": "imp_1"})
    log.info("between requests")
    provider.shutdown()

    inside, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    context = span.get_span_context()
    assert inside["service"] == "import"
    assert (inside["app_id"], inside["import_id"]) == ("acme", "imp_1")
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert outside["message"] == "between requests"
    assert "trace_id" not in outside and "span_id" not in outside
