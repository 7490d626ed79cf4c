"""Explicit refreshes, shared by everyone waiting for their writes to be searchable.

A refresh makes every operation done on an index before it began searchable, and its request
answers only once every targeted shard is refreshed. So a caller waits for the first refresh
that begins after its call; one refresh serves everyone who wrote before it began. At most one
runs at a time and two begin at least `gap` seconds apart: under a steady stream as many
refreshes as the indices' own schedule makes, each one a segment to merge later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable


class Refreshes:
    def __init__(
        self,
        refresh: Callable[[], Awaitable[None]],
        *,
        gap: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._refresh = refresh
        self.gap = gap
        self._clock = clock
        self._sleep = sleep
        self._next: asyncio.Future[None] | None = None
        """Done when the refresh not begun yet has ended; the callers since the last began."""
        self._last: asyncio.Task[None] | None = None
        self._began: float | None = None

    async def after_writes(self) -> None:
        """Return once a refresh that began after this call ended; raise as it failed."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            # Nobody may be left to read a failure (all cancelled): it is not an error then.
            self._next.add_done_callback(_retrieved)
            self._last = asyncio.create_task(self._run(self._next, self._last))
        await asyncio.shield(self._next)

    async def _run(self, done: asyncio.Future[None], previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])  # one at a time; its outcome is its callers'
            if self._began is not None:
                wait = self._began + self.gap - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            self._next = None  # who calls from now on may have written after it began
            self._began = self._clock()
            await self._refresh()
        except asyncio.CancelledError:
            self._forget(done)
            done.cancel()
            raise
        except Exception as error:
            self._forget(done)
            done.set_exception(error)
        else:
            done.set_result(None)

    def _forget(self, done: asyncio.Future[None]) -> None:
        if self._next is done:  # it never began: the next caller starts another
            self._next = None


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        with contextlib.suppress(BaseException):
            future.exception()
