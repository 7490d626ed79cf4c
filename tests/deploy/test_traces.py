"""One webhook event is one trace across the distributed mode's processes, and so is one CSV
import (with its PostgreSQL statements), as a real OpenTelemetry Collector receives them: the
Collector of deploy/otelcol (OTLP receiver, file exporter), built from the Go module proxy by
`make ops-tools`, writes every span it gets to a JSON-lines file, which this test reads.

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
from tests.deploy.ops_tools import otelcol
from tests.deployments import DistributedDeployment, eventually_true

pytestmark = pytest.mark.e2e

# OTLP's span kinds
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
BULK = "opensearch bulk"
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


def test_one_webhook_event_is_one_trace_across_the_processes_and_so_is_an_import(
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
            # visible already unless the wait ran out on a busy machine; then soon
            eventually_true(lambda: api.get("/api/v1/messages/m-traced").is_success, limit=60)
            read = api.get("/api/v1/messages/m-traced", headers={"traceparent": traceparent})
            assert read.status_code == 200, read.text
            import_trace = secrets.token_hex(16)
            imported = api.post(
                "/api/v1/imports",
                files={"file": ("users.csv", b"user_id,phone_number\r\nsam,+14155550173\r\n")},
                headers={"traceparent": f"00-{import_trace}-{secrets.token_hex(8)}-01"},
            )
            assert imported.status_code == 202, imported.text
            until_complete(api, imported.json()["id"])
    finally:
        deployment.stop()  # each process flushes the spans it still holds as it stops

    spans = spans_of(
        collector,
        trace_id,
        until={"POST /api/v1/events", BULK, "GET /api/v1/messages/{message_id}"},
    )
    by_id = {span["spanId"]: span for span in spans}
    seen = sorted(f"{s['service']}: {s['name']}" for s in spans)
    prefix = deployment.topic_prefix

    # ingest's request -> its publish to Kafka -> the projector's batch -> its OpenSearch write
    bulk = [s for s in spans if (s["service"], s["name"]) == ("insights-projector", BULK)]
    assert len(bulk) == 1, seen
    _, consume, create, request_span = lineage(bulk[0], by_id)
    assert consume["service"] == "insights-projector" and consume["kind"] == CONSUMER, seen
    assert consume["name"] == f"{prefix}insights-projector process", seen
    assert create["service"] == "insights-ingest" and create["kind"] == PRODUCER, seen
    assert create["name"] == f"{prefix}insights.notifications.v1 create", seen
    assert (request_span["service"], request_span["kind"]) == ("insights-ingest", SERVER), seen
    assert request_span["name"] == "POST /api/v1/events", seen
    assert request_span["parentSpanId"] == caller_span
    publish = [s for s in spans if s.get("parentSpanId") == create["spanId"]]
    assert any(s["kind"] == PRODUCER and s["name"].endswith(" publish") for s in publish), seen

    # the caller's read, in the same trace: the query service's request and its OpenSearch read
    (query,) = [s for s in spans if s["service"] == "insights-query" and s["kind"] == SERVER]
    assert query["name"] == "GET /api/v1/messages/{message_id}", seen
    assert query["parentSpanId"] == caller_span
    reads = [s for s in spans if s.get("parentSpanId") == query["spanId"]]
    assert any(s["kind"] == CLIENT and s["name"].startswith("opensearch ") for s in reads), seen

    # an import: its upload -> its one Kafka transaction -> the projector's batch -> its write
    spans = spans_of(collector, import_trace, until={"POST /api/v1/imports", BULK})
    by_id = {span["spanId"]: span for span in spans}
    seen = sorted(f"{s['service']}: {s['name']}" for s in spans)
    bulk = [s for s in spans if (s["service"], s["name"]) == ("insights-projector", BULK)]
    assert len(bulk) == 1, seen
    chain = [(s["service"], s["name"]) for s in lineage(bulk[0], by_id)]
    assert chain == [
        ("insights-projector", BULK),
        ("insights-projector", f"{prefix}insights-projector process"),
        ("insights-import", "publish (transaction)"),
        ("insights-import", "POST /api/v1/imports"),
    ], seen
    # and the PostgreSQL statements made for it (the import's registry, then ingest's index
    # of phone numbers as it consumes the users), each under the upload
    statements = [s for s in spans if s["name"].startswith("postgresql ")]
    assert {s["service"] for s in statements} >= {"insights-import"}, seen
    for statement in statements:
        assert statement["kind"] == CLIENT, statement
        assert attribute(statement, "db.system.name") == "postgresql", statement
        ancestors = [(s["service"], s["name"]) for s in lineage(statement, by_id)]
        assert ancestors[-1] == ("insights-import", "POST /api/v1/imports"), ancestors


def until_complete(api: httpx.Client, import_id: str) -> None:
    deadline = time.monotonic() + 60
    while (status := api.get(f"/api/v1/imports/{import_id}").json()["status"]) != "completed":
        assert status not in ("failed", "rejected") and time.monotonic() < deadline, status
        time.sleep(0.1)


def attribute(span: dict[str, Any], name: str) -> Any:
    """The value of one of a span's attributes, as OTLP's JSON writes it."""
    for each in span.get("attributes", []):
        if each["key"] == name:
            return next(iter(each["value"].values()))
    return None


def lineage(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The span and each of its ancestors in the trace, innermost first."""
    chain = [span]
    while (parent := by_id.get(chain[-1].get("parentSpanId", ""))) is not None:
        chain.append(parent)
    return chain
