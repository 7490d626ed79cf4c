"""Erasing a user: the `user.erased` event on the users topic, and the wait for the projection.

The erase is an event, so every service forgets the user as it consumes it, in both modes: the
projector (the profile, messages and their events, and the marker that drops what comes later
about them, `domain.erasure`), import-svc (its registry entry and rejected rows) and
notification-ingest (the user's numbers and the callbacks kept for them). In the embedded mode
they all did so before `publish` returns; in the distributed mode the answer waits for the
projector's committed position (as an import does), and the other two follow as their consumer
groups reach the event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from insights_common.bus import EventPublisher, ProjectionWatermark, written_records
from insights_common.clock import utc_now
from insights_contracts import UserErased

ERASE_ACTION = "user.erase"
"""Its audit trail entry: who, when, the app and the user_id; nothing else of the user."""
_POLL = 0.1


@dataclass(frozen=True, slots=True)
class Erased:
    user_id: str
    erased_at: datetime
    complete: bool
    """The projection has taken the erase (nothing of the user can be read any more)."""


class UserEraser:
    def __init__(
        self,
        *,
        publisher: EventPublisher,
        watermark: ProjectionWatermark,
        wait_seconds: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._publisher = publisher
        self._watermark = watermark
        self._wait = wait_seconds
        self._clock = clock

    async def erase(self, app_id: str, user_id: str) -> Erased:
        """Publish the erase of the user; answer once the projection took it, or after the
        wait. Erasing a user the product does not know still marks them erased."""
        event = UserErased(
            event_id=f"erase:{uuid.uuid4().hex}",
            app_id=app_id,
            occurred_at=self._clock(),
            user_id=user_id,
        )
        written = await self._publisher.publish([event])
        total = written_records(written)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while total and await self._watermark.visible(written) < total:
            if loop.time() >= deadline:
                return Erased(user_id, event.occurred_at, complete=False)
            await asyncio.sleep(_POLL)
        return Erased(user_id, event.occurred_at, complete=True)
