"""GET /api/v1/audit: the app's audit trail for its admins, newest first, as JSON or CSV."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from insights_common.access import Permission
from insights_common.audit import AuditEntry, AuditFilter, AuditLog
from insights_common.http.access import Access
from insights_common.http.conventions import (
    DEFAULT_LIMIT,
    FORBIDDEN,
    MAX_LIMIT,
    UNAUTHORIZED,
    Page,
    Problem,
    cursor_integer,
    decode_cursor,
    encode_cursor,
    problem_responses,
)
from insights_common.spreadsheet import csv_lines

EXPORT_PAGE = 1000


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    user_id: str | None
    address: str | None
    reason: str | None
    detail: str | None
    hash: str

    @classmethod
    def of(cls, entry: AuditEntry) -> "AuditEntryOut":
        return cls(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            user_id=entry.user_id,
            address=entry.address,
            reason=entry.reason,
            detail=entry.detail,
            hash=entry.hash,
        )


CSV_COLUMNS = ("seq", "at", "actor", "action", "user_id", "address", "reason", "detail", "hash")


def _moment(name: str, text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        message = f"{name} must be an RFC 3339 date-time or YYYY-MM-DD (got {text[:40]!r})"
        raise Problem(
            400,
            "Invalid request",
            message,
            errors=[{"loc": ["query", name], "message": message, "type": "value_error"}],
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def audit_router(access: Access, log: AuditLog) -> APIRouter:
    router = APIRouter(tags=["audit"])
    AppId = Annotated[str, Depends(access.app_id(Permission.READ_AUDIT))]

    @router.get(
        "/audit",
        response_model=Page[AuditEntryOut],
        responses={
            200: {"content": {"text/csv": {}}},
            **problem_responses({400: "A filter is not valid.", 401: UNAUTHORIZED, 403: FORBIDDEN}),
        },
    )
    async def read_audit(
        app_id: AppId,
        user_id: Annotated[str | None, Query(max_length=256)] = None,
        actor: Annotated[
            str | None, Query(max_length=400, description="member:<email> or key:<key id>")
        ] = None,
        action: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: str | None = None,
        format: Literal["json", "csv"] = "json",
    ) -> Any:
        where = AuditFilter(
            user_id=user_id,
            actor=actor,
            action=action,
            since=_moment("since", since),
            until=_moment("until", until),
        )
        position = decode_cursor(cursor)
        before = cursor_integer(position, "before") if position else None
        if format == "csv":
            return StreamingResponse(
                _csv(log, app_id, where, before),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="audit-{app_id}.csv"'},
            )
        entries = await log.search(app_id, where, before_seq=before, limit=limit + 1)
        following = (
            encode_cursor({"before": entries[limit - 1].seq}) if len(entries) > limit else None
        )
        return Page[AuditEntryOut](
            items=[AuditEntryOut.of(e) for e in entries[:limit]], next_cursor=following
        )

    return router


async def _csv(
    log: AuditLog, app_id: str, where: AuditFilter, before: int | None
) -> AsyncIterator[str]:
    yield csv_lines([CSV_COLUMNS])
    while True:
        entries = await log.search(app_id, where, before_seq=before, limit=EXPORT_PAGE)
        yield csv_lines(
            [
                [
                    str(e.seq),
                    e.at.isoformat(),
                    e.actor,
                    e.action,
                    e.user_id or "",
                    e.address or "",
                    e.reason or "",
                    e.detail or "",
                    e.hash,
                ]
                for e in entries
            ]
        )
        if len(entries) < EXPORT_PAGE:
            return
        before = entries[-1].seq
