"""/api/v1/settings/sources: the app's admins set up the platforms whose callbacks it takes."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from insights_common.access import Permission, Principal
from insights_common.http.access import Access
from insights_common.http.conventions import FORBIDDEN, UNAUTHORIZED, Problem, problem_responses
from insights_common.http.rate_limit import client_address
from insights_common.sources import (
    MAX_SECRET,
    MAX_USER_FIELD,
    Actor,
    BadSecret,
    BadUserField,
    NotConfigured,
    SourceError,
    Sources,
    SourceState,
    UnknownPlatform,
    callback_url,
)


class SourceOut(BaseModel):
    platform: str
    title: str
    credential: str
    """What the platform calls the secret it signs with (never returned)."""
    credential_hint: str
    """Where to find it."""
    token_made_here: bool
    """Braze: PUT `{}` makes the bearer token and answers it once."""
    configured: bool
    configured_at: str | None
    user_field: str | None
    user_field_kind: str
    """`path` (dotted, into the JSON) or `parameter` (Twilio's form or URL query)."""
    user_field_example: str
    user_field_default: str
    callback_url: str
    """What to give the platform: absolute from PUBLIC_BASE_URL when set, else the path."""


class SourceChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(default=None, max_length=MAX_SECRET)
    """Omitted only for Braze, whose bearer token is then made here."""
    user_field: str | None = Field(default=None, max_length=MAX_USER_FIELD)


class SourceAdded(SourceOut):
    token: str | None
    """Braze's new bearer token when it was made here: shown only this once."""


_AUTH = problem_responses({401: UNAUTHORIZED, 403: FORBIDDEN})
_NOT_TAKEN = "User Insights takes no callbacks from this platform (the detail lists those it takes)"
_SET = problem_responses(
    {
        400: "The body is not JSON.",
        401: UNAUTHORIZED,
        403: FORBIDDEN,
        404: _NOT_TAKEN + ".",
        422: "The secret is empty or too long, or the user field is not one the platform's"
        " callbacks can have: errors[] says which and what is allowed.",
    }
)
_REMOVE = problem_responses(
    {401: UNAUTHORIZED, 403: FORBIDDEN, 404: _NOT_TAKEN + ", or the app does not take it."}
)


def _problem(error: SourceError) -> Problem:
    if isinstance(error, UnknownPlatform | NotConfigured):
        return Problem(404, "Source not found", str(error))
    field = "user_field" if isinstance(error, BadUserField) else "secret"
    return Problem(
        422,
        "Invalid source",
        str(error),
        errors=[{"loc": ["body", field], "message": str(error), "type": "value_error"}],
    )


def _out(state: SourceState, app_id: str, origin: str | None) -> SourceOut:
    platform = state.platform
    return SourceOut(
        platform=platform.name,
        title=platform.title,
        credential=platform.credential,
        credential_hint=platform.asks,
        token_made_here=platform.token_made_here,
        configured=state.configured_at is not None,
        configured_at=state.configured_at,
        user_field=state.user_field,
        user_field_kind=platform.user_field,
        user_field_example=platform.user_field_example,
        user_field_default=platform.user_field_default,
        callback_url=callback_url(platform.name, app_id, origin),
    )


def sources_router(access: Access, sources: Sources) -> APIRouter:
    router = APIRouter(tags=["settings"])
    Admin = Annotated[Principal, Depends(access.require(Permission.MANAGE_SOURCES))]

    def origin(request: Request) -> str | None:
        return getattr(request.app.state, "public_base_url", None)

    @router.get("/settings/sources", response_model=list[SourceOut], responses=_AUTH)
    async def list_sources(caller: Admin, request: Request) -> list[SourceOut]:
        """Every platform the product takes, configured for this app or not; secrets are never
        returned."""
        states = await sources.list(caller.app_id)
        return [_out(state, caller.app_id, origin(request)) for state in states]

    @router.put("/settings/sources/{platform}", response_model=SourceAdded, responses=_SET)
    async def set_source(
        caller: Admin, platform: str, body: SourceChange, request: Request
    ) -> SourceAdded:
        """Take the platform's callbacks with this secret and user field (both replaced)."""
        try:
            added = await sources.add(
                caller.app_id,
                platform,
                secret=body.secret,
                user_field_text=body.user_field,
                actor=Actor(caller.actor, client_address(request)),
            )
        except (BadSecret, BadUserField, UnknownPlatform) as error:
            raise _problem(error) from error
        state = next(s for s in await sources.list(caller.app_id) if s.platform.name == platform)
        return SourceAdded(
            **_out(state, caller.app_id, origin(request)).model_dump(), token=added.made_token
        )

    @router.delete("/settings/sources/{platform}", status_code=204, responses=_REMOVE)
    async def remove_source(caller: Admin, platform: str, request: Request) -> None:
        """Refuse the platform's callbacks for this app from now on (401)."""
        try:
            await sources.remove(
                caller.app_id, platform, actor=Actor(caller.actor, client_address(request))
            )
        except SourceError as error:
            raise _problem(error) from error

    return router
