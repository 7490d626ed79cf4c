"""Traces: off without the OTEL_* variables (nothing exported, nothing broken), named by the
standard ones when on, and carried through Kafka's record headers from a publish to the batch
that consumes it (on a real broker in the integration tests, on the in-memory one in a unit
test)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from faststream.kafka import KafkaResponse, TestKafkaBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_common.kafka.publisher import KafkaTransactionalPublisher
from insights_common.tracing import (
    MAX_LINKS,
    batch_parent,
    consuming,
    record_headers,
    service_resource,
    start_tracing,
    trace_http,
    tracing_wanted,
)
from insights_contracts import AnyEvent, UserUpserted
from insights_contracts.topics import USERS

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def no_otel(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A provider of this test's own (the process's global one is left alone)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=service_resource("test"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.mark.unit
@pytest.mark.usefixtures("no_otel")
async def test_without_otel_variables_nothing_is_exported_and_nothing_breaks() -> None:
    assert not tracing_wanted(os.environ)
    assert start_tracing("ingest") is None
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, bool]:
        span = trace.get_current_span()
        return {"recording": span.is_recording(), "headers": bool(record_headers())}

    trace_http(app, None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/hello", headers={"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"})
    assert answer.json() == {"recording": False, "headers": False}
    bus = KafkaBus(KafkaOptions("127.0.0.1:9"))
    assert not bus.broker.middlewares
    with bus.tracer.start_as_current_span("nothing") as span:
        assert not span.is_recording()


@pytest.mark.unit
@pytest.mark.usefixtures("no_otel")
def test_the_standard_variables_turn_traces_on_and_name_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert tracing_wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing_wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    assert not tracing_wanted({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER must be one of otlp"):
        tracing_wanted({"OTEL_TRACES_EXPORTER": "jaeger"})

    assert service_resource("query").attributes["service.name"] == "insights-query"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
    resource = service_resource("query").attributes
    assert resource["service.name"] == "insights-query"
    assert resource["deployment.environment.name"] == "staging"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "acme-insights-query")
    assert service_resource("query").attributes["service.name"] == "acme-insights-query"

    # the processes export OTLP over http/protobuf only: another protocol is a clear error
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ValueError, match="must be http/protobuf"):
        start_tracing("query")
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


def headers_in(provider: TracerProvider, name: str) -> tuple[list[tuple[str, bytes]], int]:
    """The record headers a publish inside a new span `name` writes, and that span's id."""
    with provider.get_tracer("test").start_as_current_span(name) as span:
        return record_headers(), span.get_span_context().span_id


