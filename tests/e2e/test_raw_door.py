"""The platform's second door: events written to `platform.events.raw` in the distributed mode.

`insights serve ingest` consumes the topic with the webhook's validation and dedup; what it
cannot take goes to `platform.events.raw.dlq` and `insights dlq` shows and replays it.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from insights_contracts.topics import NOTIFICATIONS, PLATFORM_RAW
from tests.deployments import eventually_true
from tests.e2e.test_flow import post_events

if TYPE_CHECKING:
    from tests.deployments import DistributedDeployment

pytestmark = pytest.mark.e2e


def event(kind: str, event_id: str, message_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": f"notification.{kind}",
        "schema_version": 1,
        "app_id": "acme",
        "occurred_at": "2026-11-02T10:00:00Z",
        "message_id": message_id,
        "user_id": "alex",
        **fields,
    }


def sent(event_id: str, message_id: str) -> dict[str, Any]:
    return event(
        "sent",
        event_id,
        message_id,
        channel="push",
        template={"key": "order_shipped", "name": "Order shipped", "version": 3},
        content={"title": "Your order shipped", "body": "Order A-1001 is on its way"},
    )


def produce(bootstrap: str, topic: str, *values: bytes) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for value in values:
                # One key, so the records keep their order on one partition.
                await producer.send_and_wait(topic, value, key=b"platform")
        finally:
            await producer.stop()

    asyncio.run(send())


def event_ids_until(bootstrap: str, topic: str, last: str) -> list[str]:
    """The event ids on the topic up to `last`: one user's events share a partition, so every
    copy published before `last` comes before it."""

    async def read() -> list[str]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        ids: list[str] = []
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while last not in ids:
                assert asyncio.get_running_loop().time() < deadline, f"{last} not seen: {ids}"
                batches = await consumer.getmany(timeout_ms=1000)
                ids += [json.loads(r.value)["event_id"] for b in batches.values() for r in b]
        finally:
            await consumer.stop()
        return ids

    return asyncio.run(read())


def dead_letters(deployment: DistributedDeployment) -> dict[str, Any]:
    listing: dict[str, Any] = json.loads(deployment.cli("dlq", "list", "--json"))
    return listing


def test_raw_events_are_taken_like_the_webhooks_and_the_rest_dead_lettered(
    distributed: DistributedDeployment,
) -> None:
    key = distributed.cli("keys", "create", "--app", "acme")
    raw = f"{distributed.topic_prefix}{PLATFORM_RAW}"
    no_user = {k: v for k, v in event("read", "r-bad", "m1").items() if k != "user_id"}
    produce(
        distributed.kafka,
        raw,
        json.dumps(sent("s-1", "m1")).encode(),
        b"<html>not json</html>",
        json.dumps([event("delivered", "d-1", "m1"), no_user]).encode(),
    )

    with distributed.client(key) as api:

        def delivered() -> bool:
            answer = api.get("/api/v1/messages/m1")
            return answer.status_code == 200 and answer.json()["status"] == "delivered"

        eventually_true(delivered, limit=60)
    eventually_true(lambda: dead_letters(distributed)["total"] == 2, limit=30)

    listing = dead_letters(distributed)
    not_json, invalid = sorted(listing["items"], key=lambda item: item["source_offset"])
    for item in (not_json, invalid):
        assert item["topic"] == PLATFORM_RAW
        assert item["consumer"] == f"{distributed.topic_prefix}insights-ingest-raw"
        assert item["key"] == "platform" and item["replayed"] is False
    assert not_json["value"] == "<html>not json</html>"
    assert not_json["error"].startswith("The body is not valid JSON")
    assert not_json["source_index"] is None
    assert json.loads(invalid["value"]) == no_user
    assert (invalid["source_index"], invalid["error"]) == (1, "user_id: Field required")
    assert invalid["source_offset"] == not_json["source_offset"] + 1

    # Replayed as they are, they are refused again: new dead letters, the old ones replayed.
    replayed = distributed.cli("dlq", "replay", "--all")
    assert f"replayed 2 dead letters: 2 to {PLATFORM_RAW}" in replayed
    eventually_true(lambda: dead_letters(distributed)["total"] == 4, limit=30)
    listing = dead_letters(distributed)
    assert listing["pending"] == 2
    assert sorted(item["replayed"] for item in listing["items"]) == [False, False, True, True]


def test_one_event_through_both_doors_is_taken_once(distributed: DistributedDeployment) -> None:
    key = distributed.cli("keys", "create", "--app", "acme")
    secret = distributed.cli("webhooks", "secret", "--app", "acme")
    event = sent("s-both", "m1")
    answer = post_events(distributed, secret, event)
    assert answer.json()["accepted"] == 1, answer.text
    body = json.dumps(event).encode()

    # The same event through the raw topic, then one more: once that one is visible, the copy
    # before it on the partition was seen and dropped.
    produce(distributed.kafka, f"{distributed.topic_prefix}{PLATFORM_RAW}", body)
    produce(
        distributed.kafka,
        f"{distributed.topic_prefix}{PLATFORM_RAW}",
        json.dumps(sent("s-after", "m2")).encode(),
    )
    with distributed.client(key) as api:
        eventually_true(lambda: api.get("/api/v1/messages/m2").status_code == 200, limit=60)
        assert api.get("/api/v1/messages/m1").status_code == 200

    topic = f"{distributed.topic_prefix}{NOTIFICATIONS}"
    assert event_ids_until(distributed.kafka, topic, "s-after") == ["s-both", "s-after"]
    assert dead_letters(distributed)["total"] == 0
