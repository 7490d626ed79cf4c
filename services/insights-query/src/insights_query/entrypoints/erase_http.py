"""DELETE /api/v1/users/{user_id}: an admin erases a user of the caller's app everywhere."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from insights_common.access import Permission, Principal
from insights_common.http.access import Access
from insights_common.http.conventions import FORBIDDEN, UNAUTHORIZED, problem_responses
from insights_common.http.recorder import Recorder
from insights_contracts.types import USER_ID_PATTERN
from insights_query.erasure import ERASE_ACTION, UserEraser


class ErasedOut(BaseModel):
    user_id: str
    erased_at: datetime
    """Events about the user dated up to this instant are dropped from now on."""
    complete: bool
    """True once nothing of the user can be read through the API; false when the projection
    had not taken the erase within QUERY_ERASE_WAIT_SECONDS (it will)."""


def erase_router(access: Access, eraser: UserEraser, record: Recorder) -> APIRouter:
    router = APIRouter(tags=["users"])
    Admin = Annotated[Principal, Depends(access.require(Permission.ERASE_USERS))]

    @router.delete(
        "/users/{user_id}",
        response_model=ErasedOut,
        responses=problem_responses(
            {
                400: "user_id is not 1 to 80 characters from A-Z a-z 0-9 _ - .",
                401: UNAUTHORIZED,
                403: FORBIDDEN,
                503: "Kafka is not answering: nothing was erased; try again.",
            }
        ),
    )
    async def erase_user(
        caller: Admin,
        request: Request,
        user_id: Annotated[str, Path(pattern=USER_ID_PATTERN, max_length=80)],
    ) -> ErasedOut:
        """Erase the user everywhere: profile, messages, import reports and registry, kept
        callbacks. Recorded in the audit trail as `user.erase` with the user_id only."""
        erased = await eraser.erase(caller.app_id, user_id)
        await record(request, ERASE_ACTION, user_id=user_id)
        return ErasedOut(
            user_id=erased.user_id, erased_at=erased.erased_at, complete=erased.complete
        )

    return router
