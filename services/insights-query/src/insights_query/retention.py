"""The retention pass: each app's messages sent before its cut-off leave the query projection.

It runs every `every` in the process that serves the query API (embedded: `insights dev`;
distributed: each `insights serve query` replica, one at a time through the settings' lock),
right after an admin changes the setting, and on demand (`insights apps apply-retention`).
Each app's messages go in chunks of `chunk`: each chunk is one short write, so the projector
and readers are held up for one chunk at most, never for the whole pass.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from insights_common.clock import utc_now
from insights_common.retention import Retention, RetentionSettings
from insights_common.service import Recurring
from insights_query.domain.retention import PassResult, cutoff
from insights_query.ports import RetentionStore
from insights_query.settings import QuerySettings

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 2000


class RetentionService:
    def __init__(
        self,
        *,
        settings: RetentionSettings,
        store: RetentionStore,
        every: timedelta | None,
        chunk: int = DEFAULT_CHUNK,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """`every`: how often a pass runs by itself; None runs one only when asked."""
        self.settings = settings
        self._store = store
        self._chunk = chunk
        self.clock = clock
        self._recurring = (
            Recurring(self.run_pass, every=every, name="retention pass")
            if every is not None
            else None
        )
        self._asked: set[asyncio.Task[object]] = set()

    @classmethod
    def of(
        cls,
        *,
        settings: RetentionSettings,
        store: RetentionStore,
        query: QuerySettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> RetentionService:
        every = query.retention_every_seconds
        return cls(
            settings=settings,
            store=store,
            every=timedelta(seconds=every) if every else None,
            chunk=query.retention_chunk,
            clock=clock,
        )

    async def start(self) -> None:
        """Begin the passes on their schedule (the process serving the query API does)."""
        if self._recurring is not None:
            await self._recurring.start()

    async def stop(self) -> None:
        if self._recurring is not None:
            await self._recurring.stop()
        for task in list(self._asked):
            task.cancel()
        await asyncio.gather(*self._asked, return_exceptions=True)

    async def run_pass(self) -> list[PassResult] | None:
        """A pass over every app with a setting; None when another process is running one."""
        async with self.settings.exclusive() as mine:
            if not mine:
                log.info("a retention pass is running elsewhere; skipping this turn")
                return None
            return [await self._remove(setting) for setting in await self.settings.every()]

    async def apply(self, app_id: str) -> PassResult | None:
        """A pass over one app now; None when it keeps every message or another process is
        running a pass (which covers this app too)."""
        async with self.settings.exclusive() as mine:
            setting = await self.settings.get(app_id)
            if not mine or setting is None:
                return None
            return await self._remove(setting)

    def apply_soon(self, app_id: str) -> None:
        """Start a pass over the app in the background (after its setting changed)."""
        task: asyncio.Task[object] = asyncio.create_task(
            self._logged(app_id), name=f"retention pass {app_id}"
        )
        self._asked.add(task)
        task.add_done_callback(self._asked.discard)

    async def _logged(self, app_id: str) -> object:
        try:
            return await self.apply(app_id)
        except Exception:
            log.exception("the retention pass of app %s failed; the next turn tries again", app_id)
            return None

    async def _remove(self, setting: Retention) -> PassResult:
        # One cut-off for the whole pass: the chunks agree on what is old.
        before = cutoff(self.clock(), setting.days)
        started = time.perf_counter()
        messages = users = chunks = 0
        resume: str | None = None
        while True:
            removed = await self._store.remove_sent_before(
                setting.app_id, before, limit=self._chunk, after=resume
            )
            chunks += 1
            messages += removed.messages
            users += removed.users
            resume = removed.resume
            if resume is None:
                break
        result = PassResult(
            app_id=setting.app_id,
            days=setting.days,
            before=before,
            messages=messages,
            users=users,
            chunks=chunks,
            seconds=time.perf_counter() - started,
        )
        if messages:
            log.info(
                "retention removed %d message(s) of app %s sent before %s (%d chunk(s), %.1f s)",
                messages,
                setting.app_id,
                before.isoformat(),
                chunks,
                result.seconds,
            )
        return result
