"""Events land on the partition the Java client's partitioner gives their key."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from insights_common.kafka.bus import _partition_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("count", [1, 3, 6, 12])
def test_each_key_gets_the_partition_of_the_java_partitioner(count: int) -> None:
    partitioner = DefaultPartitioner()
    partitions = list(range(count))
    for n in range(500):
        key = f"acme:user-{n}".encode()
        assert _partition_of(key, count) == partitioner(key, partitions, partitions)
        assert _partition_of(key, count) == _partition_of(key, count)
