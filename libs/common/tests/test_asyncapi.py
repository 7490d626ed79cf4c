"""The AsyncAPI document lists every topic of the contract and the schema of every event type,
the same schema as the event's snapshot under libs/contracts/schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest

from insights_common.asyncapi import asyncapi_document
from insights_contracts import EVENT_TYPES
from insights_contracts.schema import SNAPSHOT_DIR
from insights_contracts.topics import CANONICAL, PLATFORM_RAW, topic_of

pytestmark = pytest.mark.unit


def event_types_of(document: dict[str, Any], channel: dict[str, Any]) -> set[str]:
    """The `event_type` of every event a channel's messages may carry."""
    schemas = document["components"]["schemas"]
    found = set()
    for message_ref in channel["messages"].values():
        message = resolve(document, message_ref["$ref"])
        payload = resolve(document, message["payload"]["$ref"])
        for ref in [option["$ref"] for option in payload.get("oneOf", [])] or [
            message["payload"]["$ref"]
        ]:
            schema = schemas[ref.rsplit("/", 1)[1]]
            found.add(schema["properties"]["event_type"]["const"])
    return found


def resolve(document: dict[str, Any], ref: str) -> Any:
    found: Any = document
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def test_every_topic_and_every_event_type_is_described() -> None:
    document = asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    channels = {channel["address"]: channel for channel in document["channels"].values()}
    assert set(channels) == {*CANONICAL, PLATFORM_RAW}
    for topic in CANONICAL:
        wanted = {name for name, model in EVENT_TYPES.items() if topic_of(model) == topic}
        assert event_types_of(document, channels[topic]) == wanted, topic
    assert event_types_of(document, channels[PLATFORM_RAW]) == set(EVENT_TYPES)
    actions = {
        resolve(document, op["channel"]["$ref"])["address"]: op["action"]
        for op in document["operations"].values()
    }
    assert actions == {**dict.fromkeys(CANONICAL, "send"), PLATFORM_RAW: "receive"}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_event_schema_is_its_snapshot(event_type: str) -> None:
    document = asyncapi_document()
    snapshot = json.loads((SNAPSHOT_DIR / f"{event_type}.v1.json").read_text())
    model = EVENT_TYPES[event_type]
    described = document["components"]["schemas"][model.__name__]
    assert described["properties"].keys() == snapshot["properties"].keys()
    assert sorted(described.get("required", [])) == sorted(snapshot.get("required", []))
    assert described["properties"]["event_type"] == snapshot["properties"]["event_type"]
    for name, definition in snapshot.get("$defs", {}).items():
        assert document["components"]["schemas"][name].keys() == definition.keys(), name
