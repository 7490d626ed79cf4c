"""The query API: decode the request, call one service function, encode the answer.

Paths are relative; the host mounts this router under /api/v1.

Every mistake in a query parameter is a 400 problem that names the parameter (`errors[].loc`)
and, for a choice, the values allowed (`allowed`): these routes have no body that could be
unprocessable, so FastAPI's 422 for a malformed parameter is answered as 400 too.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from insights_common.access import Permission, Principal
from insights_common.audit import MAX_REASON
from insights_common.http.access import Access
from insights_common.http.conventions import (
    DEFAULT_LIMIT,
    FORBIDDEN,
    MAX_LIMIT,
    PROBLEM_SCHEMA,
    UNAUTHORIZED,
    Page,
    Problem,
    cursor_problem,
    decode_cursor,
    encode_cursor,
    problem_responses,
)
from insights_common.http.recorder import Recorder
from insights_query.domain.errors import InvalidCursor, InvalidParameter, NotFound
from insights_query.domain.export import csv_header, csv_rows
from insights_query.domain.queries import Slice, choice
from insights_query.domain.search import MAX_QUERY_LENGTH
from insights_query.domain.users import without_phone
from insights_query.domain.views import (
    MessageDetail,
    MessageItem,
    TemplateDetail,
    TemplateSummary,
    UserDetail,
    UserSummary,
)
from insights_query.service import QueryService

T = TypeVar("T")

FORMATS = ("json", "csv")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}.")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page.")]
Since = Annotated[
    str | None,
    Query(description="RFC 3339 date-time or YYYY-MM-DD (start of that UTC day); inclusive."),
]
Until = Annotated[
    str | None,
    Query(description="RFC 3339 date-time or YYYY-MM-DD (end of that UTC day); inclusive."),
]

_ECHO = 40
"""Longest bad value repeated back in a problem."""

# What to say instead of pydantic's generic message, for the parameters FastAPI checks itself.
_HINTS = {
    "limit": f"limit must be a whole number from 1 to {MAX_LIMIT}",
    "q": f"q must be at most {MAX_QUERY_LENGTH} characters",
}


def _parameter_problem(
    errors: Sequence[tuple[str, str, str]], *, allowed: Sequence[str] | None = None
) -> Problem:
    """A 400 naming each bad parameter: errors are (parameter, message, type)."""
    problem = Problem(
        400,
        "Invalid request",
        "; ".join(message for _, message, _ in errors),
        errors=[
            {"loc": ["query", name], "message": message, "type": kind}
            for name, message, kind in errors
        ],
    )
    if allowed:
        problem.extra["allowed"] = list(allowed)
    return problem


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        name = loc[-1] if loc else "request"
        hint = _HINTS.get(name, f"{name}: {error.get('msg', 'not valid')}")
        got = error.get("input")
        if isinstance(got, str):
            shown = repr(got) if len(got) <= _ECHO else f"{len(got)} characters"
            message = f"{hint} (got {shown})"
        else:
            message = hint
        errors.append((name, message, str(error.get("type", "value_error"))))
    return _parameter_problem(errors)


class _QueryRoute(APIRoute):
    """Answers a malformed parameter with the same 400 problem the service's own checks give."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise _validation_problem(exc) from exc

        return handle


async def _call(work: Awaitable[T]) -> T:
    try:
        return await work
    except NotFound as exc:
        raise Problem(404, f"{exc.kind.capitalize()} not found", str(exc)) from exc
    except InvalidParameter as exc:
        raise _invalid(exc) from exc
    except InvalidCursor as exc:
        raise cursor_problem(str(exc)) from exc


def _invalid(exc: InvalidParameter) -> Problem:
    return _parameter_problem([(exc.name, exc.message, "value_error")], allowed=exc.allowed)


def _format(value: str) -> str:
    try:
        return choice("format", value, FORMATS) or "json"
    except InvalidParameter as exc:
        raise _invalid(exc) from exc


def _page(result: Slice[T]) -> Page[T]:
    following = encode_cursor(result.next_position) if result.next_position else None
    return Page[T](items=result.items, next_cursor=following)


# A query route's 400 also lists the values a choice allows.
_QUERY_PROBLEM = {
    **PROBLEM_SCHEMA,
    "properties": {
        **PROBLEM_SCHEMA["properties"],
        "allowed": {"type": "array", "items": {"type": "string"}},
    },
}
_BAD_PARAMETER = (
    "A query parameter is not valid: errors[].loc names it, and allowed lists the values of a"
    " choice."
)
_LIST = problem_responses(
    {400: _BAD_PARAMETER, 401: UNAUTHORIZED, 403: FORBIDDEN}, schema=_QUERY_PROBLEM
)
_ONE = problem_responses(
    {401: UNAUTHORIZED, 403: FORBIDDEN, 404: "Nothing with that id in the caller's app."}
)
_USER = problem_responses(
    {
        400: _BAD_PARAMETER,
        401: UNAUTHORIZED,
        403: FORBIDDEN,
        404: "The caller's app has no such user.",
    },
    schema=_QUERY_PROBLEM,
)


class Reveal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=3,
        max_length=MAX_REASON,
        # No control characters but tab and line ends: PostgreSQL keeps no NUL in text, and an
        # entry it refuses would fail the other entries written in the same transaction.
        pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
        description="Why the number is needed (no control characters but tab and line ends); "
        "recorded.",
    )


class RevealedPhone(BaseModel):
    user_id: str
    phone_number: str | None


