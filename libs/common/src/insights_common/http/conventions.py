"""HTTP conventions shared by every service: RFC 9457 problems, bearer auth, cursors, pages."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any, Generic, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from insights_common.http.rate_limit import RateLimited
from insights_common.outage import DependencyUnavailable, RefusalLog

PROBLEM_JSON = "application/problem+json"
MAX_LIMIT = 200
DEFAULT_LIMIT = 20

T = TypeVar("T")


class Problem(Exception):  # noqa: N818 - it is the RFC's name
    """An error the caller sees as application/problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)  # noqa: S101 - registered for Problem only
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        errors = [
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['message']}" for e in errors[:5])
        # A malformed parameter makes a bad request; only a body can be well-formed but
        # unprocessable.
        in_body = any(e["loc"][:1] == ["body"] for e in errors)
        problem = Problem(422 if in_body else 400, "Invalid request", where, errors=errors)
        return problem_response(problem, request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        problem = Problem(exc.status_code, _title(exc.status_code), str(exc.detail))
        response = problem_response(problem, request.url.path)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return response

    refusals = RefusalLog()

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DependencyUnavailable)  # noqa: S101
        refusals.refused(exc, f"{request.method} {request.url.path}")
        problem = Problem(
            503,
            "Service unavailable",
            f"{exc}. The request was not taken: send it again after {exc.retry_after} s "
            "(Retry-After).",
            dependency=exc.dependency,
        )
        response = problem_response(problem, request.url.path)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RateLimited, on_rate_limited)
    _document_problems(app)
    app.add_exception_handler(DependencyUnavailable, on_unavailable)


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route answers at the request's path (RFC 9110 15.5.6: a 405 lists them
    all; Starlette's own names only the first route whose path matched)."""
    methods: set[str] = set()
    for route in _every_route(app.router.routes):
        if getattr(route, "methods", None):
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                methods.update(route.methods)
    return sorted(methods)


def _every_route(routes: Iterable[Any]) -> Iterator[Any]:
    """The routes of the app and, in place of a router it included, the routes of that router
    (FastAPI keeps an included router as one entry that matches on its routes' behalf)."""
    for route in routes:
        nested = getattr(route, "effective_route_contexts", None)
        if nested is not None:
            yield from nested()
        else:
            yield route


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status"],
}
UNAUTHORIZED = (
    "No API key or session, or one this deployment does not know (WWW-Authenticate: Bearer)."
)
FORBIDDEN = "The caller's role or key scopes do not allow this; `permission` names what it needs."


def problem_responses(
    described: dict[int | str, str], *, schema: dict[str, Any] = PROBLEM_SCHEMA
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problems a route can answer: status -> when it happens."""
    return {
        status: {"description": text, "content": {PROBLEM_JSON: {"schema": schema}}}
        for status, text in described.items()
    }


_RETRY_AFTER = {
    "Retry-After": {"description": "Whole seconds to wait", "schema": {"type": "integer"}}
}
# What the handlers above may answer on any route, beside what each route declares.
EVERY_ROUTE: dict[int | str, dict[str, Any]] = {
    status: {**answer, "headers": _RETRY_AFTER}
    for status, answer in problem_responses(
        {
            403: FORBIDDEN,
            429: "Too many requests: the API key past its rate, or the address past its failed"
            " authentications.",
            503: "A server the service needs cannot be reached in time, or the process is at its"
            " connection limit; nothing was taken, send it again after Retry-After.",
        }
    ).items()
}


def _document_problems(app: FastAPI) -> None:
    """Take out of the app's OpenAPI the 422 FastAPI adds to every route with parameters (the
    handlers above answer a malformed parameter with a 400 problem, which each route declares
    with `problem_responses`), and give every route the problems of EVERY_ROUTE."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    if _is_fastapi_422(responses.get("422")):
                        del responses["422"]
                    for status, answer in EVERY_ROUTE.items():
                        responses.setdefault(str(status), answer)
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _is_fastapi_422(response: Any) -> bool:
    if not isinstance(response, dict):
        return False
    content = response.get("content", {}).get("application/json", {})
    return bool(content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"))


async def on_rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)  # noqa: S101 - registered for RateLimited only
    problem = Problem(
        429,
        "Too many requests",
        f"{exc.what}; try again in {exc.retry_after} s (Retry-After).",
    )
    response = problem_response(problem, request.url.path)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


AppAuth = Callable[[Request], Awaitable[str]]
"""A dependency answering the app id of an authenticated caller (`http.access.Access`)."""


# The widest integer every store can compare with (SQLite INTEGER, PostgreSQL bigint).
_CURSOR_INT = (-(2**63), 2**63 - 1)


def cursor_problem(
    reason: str = "The cursor is not one this API gave out for this list.",
) -> Problem:
    """The 400 for a cursor that is not a position in the list asked for; it names `cursor`."""
    message = f"{reason} Ask for the first page again (without cursor) and follow its next_cursor."
    return Problem(
        400,
        "Invalid cursor",
        message,
        errors=[{"loc": ["query", "cursor"], "message": message, "type": "cursor"}],
    )


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The position a cursor of `encode_cursor` holds; any other text is a `cursor_problem`."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise cursor_problem() from exc
    if not isinstance(value, dict):
        raise cursor_problem()
    return value


def cursor_text(position: dict[str, Any], key: str) -> str:
    value = position.get(key)
    if not isinstance(value, str):
        raise cursor_problem()
    return value


def cursor_integer(position: dict[str, Any], key: str) -> int:
    """An integer of a position, within what the stores can compare (a hand-made cursor may
    hold any JSON number)."""
    value = position.get(key)
    if type(value) is not int or not _CURSOR_INT[0] <= value <= _CURSOR_INT[1]:
        raise cursor_problem()
    return value


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
