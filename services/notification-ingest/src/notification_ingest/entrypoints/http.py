"""POST /events: the platform's signed webhook. Decode, call the service, encode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field

from insights_common.http.conventions import (
    Problem,
    on_rate_limited,
    problem_response,
    problem_responses,
)
from insights_common.http.rate_limit import RateLimited, client_address, rate_limits
from notification_ingest.domain.errors import BatchTooLarge, MalformedBody, Unauthenticated
from notification_ingest.domain.model import IngestResult
from notification_ingest.service import IngestService

S = TypeVar("S")
R = TypeVar("R")


class FieldErrorOut(BaseModel):
    loc: str
    message: str


class RejectionOut(BaseModel):
    index: int
    event_id: str | None
    errors: list[FieldErrorOut]


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectionOut]
    visible: bool | None = Field(
        default=None,
        description="With `wait=visible`: whether every accepted event could be read through"
        " the query API when this answer was given (false: the wait's bound passed first; the"
        " events are taken all the same). Null without `wait`.",
    )

    @classmethod
    def of(cls, result: IngestResult) -> IngestResponse:
        return cls(
            accepted=result.accepted,
            duplicates=result.duplicates,
            visible=result.visible,
            rejected=[
                RejectionOut(
                    index=rejection.index,
                    event_id=rejection.event_id,
                    errors=[FieldErrorOut(loc=e.loc, message=e.message) for e in rejection.errors],
                )
                for rejection in result.rejected
            ],
        )


_PROBLEMS = problem_responses(
    {
        400: "The body is not JSON, or neither an event object nor an array of them.",
        401: "X-Insights-App or X-Insights-Signature is missing or malformed, the app has no"
        " webhook secret, a timestamped signature is outside the tolerance, the app requires the"
        " timestamped form, or the signature does not match the body with the app's webhook"
        " secret (docs/contract.md, Webhook signatures).",
        413: "The body is larger than the size limit, or the array has more events than allowed.",
    }
)
_EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One event, or an array of events, as docs/contract.md gives them;"
        " an item that is not a valid event (whatever its JSON) is listed in `rejected`, the"
        " others are taken.",
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {}}]}
            }
        },
    }
}


def build_router(
    service: IngestService, *, max_body_bytes: int, visible_wait: float = 10.0
) -> APIRouter:
    router = APIRouter(tags=["ingest"])

    @router.post(
        "/events",
        status_code=202,
        response_model=IngestResponse,
        summary="Take notification, user and template events from the messaging platform",
        responses=_PROBLEMS,
        openapi_extra=_EVENTS_BODY,
    )
    async def receive_events(
        request: Request,
        x_insights_app: Annotated[str | None, Header()] = None,
        x_insights_signature: Annotated[str | None, Header()] = None,
        wait: Annotated[
            Literal["visible"] | None,
            Query(
                description="`visible`: answer once the accepted events can be read through the"
                " query API (bounded by INGEST_VISIBLE_WAIT_SECONDS, 10 s by default; see"
                " `visible` in the answer). For a platform's own tests; production senders"
                " should not wait."
            ),
        ] = None,
    ) -> IngestResponse | Response:
        # Headers first: a caller who cannot be the app is refused before its body is read, and
        # its failures count toward the same per-address limit as unknown API keys.
        try:
            result = await take_signed(
                request,
                authenticate=lambda: service.authenticate_webhook(
                    app_id=x_insights_app, signature=x_insights_signature
                ),
                take=service.take_webhook,
                max_body_bytes=max_body_bytes,
            )
        except MalformedBody as exc:
            raise Problem(400, "Malformed body", str(exc)) from exc
        except BatchTooLarge as exc:
            raise Problem(413, "Too many events", str(exc)) from exc
        if isinstance(result, Response):
            return result
        if wait == "visible":
            result = await service.until_visible(result, limit=visible_wait)
        return IngestResponse.of(result)

    return router


async def take_signed(
    request: Request,
    *,
    authenticate: Callable[[], Awaitable[S]],
    take: Callable[[S, bytes], Awaitable[R]],
    max_body_bytes: int,
) -> R | Response:
    """A signed door: the caller is authenticated from its headers before its body is read.

    An address over its failure limit, or a caller who cannot be who it claims, is refused
    unread (the connection closed); each failed authentication, before the body or by it,
    counts toward the address's limit. The body is read up to `max_body_bytes` and given to
    `take`, whose other errors are the route's to answer.
    """
    limits = rate_limits(request)
    address = client_address(request)
    try:
        limits.check_address(address)
    except RateLimited as exc:
        return unread_refusal(request, await on_rate_limited(request, exc))
    try:
        sender = await authenticate()
    except Unauthenticated as exc:
        limits.failed(address)
        return unread_refusal(request, Problem(401, "Unauthorized", str(exc)))
    body = await read_body(request, limit=max_body_bytes)
    try:
        return await take(sender, body)
    except Unauthenticated as exc:
        limits.failed(address)
        raise Problem(401, "Unauthorized", str(exc)) from exc


def unread_refusal(request: Request, refusal: Problem | Response) -> Response:
    """The refusal answered before the body was read, closing the connection: the server would
    otherwise go on reading the rest of the body, only to discard it."""
    response = (
        problem_response(refusal, request.url.path) if isinstance(refusal, Problem) else refusal
    )
    response.headers["Connection"] = "close"
    return response


async def read_body(request: Request, *, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(f"The body is {int(declared):,} bytes; the limit is {limit:,} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(f"The body is larger than the limit of {limit:,} bytes.")
    return bytes(body)


def _too_large(detail: str) -> Problem:
    return Problem(413, "Body too large", f"{detail} Split the events over several requests.")