def create_router(service: QueryService, access: Access, record: Recorder) -> APIRouter:
    router = APIRouter(tags=["insights-query"], route_class=_QueryRoute)

    def caller(permission: Permission) -> Any:
        return Depends(access.require(permission))

    @router.get("/users", response_model=Page[UserSummary], responses=_LIST)
    async def search_users(
        who: Annotated[Principal, caller(Permission.SEARCH_USERS)],
        q: Annotated[
            str | None,
            Query(
                max_length=MAX_QUERY_LENGTH,
                description=(
                    "User ID (exact, ignoring case, then prefixes), nickname word prefixes"
                    " (ignoring case and accents) or a whole phone number (E.164 or its digits);"
                    " blank lists users by recent activity."
                ),
            ),
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[UserSummary]:
        after = decode_cursor(cursor)
        found = await _call(service.search_users(who.app_id, q=q, limit=limit, after=after))
        if not who.may(Permission.SEE_PHONES):
            found = Slice([without_phone(user) for user in found.items], found.next_position)
        return _page(found)

    @router.get("/users/{user_id}", response_model=UserDetail, responses=_USER)
    async def get_user(
        who: Annotated[Principal, caller(Permission.VIEW_PROFILE)],
        request: Request,
        user_id: str,
        since: Since = None,
        until: Until = None,
    ) -> UserDetail:
        detail = await record.during(
            _call(service.get_user(who.app_id, user_id, since=since, until=until)),
            request,
            "user.view",
            user_id=user_id,
        )
        return detail if who.may(Permission.SEE_PHONES) else without_phone(detail)

    @router.post(
        "/users/{user_id}/phone",
        response_model=RevealedPhone,
        responses=problem_responses(
            {
                400: "The body has no reason of 3 to 500 characters (errors[] says why).",
                401: UNAUTHORIZED,
                403: FORBIDDEN,
                404: "The caller's app has no such user.",
            }
        ),
    )
    async def reveal_phone(
        who: Annotated[Principal, caller(Permission.REVEAL_PHONE)],
        request: Request,
        user_id: str,
        body: Reveal,
    ) -> RevealedPhone:
        """The user's whole phone number; the reason is recorded in the audit trail."""
        phone = await record.during(
            _call(service.reveal_phone(who.app_id, user_id)),
            request,
            "user.reveal_phone",
            user_id=user_id,
            reason=body.reason.strip(),
        )
        return RevealedPhone(user_id=user_id, phone_number=phone)

    @router.get(
        "/users/{user_id}/messages",
        response_model=Page[MessageItem],
        responses={200: {"content": {"text/csv": {}}}, **_USER},
    )
    async def list_messages(
        who: Annotated[Principal, caller(Permission.VIEW_MESSAGES)],
        request: Request,
        user_id: str,
        status: Annotated[
            str | None, Query(description="sent, delivered, read, clicked or failed")
        ] = None,
        channel: Annotated[
            str | None, Query(description="in_app, push, sms, alimtalk, whatsapp or email")
        ] = None,
        template: Annotated[str | None, Query(description="Template key.")] = None,
        since: Since = None,
        until: Until = None,
        format: Annotated[
            str, Query(description="json (default) or csv: csv exports the whole filtered list.")
        ] = "json",
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[MessageItem] | StreamingResponse:
        filters = {
            "status": status,
            "channel": channel,
            "template": template,
            "since": since,
            "until": until,
        }
        app_id = who.app_id
        if _format(format) == "csv":
            pages = await record.during(
                _call(service.export_messages(app_id, user_id, **filters)),
                request,
                "user.export",
                user_id=user_id,
            )

            async def body() -> AsyncIterator[str]:
                yield csv_header()
                async for page in pages:
                    yield csv_rows(page)

            return StreamingResponse(
                body(),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="messages-{user_id}.csv"'},
            )
        after = decode_cursor(cursor)
        page = await record.during(
            _call(service.list_messages(app_id, user_id, **filters, limit=limit, after=after)),
            request,
            "user.messages",
            user_id=user_id,
        )
        return _page(page)

    @router.get("/messages/{message_id}", response_model=MessageDetail, responses=_ONE)
    async def get_message(
        who: Annotated[Principal, caller(Permission.VIEW_MESSAGES)],
        request: Request,
        message_id: str,
    ) -> MessageDetail:
        detail = await _call(service.get_message(who.app_id, message_id))
        await record.read(request, "message.view", user_id=detail.user_id, detail=message_id)
        return detail

    @router.get(
        "/users/{user_id}/messages/{message_id}",
        response_model=MessageDetail,
        responses=problem_responses(
            {
                401: UNAUTHORIZED,
                403: FORBIDDEN,
                404: "The caller's app has no such message, or it is another user's.",
            }
        ),
    )
    async def get_user_message(
        who: Annotated[Principal, caller(Permission.VIEW_MESSAGES)],
        request: Request,
        user_id: str,
        message_id: str,
    ) -> MessageDetail:
        """One of the user's messages, as `GET /messages/{message_id}` answers it. Naming the
        user lets the audit entry be written while the message is read (the dashboard's way)."""
        return await record.during(
            _call(service.get_user_message(who.app_id, user_id, message_id)),
            request,
            "message.view",
            user_id=user_id,
            detail=message_id,
        )

    Templates = Annotated[str, Depends(access.app_id(Permission.VIEW_TEMPLATES))]

    @router.get("/templates", response_model=Page[TemplateSummary], responses=_LIST)
    async def list_templates(
        app_id: Templates, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> Page[TemplateSummary]:
        after = decode_cursor(cursor)
        return _page(await _call(service.list_templates(app_id, limit=limit, after=after)))

    @router.get("/templates/{key}", response_model=TemplateDetail, responses=_ONE)
    async def get_template(app_id: Templates, key: str) -> TemplateDetail:
        return await _call(service.get_template(app_id, key))

    return router
