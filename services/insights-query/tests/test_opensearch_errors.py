"""Which OpenSearch errors the projector waits out, and which can make an event poison.

The bodies are what OpenSearch 2.19 answered (captured from a real node: a strict mapping, a
document created twice, an index made read-only, an mget on a missing index, the node killed
and started again under a stream of bulk writes), trimmed of nothing but their `took`.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from opensearchpy.exceptions import HTTP_EXCEPTIONS, TransportError

from insights_common.outage import DependencyUnavailable
from insights_query.adapters.opensearch import create_client
from insights_query.adapters.opensearch.errors import as_outage, passing, passing_item

pytestmark = pytest.mark.unit

# Bulk items: a field of the wrong type, and a field a strict mapping does not have.
MAPPER_PARSING: dict[str, Any] = {
    "_index": "cap-a",
    "_id": "1",
    "status": 400,
    "error": {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse field [n] of type [integer] in document with id '1'. "
        "Preview of field's value: 'not a number'",
        "caused_by": {
            "type": "number_format_exception",
            "reason": 'For input string: "not a number"',
        },
    },
}
STRICT_DYNAMIC: dict[str, Any] = {
    "_index": "cap-a",
    "_id": "3",
    "status": 400,
    "error": {
        "type": "strict_dynamic_mapping_exception",
        "reason": "mapping set to strict, dynamic introduction of [m] within [_doc] is not allowed",
    },
}
# Another writer won the race.
VERSION_CONFLICT: dict[str, Any] = {
    "_index": "cap-a",
    "_id": "2",
    "status": 409,
    "error": {
        "type": "version_conflict_engine_exception",
        "reason": "[2]: version conflict, document already exists (current version [1])",
        "index": "cap-a",
        "shard": "0",
        "index_uuid": "JLXq3hYTTV2KE4nq79cOEw",
    },
}
# The disk passed the flood-stage watermark: the index is read-only until space is freed.
FLOOD_STAGE_BLOCK: dict[str, Any] = {
    "_index": "cap-a",
    "_id": "4",
    "status": 429,
    "error": {
        "type": "cluster_block_exception",
        "reason": "index [cap-a] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded "
        "flood-stage watermark, index has read-only-allow-delete block];",
    },
}
# An operator blocked writes to the index.
WRITE_BLOCK: dict[str, Any] = {
    "_index": "cap-a",
    "_id": "5",
    "status": 403,
    "error": {
        "type": "cluster_block_exception",
        "reason": "index [cap-a] blocked by: [FORBIDDEN/8/index write (api)];",
    },
}
# An mget document behind a missing index (no status: the mget answers 200).
MGET_MISSING_INDEX: dict[str, Any] = {
    "_index": "cap-missing",
    "_id": "x",
    "error": {
        "root_cause": [
            {
                "type": "index_not_found_exception",
                "reason": "no such index [cap-missing]",
                "index": "cap-missing",
                "resource.id": "cap-missing",
                "resource.type": "index_expression",
                "index_uuid": "_na_",
            }
        ],
        "type": "index_not_found_exception",
        "reason": "no such index [cap-missing]",
        "index": "cap-missing",
        "resource.id": "cap-missing",
        "resource.type": "index_expression",
        "index_uuid": "_na_",
    },
}

# The node killed and started again: a bulk item whose primary shard has not started yet...
PRIMARY_NOT_ACTIVE: dict[str, Any] = {
    "_index": "cap-b",
    "_id": "r-3738-0",
    "status": 503,
    "error": {
        "type": "unavailable_shards_exception",
        "reason": "[cap-b][2] primary shard is not active Timeout: [1m]",
    },
}
# ... and an mget document on a shard still RECOVERING (no status: the mget answers 200). The
# projector used to take this for a bad event and dead-letter it.
SHARD_RECOVERING: dict[str, Any] = {
    "_index": "cap-b",
    "_id": "0-1",
    "error": {
        "root_cause": [
            {
                "type": "illegal_index_shard_state_exception",
                "reason": "CurrentState[RECOVERING] operations only allowed when shard state is"
                " one of [POST_RECOVERY, STARTED]",
                "index": "cap-b",
                "shard": "1",
                "index_uuid": "3tThTmRAScKt33enBumrNg",
            }
        ],
        "type": "no_shard_available_action_exception",
        "reason": "No shard available for [org.opensearch.action.get.MultiGetShardRequest@479271]",
        "caused_by": {
            "type": "illegal_index_shard_state_exception",
            "reason": "CurrentState[RECOVERING] operations only allowed when shard state is one"
            " of [POST_RECOVERY, STARTED]",
            "index": "cap-b",
            "shard": "1",
            "index_uuid": "3tThTmRAScKt33enBumrNg",
        },
    },
}


@pytest.mark.parametrize(
    "item",
    [
        VERSION_CONFLICT,
        FLOOD_STAGE_BLOCK,
        WRITE_BLOCK,
        MGET_MISSING_INDEX,
        PRIMARY_NOT_ACTIVE,
        SHARD_RECOVERING,
    ],
    ids=[
        "version conflict",
        "flood-stage block",
        "write block",
        "missing index",
        "primary not active",
        "shard recovering",
    ],
)
def test_a_passing_state_of_the_cluster_is_waited_out(item: dict[str, Any]) -> None:
    assert passing_item(item.get("status"), item["error"])


@pytest.mark.parametrize(
    "item", [MAPPER_PARSING, STRICT_DYNAMIC], ids=["wrong type", "field not in mapping"]
)
def test_a_document_the_mapping_refuses_is_its_own_fault(item: dict[str, Any]) -> None:
    assert not passing_item(item["status"], item["error"])


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_429_and_5xx_pass_whatever_the_error(status: int) -> None:
    assert passing_item(status, {"type": "anything_exception", "reason": "?"})


def test_a_recovering_shard_is_told_by_its_cause_alone() -> None:
    """What the projector dead-lettered: the outer type says only 'no shard available'."""
    cause = SHARD_RECOVERING["error"]["caused_by"]
    assert passing_item(None, {"type": "some_wrapper_exception", "caused_by": cause})
    assert passing_item(None, {"type": "some_wrapper_exception", "root_cause": [cause]})


def test_a_whole_response_is_classified_by_its_body() -> None:
    block = {"error": {**WRITE_BLOCK["error"], "root_cause": [WRITE_BLOCK["error"]]}, "status": 403}
    refused = HTTP_EXCEPTIONS[403](403, "cluster_block_exception", block)
    assert passing(refused)
    bad = {"error": MAPPER_PARSING["error"], "status": 400}
    assert not passing(HTTP_EXCEPTIONS[400](400, "mapper_parsing_exception", bad))
    assert passing(TransportError(503, "unavailable_shards_exception", {}))


def test_an_outage_names_opensearch_and_a_bug_is_none() -> None:
    outage = as_outage(TransportError(429, "rejected_execution_exception", {}))
    assert isinstance(outage, DependencyUnavailable)
    assert outage.dependency == "OpenSearch"
    assert as_outage(RuntimeError("projection bug")) is None
    assert as_outage(KeyError("_source")) is None


async def test_no_server_listening_is_an_outage() -> None:
    """What the product's client raises when nothing answers on the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free once closed: nothing listens on it
    client = create_client(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(Exception) as raised:
            await client.info()
    finally:
        await client.close()
    assert passing(raised.value)
    assert isinstance(as_outage(raised.value), DependencyUnavailable)


def test_a_timeout_is_an_outage() -> None:
    assert passing(TimeoutError())
