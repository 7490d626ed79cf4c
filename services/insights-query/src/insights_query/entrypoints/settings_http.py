"""GET and PUT /api/v1/settings/retention: how long the caller's app keeps its messages."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from insights_common.access import Permission, Principal
from insights_common.http.access import Access
from insights_common.http.conventions import FORBIDDEN, UNAUTHORIZED, problem_responses
from insights_common.http.recorder import Recorder
from insights_common.retention import MAX_DAYS, MIN_DAYS, check_days
from insights_query.retention import RetentionService

RETENTION_SET = "retention.set"


class RetentionOut(BaseModel):
    days: int | None
    """Messages sent more than this many days ago are removed; null keeps every message."""
    updated_at: datetime | None


class RetentionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: Annotated[int, Field(strict=True)] | None = Field(
        description=f"{MIN_DAYS} to {MAX_DAYS}, or null to keep every message."
    )

    @field_validator("days")
    @classmethod
    def _in_range(cls, days: int | None) -> int | None:
        return None if days is None else check_days(days)


def describe(days: int | None) -> str:
    """The audit trail's detail of a change."""
    return "off" if days is None else f"{days} days"


def settings_router(access: Access, retention: RetentionService, record: Recorder) -> APIRouter:
    router = APIRouter(tags=["settings"])
    Admin = Annotated[Principal, Depends(access.require(Permission.MANAGE_SETTINGS))]

    @router.get(
        "/settings/retention",
        response_model=RetentionOut,
        responses=problem_responses({401: UNAUTHORIZED, 403: FORBIDDEN}),
    )
    async def get_retention(caller: Admin) -> RetentionOut:
        setting = await retention.settings.get(caller.app_id)
        if setting is None:
            return RetentionOut(days=None, updated_at=None)
        return RetentionOut(days=setting.days, updated_at=setting.updated_at)

    @router.put(
        "/settings/retention",
        response_model=RetentionOut,
        responses=problem_responses(
            {
                400: "The body could not be read (not UTF-8 text).",
                401: UNAUTHORIZED,
                403: FORBIDDEN,
                422: f"days is not a whole number from {MIN_DAYS} to {MAX_DAYS} or null "
                "(errors[] says why), the body has other fields, or it is not JSON.",
            }
        ),
    )
    async def set_retention(caller: Admin, body: RetentionChange, request: Request) -> RetentionOut:
        """Set how long the app keeps its messages; a pass removing the older ones starts at
        once, in the background, in chunks. Recorded in the audit trail."""
        now = retention.clock()
        await retention.settings.set(caller.app_id, body.days, now=now)
        await record(request, RETENTION_SET, detail=describe(body.days))
        if body.days is not None:
            retention.apply_soon(caller.app_id)
        return RetentionOut(days=body.days, updated_at=now if body.days is not None else None)

    return router
