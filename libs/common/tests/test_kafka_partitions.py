"""Events land on the partition the Java client's partitioner gives their key."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from insights_common.kafka.partitions import murmur2, partition_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("count", [1, 3, 6, 12])
def test_each_key_gets_the_partition_of_the_java_partitioner(count: int) -> None:
    partitioner = DefaultPartitioner()
    partitions = list(range(count))
    for n in range(500):
        key = f"acme:user-{n}".encode()
        assert partition_of(key, count) == partitioner(key, partitions, partitions)
        assert partition_of(key, count) == partition_of(key, count)


def test_murmur2_is_kafkas_on_keys_of_every_length_and_byte() -> None:
    rng = random.Random(20261205)
    keys = [bytes(range(256)), "앱:사용자-é".encode(), b"\xff" * 7]
    keys += [rng.randbytes(length) for length in range(64) for _ in range(40)]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF, key
