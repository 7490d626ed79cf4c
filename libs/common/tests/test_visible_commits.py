"""VisibleCommits: a handled batch's offsets are committed only after the visibility wait that
began once it was handed over, in order, with few batches ahead; a failed wait commits nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from insights_common.kafka.visible_commits import VisibleCommits, merged

pytestmark = pytest.mark.unit

P0 = TopicPartition("t", 0)
P1 = TopicPartition("t", 1)


class Cluster:
    """A store whose writes become visible when the test says, and a group's commits."""

    def __init__(self) -> None:
        self.waits = 0
        self.gate = asyncio.Event()
        self.failing = 0
        self.commits: list[dict[TopicPartition, int]] = []
        self.refusing: type[Exception] | None = None

    async def visible(self) -> None:
        self.waits += 1
        await self.gate.wait()
        if self.failing:
            self.failing -= 1
            raise ConnectionError("OpenSearch does not answer")

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refusing is not None:
            refused, self.refusing = self.refusing, None
            raise refused("the group rebalanced")
        self.commits.append(offsets)

    def committed(self) -> dict[TopicPartition, int]:
        return merged(self.commits)


def commits_of(cluster: Cluster, *, depth: int = 4, settle: float = 5) -> VisibleCommits:
    async def no_pause(_: float) -> None:
        await asyncio.sleep(0)

    return VisibleCommits(
        name="group",
        visible=cluster.visible,
        commit=cluster.commit,
        retry_delays=(0.2, 1.0),
        depth=depth,
        settle_seconds=settle,
        pause=no_pause,
    )


async def until(check: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.001)


async def test_offsets_are_committed_only_once_the_writes_are_visible() -> None:
    cluster = Cluster()
    commits = commits_of(cluster)

    await commits.add({P0: 10, P1: 4}, generation=0)
    await until(lambda: cluster.waits == 1)
    await asyncio.sleep(0.05)
    assert cluster.commits == []

    cluster.gate.set()
    await until(lambda: bool(cluster.commits))
    assert cluster.commits == [{P0: 10, P1: 4}]
    await commits.close()


async def test_batches_handed_over_during_a_wait_are_committed_after_the_next_wait_in_order() -> (
    None
):
    cluster = Cluster()
    commits = commits_of(cluster)
    await commits.add({P0: 10}, generation=0)
    await until(lambda: cluster.waits == 1)
    # Handed over while the first wait runs: written after it began, so not covered by it.
    await commits.add({P0: 20, P1: 3}, generation=0)
    await commits.add({P0: 30}, generation=0)

    cluster.gate.set()
    await until(lambda: len(cluster.commits) == 2)
    assert cluster.waits == 2
    assert cluster.commits == [{P0: 10}, {P0: 30, P1: 3}]
    await commits.close()


async def test_the_consumer_waits_when_depth_batches_wait_for_visibility() -> None:
    cluster = Cluster()
    commits = commits_of(cluster, depth=2)
    await commits.add({P0: 1}, generation=0)
    await commits.add({P0: 2}, generation=0)

    third = asyncio.create_task(commits.add({P0: 3}, generation=0))
    await asyncio.sleep(0.05)
    assert not third.done()

    cluster.gate.set()
    await asyncio.wait_for(third, 5)
    await until(lambda: cluster.committed() == {P0: 3})
    await commits.close()


async def test_a_failed_visibility_wait_commits_nothing_and_is_tried_again() -> None:
    cluster = Cluster()
    cluster.failing = 2
    commits = commits_of(cluster)
    await commits.add({P0: 7}, generation=0)

    cluster.gate.set()
    await until(lambda: bool(cluster.commits))
    assert cluster.waits == 3
    assert cluster.commits == [{P0: 7}]
    await commits.close()


async def test_a_refused_commit_is_left_to_the_partitions_next_owner_and_the_next_goes_on() -> None:
    cluster = Cluster()
    cluster.gate.set()
    commits = commits_of(cluster)
    for refusal in (CommitFailedError, IllegalStateError):
        cluster.refusing = refusal
        await commits.add({P0: 5}, generation=0)
        await commits.settle()
        assert cluster.commits == []

    await commits.add({P0: 9}, generation=0)
    await commits.settle()
    assert cluster.commits == [{P0: 9}]
    await commits.close()


async def test_a_rebalance_commits_what_was_handed_over_and_nothing_begun_before_it() -> None:
    cluster = Cluster()
    commits = commits_of(cluster)
    begun = commits.generation  # a batch taken before the partitions are revoked
    await commits.add({P0: 4}, generation=begun)

    revoking = asyncio.create_task(commits.revoked())
    await asyncio.sleep(0.05)
    assert not revoking.done()  # the rebalance waits for the commit
    cluster.gate.set()
    await asyncio.wait_for(revoking, 5)
    assert cluster.commits == [{P0: 4}]

    await commits.add({P0: 8}, generation=begun)  # handled across the rebalance
    await commits.add({P1: 2}, generation=commits.generation)
    await commits.settle()
    assert cluster.commits == [{P0: 4}, {P1: 2}]
    await commits.close()


async def test_a_rebalance_that_cannot_wait_commits_none_of_the_batches_before_it() -> None:
    cluster = Cluster()
    commits = commits_of(cluster, settle=0.05)
    await commits.add({P0: 4}, generation=commits.generation)
    await commits.revoked()  # OpenSearch never answers within the settle time

    cluster.gate.set()
    await commits.add({P1: 1}, generation=commits.generation)
    await until(lambda: bool(cluster.commits))
    assert cluster.commits == [{P1: 1}]
    await commits.close()


async def test_closing_commits_what_was_handed_over_and_takes_nothing_more() -> None:
    cluster = Cluster()
    commits = commits_of(cluster)
    await commits.add({P0: 6}, generation=0)

    closing = asyncio.create_task(commits.close())
    await asyncio.sleep(0.05)
    assert commits.closed
    assert not closing.done()
    await commits.add({P0: 9}, generation=0)  # a batch handled while stopping

    cluster.gate.set()
    await asyncio.wait_for(closing, 5)
    assert cluster.commits == [{P0: 6}]


async def test_closing_gives_up_on_writes_that_never_become_visible() -> None:
    cluster = Cluster()
    commits = commits_of(cluster, settle=0.05)
    await commits.add({P0: 6}, generation=0)
    await asyncio.wait_for(commits.close(), 5)
    assert cluster.commits == []


def test_merged_offsets_are_the_furthest_of_each_partition() -> None:
    assert merged([{P0: 5, P1: 2}, {P0: 3}, {P1: 9}]) == {P0: 5, P1: 9}
