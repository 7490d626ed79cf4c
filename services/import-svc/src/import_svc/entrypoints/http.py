"""HTTP doors of the import: decode the request, call the service, encode the answer.

No `from __future__ import annotations` here: FastAPI must see the route annotations, which use
aliases local to `build_router`, as objects.
"""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from import_svc.domain.model import (
    FileIssue,
    FileRejected,
    ImportMode,
    ImportOptions,
    ImportRecord,
    ImportStatus,
    OnError,
    RowError,
    format_bytes,
)
from import_svc.entrypoints.multipart import FilePart, MultipartError, multipart_boundary
from import_svc.issues import TooManyRunning, over_budget
from import_svc.service import ImportService
from insights_common.http.conventions import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    UNAUTHORIZED,
    AppAuth,
    Page,
    Problem,
    cursor_integer,
    cursor_text,
    decode_cursor,
    encode_cursor,
    problem_response,
    problem_responses,
)
from insights_common.http.recorder import Recorder
from insights_common.spreadsheet import csv_lines

FILE_FIELD = "file"
# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
REPORT_COLUMNS = ("line", "user_id", "column", "code", "message")
BUSY_RETRY_AFTER = 10  # seconds; most imports finish in a few

_STATUS_BY_CODE = {
    "too_large": 413,
    "too_many_rows": 413,
    "not_csv": 415,
    "not_utf8": 415,
    "time_budget_exceeded": 408,
}
_TITLE_BY_CODE = {
    "too_large": "File too large",
    "too_many_rows": "Too many rows",
    "no_data_rows": "No data rows",
    "not_csv": "Not a CSV file",
    "not_utf8": "Not UTF-8 text",
    "empty_file": "Empty file",
    "missing_columns": "Missing required columns",
    "duplicate_columns": "Duplicate columns",
    "malformed_header": "Malformed header",
    "unclosed_quote": "Malformed header",
    "record_too_long": "Row too long",
    "too_many_blank_lines": "Too many blank lines",
    "time_budget_exceeded": "Import took too long",
}


class IssueOut(BaseModel):
    code: str
    message: str
    line: int | None = None


class ImportOut(BaseModel):
    id: str
    filename: str
    status: ImportStatus
    mode: ImportMode
    on_error: OnError
    dry_run: bool
    total_rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    progress: float
    created_at: datetime
    published_at: datetime | None = Field(
        description="When its users were published; null before, and for dry runs and"
        " rejected files."
    )
    visible_at: datetime | None = Field(
        description="When every user it published could be found through this API; an import"
        " is `completed` only then."
    )
    finished_at: datetime | None
    errors: list[IssueOut]
    warnings: list[IssueOut]

    @classmethod
    def of(cls, record: ImportRecord) -> "ImportOut":
        counts = record.counts
        return cls(
            id=record.id,
            filename=record.filename,
            status=record.status,
            mode=record.options.mode,
            on_error=record.options.on_error,
            dry_run=record.options.dry_run,
            total_rows=counts.total_rows,
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            rejected=counts.rejected,
            progress=round(record.progress, 4),
            created_at=record.created_at,
            published_at=record.published_at,
            visible_at=record.visible_at,
            finished_at=record.finished_at,
            errors=[_issue(i) for i in record.errors],
            warnings=[_issue(i) for i in record.warnings],
        )


class RowErrorOut(BaseModel):
    line: int
    user_id: str | None
    column: str | None
    code: str
    message: str


def _issue(issue: FileIssue) -> IssueOut:
    return IssueOut(code=issue.code, message=issue.message, line=issue.line)


def _row_error(error: RowError) -> RowErrorOut:
    return RowErrorOut(
        line=error.line,
        user_id=error.user_id,
        column=error.column,
        code=error.code,
        message=error.message,
    )


def _refused(issue: FileIssue, import_id: str | None = None) -> Problem:
    status = _STATUS_BY_CODE.get(issue.code, 422)
    title = _TITLE_BY_CODE.get(issue.code, "Unusable CSV file")
    extra = {"import_id": import_id} if import_id else {}
    return Problem(status, title, issue.message, code=issue.code, line=issue.line, **extra)


def _busy(exc: TooManyRunning, instance: str) -> JSONResponse:
    problem = Problem(
        429,
        "Too many imports running",
        f"The {exc}. This import was not started and its file was not read: send it again after "
        f"{BUSY_RETRY_AFTER} s (Retry-After), or once an import of GET /api/v1/imports has "
        "finished.",
        code="too_many_imports",
        limit=exc.limit,
    )
    answer = problem_response(problem, instance)
    answer.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
    return answer


async def _found(part: FilePart, budget: timedelta) -> bool:
    """Whether the form has the file part, found within the import's time budget."""
    try:
        async with asyncio.timeout(budget.total_seconds()):
            return await part.find()
    except TimeoutError:
        raise _refused(over_budget(budget)) from None


def _not_found(import_id: str) -> Problem:
    return Problem(404, "Import not found", f"This app has no import '{import_id}'.")


_BAD_PARAMETER = "A query parameter is not valid (limit, cursor, a choice); errors[].loc names it."
_NO_IMPORT = "The caller's app has no import with that id."
LIST_PROBLEMS = problem_responses({400: _BAD_PARAMETER, 401: UNAUTHORIZED})
IMPORT_PROBLEMS = problem_responses({401: UNAUTHORIZED, 404: _NO_IMPORT})
ERRORS_PROBLEMS = problem_responses({400: _BAD_PARAMETER, 401: UNAUTHORIZED, 404: _NO_IMPORT})
UPLOAD_PROBLEMS = problem_responses(
    {
        400: f"{_BAD_PARAMETER} Or the upload is not multipart/form-data with a"
        f" '{FILE_FIELD}' part.",
        401: UNAUTHORIZED,
        408: "The upload and its validation took longer than the import's time budget.",
        413: "The file is larger than the size limit or has more rows than the row limit.",
        415: "The file is not CSV, or not UTF-8 text.",
        422: "The CSV cannot be imported: empty, only a header, required columns missing, a row "
        "longer than the row size limit, or more blank lines than allowed.",
    }
)


def _quality(accept: str, wanted: str) -> float:
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        if media.strip().lower() != wanted:
            continue
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    return float(value)
                except ValueError:
                    return 0.0
        return 1.0
    return 0.0


def wants_csv(accept: str) -> bool:
    csv_quality = _quality(accept, "text/csv")
    return csv_quality > 0 and csv_quality >= _quality(accept, "application/json")


async def _csv_report(pages: AsyncGenerator[list[RowError], None]) -> AsyncIterator[bytes]:
    yield csv_lines([REPORT_COLUMNS]).encode()
    async with aclosing(pages):
        async for page in pages:
            yield csv_lines(
                [str(e.line), e.user_id or "", e.column or "", e.code, e.message] for e in page
            ).encode()


def build_router(service: ImportService, auth: AppAuth, record: Recorder) -> APIRouter:
    """The import routes, without the /api/v1 prefix the host mounts them under; `auth` is the
    caller's permission to import, and each import started is recorded in the audit trail."""
    router = APIRouter(tags=["imports"])
    AppId = Annotated[str, Depends(auth)]
    Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]

    @router.post(
        "/imports",
        status_code=202,
        response_model=ImportOut,
        name="create_import",
        responses=UPLOAD_PROBLEMS,
    )
    async def create_import(
        request: Request,
        response: Response,
        app_id: AppId,
        mode: ImportMode = ImportMode.UPSERT,
        on_error: OnError = OnError.SKIP_ROWS,
        dry_run: bool = False,
    ) -> Any:
        limit = service.max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
            raise _refused(
                FileIssue(
                    "too_large",
                    f"The upload is {int(declared):,} bytes; files may be at most "
                    f"{format_bytes(limit)} ({limit:,} bytes). Split it into smaller files and "
                    "import each one.",
                )
            )
        try:
            boundary = multipart_boundary(request.headers.get("content-type"))
            part = FilePart(request.stream(), boundary, FILE_FIELD, max_before=MULTIPART_OVERHEAD)
            if not await _found(part, service.time_budget):
                seen = ", ".join(f"'{name}'" for name in part.fields_seen) or "none"
                raise Problem(
                    400,
                    "No file",
                    f"The form has no part named '{FILE_FIELD}' (parts found: {seen}). Send the "
                    f"CSV as multipart/form-data in a field named '{FILE_FIELD}'.",
                )
            job = await service.submit(
                app_id=app_id,
                filename=part.filename,
                chunks=part,
                options=ImportOptions(mode=mode, on_error=on_error, dry_run=dry_run),
                size_hint=int(declared) if declared.isdigit() else None,
            )
        except MultipartError as exc:
            raise Problem(400, "Unreadable upload", f"The upload cannot be read: {exc}.") from None
        except ClientDisconnect:
            # Nobody is left to read the answer; a problem keeps it out of the error log.
            raise Problem(400, "Upload interrupted", "The client went away mid-upload.") from None
        except FileRejected as exc:
            raise _refused(exc.issue, exc.import_id) from None
        except TooManyRunning as exc:
            return _busy(exc, request.url.path)
        await record(request, "import.start", detail=f"{job.id} ({part.filename or 'no name'})")
        response.headers["Location"] = str(request.url_for("get_import", import_id=job.id))
        return ImportOut.of(job)

    @router.get(
        "/imports", response_model=Page[ImportOut], name="list_imports", responses=LIST_PROBLEMS
    )
    async def list_imports(
        app_id: AppId, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[ImportOut]:
        position = decode_cursor(cursor)
        before = cursor_text(position, "before") if position else None
        records, next_before = await service.history(app_id, before_id=before, limit=limit)
        return Page[ImportOut](
            items=[ImportOut.of(r) for r in records],
            next_cursor=encode_cursor({"before": next_before}) if next_before else None,
        )

    @router.get(
        "/imports/{import_id}",
        response_model=ImportOut,
        name="get_import",
        responses=IMPORT_PROBLEMS,
    )
    async def get_import(import_id: str, app_id: AppId) -> ImportOut:
        found = await service.get(app_id, import_id)
        if found is None:
            raise _not_found(import_id)
        return ImportOut.of(found)

    @router.get(
        "/imports/{import_id}/errors",
        response_model=Page[RowErrorOut],
        name="import_errors",
        responses={200: {"content": {"text/csv": {}}}, **ERRORS_PROBLEMS},
    )
    async def import_errors(
        request: Request,
        import_id: str,
        app_id: AppId,
        limit: Limit = DEFAULT_LIMIT,
        cursor: str | None = None,
        format: Literal["json", "csv"] | None = None,
    ) -> Any:
        if format == "csv" or (format is None and wants_csv(request.headers.get("accept", ""))):
            pages = await service.error_report(app_id, import_id)
            if pages is None:
                raise _not_found(import_id)
            return StreamingResponse(
                _csv_report(pages),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{import_id}-errors.csv"'},
            )
        position = decode_cursor(cursor)
        after = cursor_integer(position, "after") if position else 0
        result = await service.row_errors(app_id, import_id, after=after, limit=limit)
        if result is None:
            raise _not_found(import_id)
        errors, next_after = result
        return Page[RowErrorOut](
            items=[_row_error(e) for e in errors],
            next_cursor=encode_cursor({"after": next_after}) if next_after else None,
        )

    return router
