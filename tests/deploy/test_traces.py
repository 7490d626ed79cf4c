"""One webhook event is one trace across the distributed mode's processes, as a real OpenTelemetry
Collector receives it: the Collector of deploy/otelcol (OTLP receiver, file exporter), built from
the Go module proxy by `make ops-tools`, writes every span it gets to a JSON-lines file, which
this test reads.

The caller sends its own `traceparent` with the webhook and with the read that follows, as a
program that wants to see "sent, then found" as one trace does: the query service cannot know
which earlier write a read sees, so only the caller can put the two in one trace.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from insights_common.auth import sign
from tests.conftest import free_port
from tests.dates import at
from tests.deploy.ops_tools import ROOT, ops_tools, version
from tests.deployments import DistributedDeployment

pytestmark = pytest.mark.e2e

OTELCOL_SOURCES = ("go.mod", "go.sum", "main.go")
COLLECTOR_CONFIG = """
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  file:
    path: {spans}
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"""


def otelcol() -> Path:
    """The collector `make ops-tools` built (its directory is named as the Makefile names it)."""
    import hashlib  # noqa: PLC0415

    sources = b"".join((ROOT / "deploy/otelcol" / name).read_bytes() for name in OTELCOL_SOURCES)
    key = hashlib.sha256(sources).hexdigest()[:12]
    return ops_tools() / f"otelcol-{version('OTELCOL_VERSION')}-{key}" / "insights-otelcol"


@dataclass
class Collector:
    endpoint: str
    spans_file: Path
    log: Path

    def spans(self) -> list[dict[str, Any]]:
        """Every span received so far, with its service's name beside it."""
        if not self.spans_file.exists():
            return []
        found = []
        for line in self.spans_file.read_text().splitlines():
            if not line.strip():
                continue
            for resource_spans in json.loads(line).get("resourceSpans", []):
                attributes = resource_spans["resource"].get("attributes", [])
                service = next(
                    a["value"]["stringValue"] for a in attributes if a["key"] == "service.name"
                )
                for scope in resource_spans.get("scopeSpans", []):
                    found += [{**span, "service": service} for span in scope.get("spans", [])]
        return found


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    port = free_port()
    spans = tmp_path / "spans.jsonl"
    config = tmp_path / "otelcol.yaml"
    config.write_text(COLLECTOR_CONFIG.format(port=port, spans=spans))
    log = tmp_path / "otelcol.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(  # noqa: S603 - the collector this suite built
            [str(otelcol()), "--config", f"file:{config}"], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the collector exited:\n{log.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the collector is not listening:\n{log.read_text()}")
                time.sleep(0.1)
        yield Collector(f"http://127.0.0.1:{port}", spans, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


def traced_deployment(
    request: pytest.FixtureRequest, work_dir: Path, collector: Collector
) -> DistributedDeployment:
    from tests.conftest import _distributed  # noqa: PLC0415

    return _distributed(
        request,
        work_dir,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )


def spans_of(collector: Collector, trace_id: str, *, until: set[str]) -> list[dict[str, Any]]:
    """The trace's spans once every name of `until` is among them (they come in batches)."""
    deadline = time.monotonic() + 30
    while True:
        spans = [span for span in collector.spans() if span["traceId"] == trace_id]
        if until <= {span["name"] for span in spans} or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def ancestry(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    """The (service, name) of a span and of each of its ancestors, innermost first."""
    chain = []
    current: dict[str, Any] | None = span
    while current is not None:
        chain.append(f"{current['service']}: {current['name']}")
        current = by_id.get(current.get("parentSpanId", ""))
    return chain


def test_one_webhook_event_is_one_trace_across_the_processes(
    request: pytest.FixtureRequest, tmp_path: Path, collector: Collector
) -> None:
    deployment = traced_deployment(request, tmp_path, collector)
    try:
        key = deployment.cli("keys", "create", "--app", "acme")
        secret = deployment.cli("webhooks", "secret", "--app", "acme")
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        traceparent = f"00-{trace_id}-{caller_span}-01"
        sent = {
            "event_id": "e-traced",
            "event_type": "notification.sent",
            "schema_version": 1,
            "app_id": "acme",
            "occurred_at": at("10:00:00"),
            "message_id": "m-traced",
            "user_id": "alex",
            "channel": "push",
            "template": {"key": "welcome", "name": "Welcome", "version": 1, "variables": {}},
            "content": {"title": "Hi", "body": "Welcome aboard"},
        }
        body = json.dumps([sent]).encode()
        posted = httpx.post(
            f"{deployment.url}/api/v1/events",
            params={"wait": "visible"},
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Insights-App": "acme",
                "X-Insights-Signature": sign(secret, body),
                "traceparent": traceparent,
            },
            timeout=30,
        )
        assert posted.status_code in (200, 202), posted.text
        with deployment.client(key) as api:
            read = api.get("/api/v1/messages/m-traced", headers={"traceparent": traceparent})
        assert read.status_code == 200, read.text
    finally:
        deployment.stop()  # each process flushes the spans it still holds as it stops

    spans = spans_of(
        collector,
        trace_id,
        until={"POST /api/v1/events", "opensearch bulk", "GET /api/v1/messages/{message_id}"},
    )
    by_id = {span["spanId"]: span for span in spans}
    named = {(span["service"], span["name"]) for span in spans}
    assert ("insights-ingest", "POST /api/v1/events") in named, sorted(named)

    # ingest's request -> its publish to Kafka -> the projector's batch -> its OpenSearch write
    bulk = next(
        s for s in spans if s["service"] == "insights-projector" and s["name"] == "opensearch bulk"
    )
    chain = ancestry(bulk, by_id)
    assert chain[-1] == "insights-ingest: POST /api/v1/events", chain
    assert by_id[_id_of(chain[-1], spans)]["parentSpanId"] == caller_span
    consumer = [c for c in chain if c.startswith("insights-projector:") and c.endswith(" process")]
    assert consumer, chain
    assert any(
        c.startswith("insights-ingest:") and "notifications.v1" in c and "publish" in c
        for c in _names_under(chain[-1], spans, by_id)
    ), chain
    assert any(c.startswith("insights-ingest:") and "notifications.v1" in c for c in chain), chain

    # the caller's read, in the same trace: the query service's request and its OpenSearch read
    query = [
        s
        for s in spans
        if s["service"] == "insights-query" and s["name"] == "GET /api/v1/messages/{message_id}"
    ]
    assert len(query) == 1 and query[0]["parentSpanId"] == caller_span, sorted(named)
    assert any(
        s["service"] == "insights-query"
        and s["name"].startswith("opensearch ")
        and query[0]["spanId"] in _ancestor_ids(s, by_id)
        for s in spans
    ), sorted(named)


def _id_of(label: str, spans: list[dict[str, Any]]) -> str:
    service, name = label.split(": ", 1)
    return next(s["spanId"] for s in spans if s["service"] == service and s["name"] == name)


def _ancestor_ids(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> set[str]:
    found = set()
    current = by_id.get(span.get("parentSpanId", ""))
    while current is not None:
        found.add(current["spanId"])
        current = by_id.get(current.get("parentSpanId", ""))
    return found


def _names_under(
    label: str, spans: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> list[str]:
    """The spans below the one `label` names."""
    root = _id_of(label, spans)
    return [f"{s['service']}: {s['name']}" for s in spans if root in _ancestor_ids(s, by_id)]