@pytest.mark.unit
def test_a_batch_of_one_trace_continues_it_and_a_mixed_batch_links_each(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = exported
    first, first_id = headers_in(provider, "first")
    parent, links = batch_parent([first, first, []])
    assert trace.get_current_span(parent).get_span_context().span_id == first_id
    assert links == []

    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        with tracer.start_as_current_span("one chunk") as one:
            one_headers = record_headers()
        with tracer.start_as_current_span("another chunk") as other:
            other_headers = record_headers()
    parent, links = batch_parent([one_headers, other_headers])
    assert (
        trace.get_current_span(parent).get_span_context().span_id == one.get_span_context().span_id
    )
    assert [link.context.span_id for link in links] == [other.get_span_context().span_id]

    second, second_id = headers_in(provider, "second")
    parent, links = batch_parent([first, second, first])
    assert not trace.get_current_span(parent).get_span_context().is_valid  # a trace of its own
    assert [link.context.span_id for link in links] == [first_id, second_id]

    parent, links = batch_parent([[], [("traceparent", b"not a trace context")]])
    assert not trace.get_current_span(parent).get_span_context().is_valid
    assert links == []


@pytest.mark.unit
def test_the_consumer_span_is_a_child_of_the_publish(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = exported
    headers, publisher = headers_in(provider, "publish")
    with consuming(
        provider.get_tracer("test"), "group process", [headers], attributes={"a": "b"}
    ) as span:
        assert span.is_recording()
    (_, consumer) = exporter.get_finished_spans()
    assert consumer.kind == SpanKind.CONSUMER
    assert consumer.parent is not None and consumer.parent.span_id == publisher
    assert consumer.attributes == {"a": "b", "messaging.batch.message_count": 1}


def users(batch: str, count: int) -> list[AnyEvent]:
    return [
        UserUpserted(
            event_id=f"{batch}:{n}",
            app_id="acme",
            occurred_at=T0,
            user_id=f"{batch}-{n}",
            phone_number="+14155550171",
            source=f"import:{batch}",
        )
        for n in range(count)
    ]


@pytest.mark.integration
async def test_each_publish_path_carries_its_trace_to_the_consumer(
    kafka_bootstrap: str,
    topic_prefix: str,
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The bus's publish (FastStream's telemetry) and the import's transaction: the consumer's
    batch span is a child of the span that published it, in the publisher's trace."""
    provider, exporter = exported
    options = KafkaOptions(kafka_bootstrap, topic_prefix=topic_prefix, partitions=1)
    bus = KafkaBus(options, tracer_provider=provider)
    seen: list[AnyEvent] = []
    arrived = asyncio.Event()

    async def handle(events: Sequence[AnyEvent]) -> None:
        seen.extend(events)
        arrived.set()

    bus.subscribe([USERS], handle, group="traced")
    publisher = KafkaTransactionalPublisher(bus, transactional_id="traced-import")
    tracer = provider.get_tracer("test")
    await bus.start()
    await publisher.start()
    try:
        for name, publish in (("webhook", bus.publish), ("import", publisher.publish)):
            arrived.clear()
            with tracer.start_as_current_span(name):
                await publish(users(name, 2))
            await asyncio.wait_for(arrived.wait(), timeout=30)
    finally:
        await publisher.stop()
        await bus.stop()
    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    consumers = [span for span in spans if span.kind == SpanKind.CONSUMER]
    roots = {name: next(s for s in spans if s.name == name) for name in ("webhook", "import")}
    assert len(consumers) == 2, [s.name for s in spans]
    for consumer, root in zip(consumers, roots.values(), strict=True):
        assert consumer.name == f"{topic_prefix}traced process"
        assert consumer.context.trace_id == root.context.trace_id
        assert root in ancestors(consumer, by_id)
    assert {e.event_id for e in seen} == {"webhook:0", "webhook:1", "import:0", "import:1"}


@pytest.mark.unit
async def test_a_consumed_batch_continues_the_trace_of_its_publish_on_the_in_memory_broker(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The same path as above on FastStream's `TestKafkaBroker`, in a second: the publish's
    context rides in the records' headers to the consumer span of the batch."""
    provider, exporter = exported
    bus = KafkaBus(KafkaOptions("unused:9092", topic_prefix="traced."), tracer_provider=provider)

    async def handle(events: Sequence[AnyEvent]) -> None:
        pass

    bus.subscribe([USERS], handle, group="projector")
    records = [KafkaResponse(e.model_dump_json().encode(), key=b"k") for e in users("b", 2)]
    async with TestKafkaBroker(bus.broker):
        with provider.get_tracer("test").start_as_current_span("request") as request:
            await bus.broker.publish_batch(*records, topic=bus.topic(USERS))

    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    [consumer] = [span for span in spans if span.kind == SpanKind.CONSUMER]
    assert consumer.name == "traced.projector process"
    assert consumer.context.trace_id == request.get_span_context().trace_id
    assert consumer.parent is not None and by_id[consumer.parent.span_id].kind == SpanKind.PRODUCER
    assert by_id[request.get_span_context().span_id] in ancestors(consumer, by_id)
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.batch.message_count"] == 2
    assert consumer.attributes["messaging.destination.name"] == bus.topic(USERS)


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    found = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        found.append(span)
    return found


@pytest.mark.unit
def test_a_batch_of_many_traces_links_as_many_as_a_span_keeps(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = exported
    records = [headers_in(provider, f"publish {n}")[0] for n in range(MAX_LINKS + 50)]
    parent, links = batch_parent(records)
    assert not trace.get_current_span(parent).get_span_context().is_valid
    assert len(links) == MAX_LINKS


@pytest.mark.unit
async def test_a_request_span_keeps_no_query_string(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """A search's terms (a phone number here) stay out of the trace."""
    provider, exporter = exported
    app = FastAPI()

    @app.get("/api/v1/users")
    async def users(q: str) -> dict[str, str]:
        return {"q": q}

    trace_http(app, provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/api/v1/users", params={"q": "+14155550171"})
    assert answer.json() == {"q": "+14155550171"}
    (span,) = exporter.get_finished_spans()
    assert span.name == "GET /api/v1/users"
    values = " ".join(str(value) for value in (span.attributes or {}).values())
    assert "14155550171" not in values and "/api/v1/users" in values
