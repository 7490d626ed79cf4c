"""A span for each request to OpenSearch made within a trace (the projector's `mget` and `bulk`
writes, the query API's searches), named after its operation (`opensearch bulk`).

opensearch-py has no OpenTelemetry instrumentation of its own, so the client's transport, which
every call goes through, makes them. Requests made outside any trace (the readiness probes)
make none, and without a tracer provider the spans are the API's no-ops.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from opensearchpy import AsyncTransport
from opentelemetry import trace
from opentelemetry.trace import SpanKind

_tracer = trace.get_tracer(__name__)


def operation_of(method: str, url: str) -> tuple[str, str | None]:
    """The operation (`bulk`, `mget`, `search`, ...) and the index or alias a request names;
    the document ids in a path are left out."""
    parts = [part for part in url.split("?", 1)[0].split("/") if part]
    index = parts[0] if parts and not parts[0].startswith("_") else None
    endpoint = next((part for part in parts if part.startswith("_")), None)
    if endpoint is None:
        return method.lower(), index
    return endpoint.removeprefix("_"), index


class TracedTransport(AsyncTransport):
    async def perform_request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        timeout: int | float | None = None,  # noqa: ASYNC109 - the transport's own signature
        ignore: Collection[int] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        if not trace.get_current_span().is_recording():
            return await super().perform_request(
                method, url, params, body, timeout=timeout, ignore=ignore, headers=headers
            )
        operation, index = operation_of(method, url)
        attributes = {"db.system.name": "opensearch", "db.operation.name": operation}
        if index is not None:
            attributes["db.collection.name"] = index
        with _tracer.start_as_current_span(
            f"opensearch {operation}", kind=SpanKind.CLIENT, attributes=attributes
        ):
            return await super().perform_request(
                method, url, params, body, timeout=timeout, ignore=ignore, headers=headers
            )
