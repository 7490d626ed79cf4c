"""Committing a subscriber's offsets only once what its batches wrote can be read.

A handler that writes to a store whose reads see a write only later (OpenSearch's searches, after
a refresh) hands each handled batch's next offsets to `VisibleCommits` and takes the next batch
at once. One task waits until everything handed over so far is visible (`visible()`), then
commits those batches' offsets in one request, per partition, in the order they were handled;
the consumer meanwhile handles the following batches, with at most `depth` handled and not yet
committed (it waits for room past that; a batch's next fetch then brings more records).

A committed offset therefore never passes a write that reads do not see yet. A batch that failed
is never handed over (the bus seeks back to it), so nothing after it is committed before it is
handled again. A batch of partitions taken away meanwhile is not committed: their new owner takes
it again from the last commit (at-least-once; the projections are idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from insights_common.bus import Visibility

log = logging.getLogger(__name__)

Offsets = Mapping[TopicPartition, int]
"""Per partition, the offset of the next record to read: what a commit stores."""

DEPTH = 4
"""Most batches of a consumer handled and not yet committed."""
SETTLE_SECONDS = 10.0
"""Longest a rebalance or a stop waits for the batches handed over to be committed."""


@dataclass(frozen=True, slots=True)
class _Handled:
    offsets: dict[TopicPartition, int]
    generation: int


class VisibleCommits:
    """One consumer's commits, each made once the batches it covers are visible.

    `commit` sends offsets for the consumer (`AIOKafkaConsumer.commit` with explicit offsets,
    never without: that would commit the consumer's position, past batches not yet visible).
    A rebalance or a stop waits up to `settle_seconds` for the batches handed over to be
    committed. A failed visibility check is tried again after the next of `retry_delays` (the
    last one repeated), waited out with `pause` (injected for tests).
    """

    def __init__(
        self,
        *,
        name: str,
        visible: Visibility,
        commit: Callable[[dict[TopicPartition, int]], Awaitable[None]],
        retry_delays: Sequence[float],
        depth: int = DEPTH,
        settle_seconds: float = SETTLE_SECONDS,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self._name = name
        self._visible = visible
        self._commit = commit
        self._depth = depth
        self._settle_seconds = settle_seconds
        self._pause = pause
        self._delays = tuple(retry_delays)
        self._pending: list[_Handled] = []
        self._changed = asyncio.Condition()
        self._added = 0
        self._settled = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.generation = 0
        """Moves on when partitions are taken away: a batch begun before is not committed."""

    @property
    def closed(self) -> bool:
        return self._closed

    async def add(self, offsets: Offsets, *, generation: int) -> None:
        """Hand over a handled batch's next offsets, `generation` as it was when the batch was
        taken; waits while `depth` batches wait for visibility."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._pending) < self._depth or self._closed)
            if self._closed or generation != self.generation:
                return  # taken again by whoever consumes these partitions next
            self._pending.append(_Handled(dict(offsets), generation))
            self._added += 1
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name=f"{self._name} commits")
            self._changed.notify_all()

    async def settle(self) -> bool:
        """Wait until every batch handed over so far is committed (or given up); False when
        `settle_seconds` passed first."""
        async with self._changed:
            target = self._added
            try:
                async with asyncio.timeout(self._settle_seconds):
                    await self._changed.wait_for(lambda: self._settled >= target)
            except TimeoutError:
                return False
        return True

    async def revoked(self) -> None:
        """Partitions are being taken away: commit what is handed over while they are still
        this consumer's, and commit nothing of a batch begun before."""
        if not await self.settle():
            log.warning(
                "%s: batches still not visible after %.0f s of a rebalance; their partitions'"
                " next owners take them again",
                self._name,
                self._settle_seconds,
            )
        self.generation += 1

    async def close(self) -> None:
        """Take no more batches; commit those handed over once visible (up to
        `settle_seconds`)."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()
        if not await self.settle():
            log.warning(
                "%s: batches still not visible after %.0f s; they are taken again after the"
                " restart",
                self._name,
                self._settle_seconds,
            )
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        failures = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._pending))
                taken = self._pending[: len(self._pending)]
            try:
                # Everything in `taken` was written before this call: visible when it returns.
                await self._visible()
            except Exception as error:
                delay = self._delays[min(failures, len(self._delays) - 1)]
                failures += 1
                log.warning(
                    "%s: cannot tell that %d handled batches are visible (%d in a row): %s;"
                    " trying again in %.1f s",
                    self._name,
                    len(taken),
                    failures,
                    error,
                    delay,
                )
                await self._pause(delay)
                continue
            failures = 0
            current = (h.offsets for h in taken if h.generation == self.generation)
            await self._commit_quietly(merged(current))
            async with self._changed:
                del self._pending[: len(taken)]
                self._settled += len(taken)
                self._changed.notify_all()

    async def _commit_quietly(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await self._commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            # The partitions went to another consumer: it takes these batches again.
            log.info("%s: offsets not committed, the group changed: %s", self._name, error)
        except KafkaError as error:
            # The next commit covers these offsets too; meanwhile a restart replays them.
            log.warning("%s: committing offsets failed: %s", self._name, error)


def merged(batches: Iterable[Mapping[TopicPartition, int]]) -> dict[TopicPartition, int]:
    """The furthest next offset of each partition over the batches."""
    offsets: dict[TopicPartition, int] = {}
    for batch in batches:
        for partition, offset in batch.items():
            offsets[partition] = max(offset, offsets.get(partition, offset))
    return offsets


class CommitsOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets the handed-over batches be committed before a rebalance takes partitions away."""

    def __init__(self, commits: VisibleCommits) -> None:
        self._commits = commits

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            await self._commits.revoked()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass
