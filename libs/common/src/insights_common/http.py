"""HTTP conventions shared by every service: RFC 9457 problems, bearer auth, cursors, pages."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Generic, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from insights_common.auth import KeyStore
from insights_common.outage import DependencyUnavailable

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
        return problem_response(problem, request.url.path)

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DependencyUnavailable)  # noqa: S101
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
    app.add_exception_handler(DependencyUnavailable, on_unavailable)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


AppAuth = Callable[[Request], Awaitable[str]]


def bearer_auth(keys: KeyStore) -> AppAuth:
    """A FastAPI dependency that answers the caller's app_id, or 401."""

    async def authenticate(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401,
                "Unauthorized",
                "Send an API key as 'Authorization: Bearer <key>'; create one with "
                "'insights keys create --app APP'.",
            )
        info = await keys.resolve_api_key(token.strip())
        if info is None:
            raise Problem(401, "Unauthorized", "The API key is not known.")
        request.state.app_id = info.app_id
        return info.app_id

    return authenticate


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise Problem(400, "Invalid cursor", "The cursor is not one this API gave out.") from exc
    if not isinstance(value, dict):
        raise Problem(400, "Invalid cursor", "The cursor is not one this API gave out.")
    return value


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
