"""POST /sources/{platform}/{app_id}: a messaging platform's own callbacks, as it sends them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel

from insights_common.http.conventions import Problem, problem_responses
from insights_contracts.types import APP_ID_PATTERN
from notification_ingest.domain.errors import BatchTooLarge, MalformedBody
from notification_ingest.entrypoints.http import take_signed, unread_refusal
from notification_ingest.source_service import SourceResult, SourceService, UnknownPlatform


class IgnoredOut(BaseModel):
    index: int
    status: str
    reason: str


class RefusedOut(BaseModel):
    index: int
    reason: str


class SourceResponse(BaseModel):
    callbacks: int
    """Callbacks the body held (a Braze batch holds many, a Sendbird send one per receiver)."""
    accepted: int
    """Canonical events taken; a callback makes its message's sent event and its own."""
    duplicates: int
    ignored: list[IgnoredOut]
    refused: list[RefusedOut]

    @classmethod
    def of(cls, result: SourceResult) -> SourceResponse:
        return cls(
            callbacks=result.callbacks,
            accepted=result.accepted,
            duplicates=result.duplicates,
            ignored=[
                IgnoredOut(index=i.index, status=i.status, reason=i.reason) for i in result.ignored
            ],
            refused=[RefusedOut(index=r.index, reason=r.reason) for r in result.refused],
        )


_PROBLEMS = problem_responses(
    {
        400: "The app id in the path is not 1-64 characters from A-Z a-z 0-9 _ - .",
        401: "The platform's signature (or Braze's bearer token) is missing, malformed, stale or"
        " does not match the body with the secret configured by 'insights sources add'"
        " (docs/sources.md).",
        404: "User Insights takes no callbacks from this platform.",
        413: "The body is larger than the size limit, or holds too many callbacks.",
        422: "The body is not a callback the platform documents.",
    }
)
AppIdPath = Annotated[str, Path(pattern=APP_ID_PATTERN, description="The app (tenant) id.")]


def build_sources_router(sources: SourceService, *, max_body_bytes: int) -> APIRouter:
    router = APIRouter(tags=["ingest"])

    @router.post(
        "/sources/{platform}/{app_id}",
        status_code=202,
        response_model=SourceResponse,
        summary="Take a messaging platform's delivery callbacks as it sends them",
        description="twilio, knock, customerio, braze or sendbird; docs/sources.md says how to"
        " point each at this URL and how its statuses map to ours.",
        responses=_PROBLEMS,
    )
    async def receive_source(
        request: Request, platform: str, app_id: AppIdPath
    ) -> SourceResponse | Response:
        try:
            result = await take_signed(
                request,
                authenticate=lambda: sources.authenticate(
                    platform=platform,
                    app_id=app_id,
                    headers={name.lower(): value for name, value in request.headers.items()},
                    path=request.scope.get("raw_path", request.url.path.encode()).decode("latin-1"),
                    query=request.scope.get("query_string", b"").decode("latin-1"),
                    public_origin=getattr(request.app.state, "public_origin", None),
                ),
                take=sources.take,
                max_body_bytes=max_body_bytes,
            )
        except UnknownPlatform as exc:
            return unread_refusal(request, Problem(404, "Unknown platform", str(exc)))
        except MalformedBody as exc:
            raise Problem(422, "Not a callback of this platform", str(exc)) from exc
        except BatchTooLarge as exc:
            raise Problem(413, "Too many callbacks", str(exc)) from exc
        if isinstance(result, Response):
            return result
        return SourceResponse.of(result)

    return router
