"""The OpenSearch adapter of insights-query: the projection and the query reads."""

from __future__ import annotations

from opensearchpy import AsyncOpenSearch

from insights_query.adapters.opensearch.mappings import IndexSetupError
from insights_query.adapters.opensearch.store import (
    BulkWriteError,
    DocumentReadError,
    OpenSearchInsightsStore,
    ProjectionConflict,
)

__all__ = [
    "BulkWriteError",
    "DocumentReadError",
    "IndexSetupError",
    "OpenSearchInsightsStore",
    "ProjectionConflict",
    "create_client",
]


def create_client(url: str) -> AsyncOpenSearch:
    """An aiohttp client for one cluster URL (http://host:9200, credentials in the URL).

    Timeouts are retried: a retried bulk that had in fact been applied only meets its own
    writes as version conflicts, which the store folds again into the same documents.
    """
    return AsyncOpenSearch(
        hosts=[url],
        timeout=30,
        max_retries=3,
        retry_on_timeout=True,
        http_compress=True,
    )
