"""The topics the bus creates take the deployment's settings; a list of brokers is one cluster."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from insights_common.kafka.bus import KafkaBus, KafkaOptions, brokers
from insights_contracts.topics import USERS


@pytest.mark.unit
def test_a_comma_separated_list_is_one_address_per_broker() -> None:
    assert brokers("a:9092") == ["a:9092"]
    assert brokers(" a:9092, b:9092 ,c:9092,") == ["a:9092", "b:9092", "c:9092"]


async def _min_isr(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers(bootstrap))
    await admin.start()
    try:
        (answer,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})]
        )
    finally:
        await admin.close()
    ((_, _, _, _, entries),) = answer.resources
    return str({name: value for name, value, *_ in entries}["min.insync.replicas"])


@pytest.mark.integration
async def test_topics_are_created_with_the_configured_min_insync_replicas(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    # The same broker twice: a list of addresses is taken as a cluster's.
    listed = f"{kafka_bootstrap},{kafka_bootstrap}"
    # Two copies asked of a topic with one: Kafka takes the setting (it would refuse writes
    # with acks=all); nothing is written here.
    bus = KafkaBus(KafkaOptions(listed, topic_prefix=topic_prefix, min_insync_replicas=2))
    await bus.ensure_topics([bus.topic(USERS)])
    assert await _min_isr(kafka_bootstrap, bus.topic(USERS)) == "2"
    # Unset, the topic has the broker's default (1 on the single broker of the tests).
    other = KafkaBus(KafkaOptions(listed, topic_prefix=f"{topic_prefix}default."))
    await other.ensure_topics([other.topic(USERS)])
    assert await _min_isr(kafka_bootstrap, other.topic(USERS)) == "1"
