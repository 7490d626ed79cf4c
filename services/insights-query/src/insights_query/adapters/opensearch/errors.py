"""Which OpenSearch errors are a passing state of the cluster, and which are the request's own.

The projector waits out the first kind and retries the batch (`DependencyUnavailable`); only
the second kind can make an event poison and send it to the dead-letter topic. The rule lives
here once, for whole responses (`TransportError`, connection errors) and for the items of a
bulk response alike.

Passing: no connection or no answer in time; 429 (a full write queue, a circuit breaker) and
every 5xx; a shard that is recovering or relocating (`illegal_index_shard_state_exception`, sent
with 500) or has no active copy yet (`unavailable_shards_exception`, 503); a cluster block
(`cluster_block_exception`: a cluster still recovering its state, an index made read-only by the
disk watermark; 403 or 503); a version conflict (409: another writer won a race). A missing index
behind an alias is no event's fault either. Anything else, above all a 400 on one document
(`mapper_parsing_exception`: a field of the wrong type), is the request's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import TransportError

from insights_common.outage import DependencyUnavailable

DEPENDENCY = "OpenSearch"

PASSING_TYPES = frozenset(
    {
        "illegal_index_shard_state_exception",
        "unavailable_shards_exception",
        "no_shard_available_action_exception",
        "shard_not_found_exception",
        "primary_missing_action_exception",
        "cluster_block_exception",
        "index_not_found_exception",
        "version_conflict_engine_exception",
        "rejected_execution_exception",
        "es_rejected_execution_exception",
        "opensearch_rejected_execution_exception",
        "circuit_breaking_exception",
        "node_not_connected_exception",
        "node_disconnected_exception",
        "node_closed_exception",
        "connect_transport_exception",
        "receive_timeout_transport_exception",
        "process_cluster_event_timeout_exception",
        "cluster_manager_not_discovered_exception",
        "master_not_discovered_exception",
        "not_cluster_manager_exception",
        "not_master_exception",
        "timeout_exception",
    }
)


def passing_status(status: object) -> bool:
    """429, 408 and 5xx: the cluster cannot now, whatever was asked."""
    return isinstance(status, int) and (status in (408, 409, 429) or status >= 500)


def error_types(error: object) -> set[str]:
    """The `type` of an OpenSearch error object, of its causes and of its root causes."""
    found: set[str] = set()
    todo = [error]
    while todo:
        item = todo.pop()
        if isinstance(item, Mapping):
            kind = item.get("type")
            if isinstance(kind, str):
                found.add(kind)
            todo += [item.get("caused_by"), *(item.get("root_cause") or ())]
        elif isinstance(item, str):
            found.add(item)
    return found


def passing_item(status: object, error: object) -> bool:
    """Whether a failed item of a bulk or mget response (its `status` and `error`) passes."""
    return passing_status(status) or bool(error_types(error) & PASSING_TYPES)


def passing(error: BaseException) -> bool:
    """Whether an error raised by the OpenSearch client is a passing state of the cluster."""
    if isinstance(error, OpenSearchConnectionError | asyncio.TimeoutError | aiohttp.ClientError):
        return True
    if isinstance(error, TransportError):
        info: Any = error.info
        body_error = info.get("error") if isinstance(info, Mapping) else None
        return passing_item(error.status_code, body_error or error.error)
    return False


def as_outage(error: BaseException) -> DependencyUnavailable | None:
    """The outage an error of the client says, or None when it is the request's own."""
    if isinstance(error, DependencyUnavailable):
        return error
    if passing(error):
        return DependencyUnavailable(DEPENDENCY, f"{type(error).__name__}: {error}")
    return None


@asynccontextmanager
async def outages() -> AsyncIterator[None]:
    """Inside, a passing state of the cluster is raised as `DependencyUnavailable` (the
    projector waits it out, a read answers 503 with Retry-After); the request's own errors pass
    through as they are."""
    try:
        yield
    except Exception as error:
        outage = as_outage(error)
        if outage is None or outage is error:
            raise
        raise outage from error
