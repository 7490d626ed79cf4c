"""Recording what the caller of a request did in the audit trail (`insights_common.audit`): the
entry made from the request's authenticated caller, and a read of a user recorded beside it."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime
from typing import TypeVar

from fastapi import Request

from insights_common.access import Principal
from insights_common.audit import AuditEntry, Trail
from insights_common.clock import utc_now
from insights_common.http.rate_limit import client_address

T = TypeVar("T")


class Recorder:
    """Records what the authenticated caller of a request did (`await record(request, action)`,
    or `await record.during(read, request, action, user_id=...)` for a read of a user;
    `http.access.Access` put the caller on the request)."""

    def __init__(self, trail: Trail, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._trail = trail
        self._clock = clock

    async def __call__(
        self,
        request: Request,
        action: str,
        *,
        user_id: str | None = None,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        await self._trail.append(self._entry(request, action, user_id, reason, detail))

    async def read(
        self, request: Request, action: str, *, user_id: str, detail: str | None = None
    ) -> None:
        """Records a read of a user made already (its user was known only from what it read):
        stored as the entries `during` writes, in the spool when the trail has one."""
        await self._trail.beside(self._entry(request, action, user_id, None, detail))

    def _entry(
        self,
        request: Request,
        action: str,
        user_id: str | None,
        reason: str | None,
        detail: str | None,
    ) -> AuditEntry:
        caller: Principal = request.state.principal
        return AuditEntry(
            at=self._clock(),
            app_id=caller.app_id,
            actor=caller.actor,
            action=action,
            user_id=user_id,
            address=client_address(request),
            reason=reason,
            detail=detail,
        )

    async def during(
        self,
        read: Awaitable[T],
        request: Request,
        action: str,
        *,
        user_id: str,
        reason: str | None = None,
        detail: str | None = None,
    ) -> T:
        """`read`, its entry written meanwhile: for a read whose user is known before it runs.

        The answer still waits until the entry is stored, but the trail's round trip runs
        beside the store's instead of after it, so a read pays for the trail only what the
        entry takes longer than the read. The entry records that the caller asked for the
        user's history, so it is kept when the read finds no such user or fails; a read fails
        (`DependencyUnavailable`, 503) when its entry could not be stored."""
        try:
            writing = self._trail.beside(self._entry(request, action, user_id, reason, detail))
        except BaseException:
            if inspect.iscoroutine(read):
                read.close()  # refused before it began
            raise
        try:
            answer = await read
        except BaseException:
            with suppress(Exception):
                await writing  # the read's own error is the answer
            raise
        await writing
        return answer
