"""Refreshes: a caller waits for a refresh begun after its call; one refresh serves every caller
before it began; one runs at a time, `gap` apart."""

from __future__ import annotations

import asyncio

import pytest

from insights_query.adapters.opensearch.refreshes import Refreshes

pytestmark = pytest.mark.unit


class Cluster:
    def __init__(self) -> None:
        self.now = 0.0
        self.began: list[float] = []
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()
        self.failing = False
        self.slept: list[float] = []

    async def refresh(self) -> None:
        self.began.append(self.now)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.release.wait()
            if self.failing:
                raise ConnectionError("OpenSearch does not answer")
        finally:
            self.running -= 1

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def refreshes(self, gap: float = 0.5) -> Refreshes:
        return Refreshes(self.refresh, gap=gap, clock=lambda: self.now, sleep=self.sleep)


async def settled() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_caller_during_a_refresh_waits_for_the_next_one_shared_with_the_others() -> None:
    cluster = Cluster()
    refreshes = cluster.refreshes()
    first = asyncio.create_task(refreshes.after_writes())
    await settled()
    assert len(cluster.began) == 1

    # Written while the first refresh runs: it may not cover them.
    later = [asyncio.create_task(refreshes.after_writes()) for _ in range(3)]
    await settled()
    assert len(cluster.began) == 1

    cluster.release.set()
    await asyncio.wait_for(first, 5)
    await asyncio.wait_for(asyncio.gather(*later), 5)
    assert len(cluster.began) == 2
    assert cluster.most_at_once == 1


async def test_refreshes_begin_at_least_the_gap_apart() -> None:
    cluster = Cluster()
    cluster.release.set()
    refreshes = cluster.refreshes(gap=0.5)
    await refreshes.after_writes()
    cluster.now += 0.2
    await refreshes.after_writes()
    cluster.now += 2.0
    await refreshes.after_writes()
    assert cluster.began == [0.0, 0.5, 2.5]


async def test_a_failed_refresh_fails_its_callers_and_the_next_call_tries_again() -> None:
    cluster = Cluster()
    cluster.failing = True
    cluster.release.set()
    refreshes = cluster.refreshes()
    with pytest.raises(ConnectionError):
        await refreshes.after_writes()

    cluster.failing = False
    await asyncio.wait_for(refreshes.after_writes(), 5)
    assert len(cluster.began) == 2


async def test_a_cancelled_caller_leaves_the_refresh_to_the_others() -> None:
    cluster = Cluster()
    refreshes = cluster.refreshes()
    gone = asyncio.create_task(refreshes.after_writes())
    staying = asyncio.create_task(refreshes.after_writes())
    await settled()
    gone.cancel()
    cluster.release.set()
    await asyncio.wait_for(staying, 5)
    assert len(cluster.began) == 1
