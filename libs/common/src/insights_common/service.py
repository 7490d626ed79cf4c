"""What a service hands to the process that hosts it: its routes and its lifecycle hooks, and
the chores it repeats in the background while it runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import APIRouter
from prometheus_client.registry import Collector

Hook = Callable[[], Awaitable[object]]

log = logging.getLogger(__name__)


@dataclass
class ServiceParts:
    """Routes are mounted under /api/v1 by the host; hooks run at its start and stop."""

    router: APIRouter
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    collectors: list[Collector] = field(default_factory=list)
    """Metrics of the service's own, for the host's /metrics."""


class Recurring:
    """A chore done in the background every `every` while the service runs.

    `start` begins it, at once or after the first interval (`first_at_start`); `stop` cancels
    it. A turn that raises is logged and the chore is tried again at the next one, so a passing
    outage of a server does not end it.
    """

    def __init__(
        self, chore: Hook, *, every: timedelta, name: str, first_at_start: bool = True
    ) -> None:
        self._chore = chore
        self._every = every.total_seconds()
        self._name = name
        self._first_at_start = first_at_start
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._forever(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _forever(self) -> None:
        if not self._first_at_start:
            await asyncio.sleep(self._every)
        while True:
            try:
                await self._chore()
            except Exception:
                log.exception("%s failed; trying again in %.0f s", self._name, self._every)
            await asyncio.sleep(self._every)
