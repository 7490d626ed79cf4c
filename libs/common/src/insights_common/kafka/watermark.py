"""What the projection made visible: its consumer group's committed positions on Kafka."""

from __future__ import annotations

import contextlib

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from insights_common.bus import Written
from insights_common.kafka.bus import (
    KafkaBus,
    brokers,
)
from insights_common.outage import DEFAULT_TIMEOUT, DependencyUnavailable


class KafkaProjectionWatermark:
    """What the projection made visible, from its consumer group's committed positions.

    The projector commits a batch's offsets only once its writes are visible to reads, and its
    replicas share one group, so the group's committed position on a partition is how far reads
    see that partition, whichever replica took it, across restarts and rebalances.
    """

    def __init__(self, bus: KafkaBus, *, group_id: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._bus = bus
        self._group = bus.topic(group_id)
        self._timeout = timeout
        self._admin: AIOKafkaAdminClient | None = None

    async def visible(self, written: Written) -> int:
        if not written:
            return 0
        partitions = [TopicPartition(span.topic, span.partition) for span in written]
        try:
            async with self._bus.within_publish_timeout(self._timeout):
                admin = await self._client()
                committed = await admin.list_consumer_group_offsets(
                    self._group, partitions=partitions
                )
        except DependencyUnavailable:
            await self.stop()  # a new client next time: the old one may point at a dead broker
            raise
        total = 0
        for span, partition in zip(written, partitions, strict=True):
            position = committed.get(partition)
            total += span.covered(position.offset if position is not None else -1)
        return total

    async def _client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=brokers(self._bus.options.bootstrap_servers),
                client_id=f"{self._bus.options.client_id}-watermark",
            )
            await admin.start()
            self._admin = admin
        return self._admin

    async def stop(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()
