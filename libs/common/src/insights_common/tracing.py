"""Traces: OpenTelemetry, exported over OTLP (http/protobuf), off unless the OTEL_* variables ask.

`start_tracing` turns them on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_TRACES_EXPORTER`) is set; without them nothing is
exported and every span below is the API's no-op. The SDK reads the rest of the standard
variables itself: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (service.name defaults to
`insights-<service>`), `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*` (headers,
timeout, compression) and `OTEL_PROPAGATORS` (W3C trace context and baggage by default).

A trace follows an event across processes: the HTTP request (FastAPI's instrumentation), the
publish (the context rides in each Kafka record's headers: FastStream's telemetry middleware for
the bus's publishes, `record_headers` for the import's transactions), the consumer's batch
(`consuming`: a child of the publish when the batch carries one trace, else a new trace linked to
each), and the writes it makes (the OpenSearch store's spans; PostgreSQL's statements are
spans too, `insights_common.postgres.traces`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from faststream._internal.context.repository import ContextRepo
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.response import KafkaPublishCommand
from faststream.message import StreamMessage
from faststream.opentelemetry.middleware import BaseTelemetryMiddleware
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Tracer

EXPORTERS = ("otlp", "console", "none")
# Requests whose spans would only be noise: the probes and the scrapes.
UNTRACED_URLS = "/healthz,/readyz,/metrics"
# A batch linking more traces than this keeps the first ones (the SDK's default link limit).
MAX_LINKS = 128


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """True when the environment asks for traces to be exported somewhere."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = _exporter_name(environ)
    if exporter is not None:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def start_tracing(service: str) -> TracerProvider | None:
    """The process's tracer provider, made the global one; None (and nothing set) when the
    environment asks for no traces. Shut it down when the process stops: that flushes the
    spans still queued."""
    if not tracing_wanted(os.environ):
        return None
    provider = TracerProvider(resource=service_resource(service))
    provider.add_span_processor(_processor(os.environ))
    trace.set_tracer_provider(provider)
    return provider


def service_resource(service: str) -> Resource:
    """`service.name` is `insights-<service>` unless OTEL_SERVICE_NAME or
    OTEL_RESOURCE_ATTRIBUTES names it; their other attributes are kept."""
    return Resource.create({SERVICE_NAME: f"insights-{service}"}).merge(
        OTELResourceDetector().detect()
    )


def _exporter_name(environ: Mapping[str, str]) -> str | None:
    chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not chosen:
        return None
    if chosen not in EXPORTERS:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER must be one of {', '.join(EXPORTERS)} (got {chosen!r})"
        )
    return chosen


def _processor(environ: Mapping[str, str]) -> SpanProcessor:
    if _exporter_name(environ) == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter())
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol.strip().lower() != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf, the protocol the processes "
            f"export with (got {protocol!r}); a collector's OTLP receiver takes it on port 4318"
        )
    # Imported only when used: the exporter pulls in protobuf and requests.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    return BatchSpanProcessor(OTLPSpanExporter())


NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""What every app of the product gives `FastAPI(telemetry=...)`: FastAPI's own OpenTelemetry
stays off. The spans are `trace_http`'s and the metrics Prometheus' (`http.observability`);
left on, it would ask OpenTelemetry for its tracer, meter and logger providers on every request
(each a look in `os.environ`) only to find that it has nothing to do."""


def trace_http(app: FastAPI, provider: TracerProvider | None) -> None:
    """A server span for each request (continuing the caller's `traceparent`); none without
    a provider."""
    if provider is None:
        return
    # no span for each chunk of a body received or sent: a request is one span
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_URLS,
        exclude_spans=["receive", "send"],
        server_request_hook=without_query,
    )


def without_query(span: Span, scope: dict[str, Any]) -> None:
    """Keep a request's query string out of its span: searches carry phone numbers and names
    there (`/users?q=`), which the API itself shows only masked or to some roles."""
    attributes: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    url = attributes.get("http.url")
    if isinstance(url, str) and "?" in url:
        span.set_attribute("http.url", url.split("?", 1)[0])
    if "url.query" in attributes:
        span.set_attribute("url.query", "")


def tracer(name: str, provider: TracerProvider | None = None) -> Tracer:
    """A tracer of `provider`, or of the global provider (a no-op until `start_tracing`)."""
    return trace.get_tracer(name, tracer_provider=provider)


def record_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka record headers (`traceparent`, `tracestate`,
    `baggage`); none when no span is recording."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]


def _context_of(headers: Iterable[tuple[str, bytes]]) -> Context:
    carrier = {name: value.decode("latin-1") for name, value in headers}
    return propagate.extract(carrier)


def batch_parent(
    headers_of_records: Iterable[Iterable[tuple[str, bytes]]],
) -> tuple[Context, list[Link]]:
    """Where a consumer's span for a batch belongs: under the publisher's span when the batch
    carries one trace (so one event's trace goes on through the consumer), else in a trace of
    its own, linked to the span that published each record (a batch of records that carry no
    context starts a trace of its own too)."""
    parent: Context | None = None
    seen: dict[tuple[int, int], SpanContext] = {}
    traces: set[int] = set()
    # The records of one publish share their headers: each distinct set is read once.
    distinct = dict.fromkeys(tuple(headers) for headers in headers_of_records)
    for headers in distinct:
        context = _context_of(headers)
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            continue
        if parent is None:
            parent = context
        traces.add(span_context.trace_id)
        seen.setdefault((span_context.trace_id, span_context.span_id), span_context)
        if len(traces) > 1 and len(seen) >= MAX_LINKS:
            break  # a trace of its own with as many links as it keeps: the rest are not read
    if parent is None:
        return Context(), []
    if len(traces) == 1:
        first = trace.get_current_span(parent).get_span_context()
        others = [sc for sc in seen.values() if sc.span_id != first.span_id]
        return parent, [Link(sc) for sc in others[:MAX_LINKS]]
    return Context(), [Link(sc) for sc in list(seen.values())[:MAX_LINKS]]


@contextmanager
def consuming(
    tracer: Tracer,
    name: str,
    headers_of_records: Sequence[Iterable[tuple[str, bytes]]],
    *,
    attributes: Mapping[str, Any],
) -> Iterator[Span]:
    """A consumer span around the handling of one batch (see `batch_parent`)."""
    parent, links = batch_parent(headers_of_records)
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={**attributes, "messaging.batch.message_count": len(headers_of_records)},
    ) as span:
        yield span


class PublishTelemetry(KafkaTelemetryMiddleware):
    """FastStream's own Kafka telemetry, on the publishing side only: a producer span for each
    record batch published, its context injected into the records' headers.

    Its consuming side is left out: for a batch subscriber it starts a new trace for every batch,
    linked only to records FastStream published itself (it matches them by its `correlation_id`
    header, which the import's transactional records and the platform's raw records lack), so an
    event's trace would stop at Kafka. The bus's `consuming` span continues it instead.
    """

    def __call__(self, msg: Any | None, /, *, context: ContextRepo) -> _PublishOnly:
        return _PublishOnly(
            msg,
            tracer=self._tracer,
            metrics_container=self._metrics,
            settings_provider_factory=self._settings_provider_factory,
            context=context,
        )


class _PublishOnly(BaseTelemetryMiddleware[KafkaPublishCommand]):
    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        return await call_next(msg)
