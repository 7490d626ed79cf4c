"""`insights dev` traced: a webhook request and the projection of its events are one trace."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from insights.composition.embedded import build_embedded
from insights.embedded import EmbeddedSettings, create_app
from insights_common.signatures import sign
from insights_common.tracing import service_resource

pytestmark = pytest.mark.unit


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=service_resource("embedded"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def sent(event_id: str) -> dict[str, object]:
    return {
        "event_id": event_id,
        "event_type": "notification.sent",
        "app_id": "acme",
        "occurred_at": "2026-11-02T10:00:00Z",
        "message_id": f"m-{event_id}",
        "user_id": "alex",
        "channel": "sms",
        "template": {"key": "order_shipped", "version": 1},
        "content": {"body": "Your order shipped"},
    }


async def test_a_webhook_batch_and_its_projection_are_one_trace(
    tmp_path: Path, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = exported
    embedded = build_embedded(
        EmbeddedSettings(data_dir=tmp_path / "data"), tracer_provider=provider
    )
    app = create_app(embedded, tracer_provider=provider)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://insights.test") as client,
    ):
        secret = await embedded.keys.rotate_webhook_secret("acme")
        body = orjson.dumps([sent("e-1"), sent("e-2")])
        answer = await client.post(
            "/api/v1/events",
            content=body,
            headers={
                "X-Insights-App": "acme",
                "X-Insights-Signature": sign(secret, body, timestamp=int(time.time())),
            },
        )
        assert answer.status_code == 202, answer.text
        assert (await client.get("/healthz")).status_code == 200

    spans = exporter.get_finished_spans()
    [request] = [s for s in spans if s.kind == SpanKind.SERVER]
    assert request.name == "POST /api/v1/events"
    projected = [s for s in spans if s.name == "insights-projector process"]
    assert projected, [s.name for s in spans]
    by_id = {s.context.span_id: s for s in spans}
    for span in projected:
        assert span.kind == SpanKind.CONSUMER
        assert span.context.trace_id == request.context.trace_id
        assert span.attributes is not None
        assert span.attributes["messaging.batch.message_count"] == 2
        parent = span.parent
        while parent is not None and parent.span_id != request.context.span_id:
            parent = by_id[parent.span_id].parent
        assert parent is not None, "the projection's span is not within the request's"
    # the probes are left out of the traces
    assert not [s for s in spans if "/healthz" in s.name]


def test_fastapi_s_own_telemetry_records_nothing_even_where_opentelemetry_is_set_up(
    tmp_path: Path,
) -> None:
    """The app's spans are `trace_http`'s and its metrics Prometheus'; FastAPI's own telemetry
    stays off (`NO_NATIVE_TELEMETRY`) even in a process whose global meter provider an operator
    set up. In a process of its own: a global provider cannot be set back."""
    script = f"""
import asyncio, httpx
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from insights.composition.embedded import build_embedded
from insights.embedded import EmbeddedSettings, create_app

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

async def main() -> None:
    app = create_app(build_embedded(EmbeddedSettings(data_dir={str(tmp_path / "data")!r})))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://insights.test") as client,
    ):
        assert (await client.get("/api/v1/users")).status_code == 401
    data = reader.get_metrics_data()
    names = [
        metric.name
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
    ]
    print("recorded:", names)

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "recorded: []", done.stdout
