"""Recurring: a service's background chore, repeated while it runs and stopped with it."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from insights_common.service import Recurring

pytestmark = pytest.mark.unit

TICK = timedelta(milliseconds=20)


class Turns:
    """Counts a chore's turns; `reached(n)` waits for the n-th."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._changed = asyncio.Event()

    def count(self) -> None:
        self.times.append(asyncio.get_running_loop().time())
        self._changed.set()

    async def reached(self, n: int) -> None:
        async with asyncio.timeout(5):
            while len(self.times) < n:
                self._changed.clear()
                await self._changed.wait()


async def test_the_chore_runs_at_start_then_every_interval_until_stopped() -> None:
    turns = Turns()

    async def chore() -> None:
        turns.count()

    recurring = Recurring(chore, every=TICK, name="tick")
    await recurring.start()
    await recurring.start()  # starting twice keeps one loop
    await turns.reached(3)
    await recurring.stop()
    assert not recurring.running
    done = len(turns.times)
    await asyncio.sleep(TICK.total_seconds() * 3)
    assert len(turns.times) == done
    times = turns.times
    assert all(later - earlier >= 0.015 for earlier, later in zip(times, times[1:], strict=False))


async def test_the_first_turn_can_wait_one_interval() -> None:
    turns: list[int] = []

    async def chore() -> None:
        turns.append(1)

    recurring = Recurring(chore, every=timedelta(hours=1), name="hourly", first_at_start=False)
    await recurring.start()
    await asyncio.sleep(0.05)
    assert recurring.running
    assert turns == []
    await recurring.stop()


async def test_a_failing_turn_is_logged_and_the_chore_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    turns = Turns()

    async def chore() -> None:
        turns.count()
        if len(turns.times) == 1:
            raise ConnectionError("PostgreSQL is restarting")

    recurring = Recurring(chore, every=TICK, name="forget old ids")
    with caplog.at_level(logging.ERROR):
        await recurring.start()
        await turns.reached(2)
        await recurring.stop()
    assert "forget old ids failed; trying again in 0 s" in caplog.text
    assert "PostgreSQL is restarting" in caplog.text


async def test_stopping_a_chore_never_started_is_harmless() -> None:
    async def chore() -> None:
        raise AssertionError("never runs")

    await Recurring(chore, every=TICK, name="idle").stop()
