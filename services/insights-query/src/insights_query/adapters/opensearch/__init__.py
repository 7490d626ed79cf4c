"""The OpenSearch adapter of insights-query: the projection and the query reads."""

from __future__ import annotations

from typing import Any

import orjson
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import SerializationError
from opensearchpy.serializer import JSONSerializer

from insights_query.adapters.opensearch.connection import LeanConnection
from insights_query.adapters.opensearch.document_io import BulkWriteError, DocumentReadError
from insights_query.adapters.opensearch.mappings import IndexSetupError
from insights_query.adapters.opensearch.store import OpenSearchInsightsStore, ProjectionConflict
from insights_query.adapters.opensearch.traced import TracedTransport

__all__ = [
    "BulkWriteError",
    "DocumentReadError",
    "IndexSetupError",
    "OpenSearchInsightsStore",
    "ProjectionConflict",
    "create_client",
]


class OrjsonSerializer(JSONSerializer):
    """JSON in and out with orjson: the stdlib's json was a quarter of the projector's CPU."""

    def loads(self, s: str) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(s, exc) from exc

    def dumps(self, data: Any) -> Any:
        if isinstance(data, str | bytes):
            return data
        try:
            return orjson.dumps(data, default=self.default).decode()
        except TypeError as exc:
            raise SerializationError(data, exc) from exc


def create_client(url: str, *, pool: int = 10) -> AsyncOpenSearch:
    """A client for one cluster: a node's URL (http://host:9200, credentials in the URL;
    https verified against SSL_CERT_FILE's or SSL_CERT_DIR's authorities, else certifi's) or
    several separated by commas, with up to `pool` connections to each: a request finding them
    all busy waits for one. A node that does not answer is set aside and the request retried
    on another. The HTTP under it is
    `LeanConnection`'s, not aiohttp's: a third of the CPU a request.

    Timeouts are retried: a retried bulk that had in fact been applied only meets its own
    writes as version conflicts, which the store folds again into the same documents. Bodies
    are not compressed: gzip cost the projector a sixth of its CPU, and the cluster has to
    inflate what it gets; on a local network the bytes saved are not worth it. Requests made
    within a trace are spans of it (`traced`).
    """
    return AsyncOpenSearch(
        hosts=[part.strip() for part in url.split(",") if part.strip()],
        timeout=30,
        max_retries=3,
        retry_on_timeout=True,
        http_compress=False,
        serializer=OrjsonSerializer(),
        pool_maxsize=pool,
        transport_class=TracedTransport,
        connection_class=LeanConnection,
    )
