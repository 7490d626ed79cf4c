"""The query API: decode the request, call one service function, encode the answer.

Paths are relative; the host mounts this router under /api/v1.
"""

from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from insights_common.http import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    AppAuth,
    Page,
    Problem,
    decode_cursor,
    encode_cursor,
)
from insights_query.domain.errors import InvalidCursor, InvalidParameter, NotFound
from insights_query.domain.export import csv_header, csv_rows
from insights_query.domain.queries import Slice
from insights_query.domain.search import MAX_QUERY_LENGTH
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

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (max 200).")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page.")]
Since = Annotated[
    str | None, Query(description="RFC 3339 date-time or YYYY-MM-DD (start of that UTC day).")
]
Until = Annotated[
    str | None, Query(description="RFC 3339 date-time or YYYY-MM-DD (end of that UTC day).")
]


async def _call(work: Awaitable[T]) -> T:
    try:
        return await work
    except NotFound as exc:
        raise Problem(404, f"{exc.kind.capitalize()} not found", str(exc)) from exc
    except InvalidParameter as exc:
        error = {"loc": ["query", exc.name], "message": exc.message, "type": "value_error"}
        problem = Problem(422, "Invalid request", exc.message, errors=[error])
        if exc.allowed:
            problem.extra["allowed"] = list(exc.allowed)
        raise problem from exc
    except InvalidCursor as exc:
        raise Problem(400, "Invalid cursor", str(exc)) from exc


def _page(result: Slice[T]) -> Page[T]:
    following = encode_cursor(result.next_position) if result.next_position else None
    return Page[T](items=result.items, next_cursor=following)


def create_router(service: QueryService, auth: AppAuth) -> APIRouter:
    router = APIRouter(tags=["insights-query"])

    @router.get("/users", response_model=Page[UserSummary])
    async def search_users(
        app_id: Annotated[str, Depends(auth)],
        q: Annotated[
            str | None,
            Query(
                max_length=MAX_QUERY_LENGTH,
                description="User ID, nickname or phone number; blank lists recent users.",
            ),
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[UserSummary]:
        after = decode_cursor(cursor)
        return _page(await _call(service.search_users(app_id, q=q, limit=limit, after=after)))

    @router.get("/users/{user_id}", response_model=UserDetail)
    async def get_user(
        app_id: Annotated[str, Depends(auth)],
        user_id: str,
        since: Since = None,
        until: Until = None,
    ) -> UserDetail:
        return await _call(service.get_user(app_id, user_id, since=since, until=until))

    @router.get(
        "/users/{user_id}/messages",
        response_model=Page[MessageItem],
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def list_messages(
        app_id: Annotated[str, Depends(auth)],
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
            Literal["json", "csv"], Query(description="csv exports the whole filtered list.")
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
        if format == "csv":
            pages = await _call(service.export_messages(app_id, user_id, **filters))

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
        return _page(
            await _call(service.list_messages(app_id, user_id, **filters, limit=limit, after=after))
        )

    @router.get("/messages/{message_id}", response_model=MessageDetail)
    async def get_message(app_id: Annotated[str, Depends(auth)], message_id: str) -> MessageDetail:
        return await _call(service.get_message(app_id, message_id))

    @router.get("/templates", response_model=Page[TemplateSummary])
    async def list_templates(
        app_id: Annotated[str, Depends(auth)], limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> Page[TemplateSummary]:
        after = decode_cursor(cursor)
        return _page(await _call(service.list_templates(app_id, limit=limit, after=after)))

    @router.get("/templates/{key}", response_model=TemplateDetail)
    async def get_template(app_id: Annotated[str, Depends(auth)], key: str) -> TemplateDetail:
        return await _call(service.get_template(app_id, key))

    return router
