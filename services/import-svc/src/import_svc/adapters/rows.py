"""How an import is laid out in a table row, the same for SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from import_svc.domain.model import (
    UNFINISHED,
    Counts,
    FileIssue,
    ImportMode,
    ImportOptions,
    ImportRecord,
    ImportStatus,
    OnError,
)
from insights_common.bus import Span, Written

# The WHERE condition of unfinished imports, the same text in both stores.
UNFINISHED_SQL = "status IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(UNFINISHED)))


class Row(Protocol):
    """A database row read by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, column: str, /) -> Any: ...


def issues_to_json(issues: Sequence[FileIssue]) -> str:
    return json.dumps(
        [{"code": i.code, "message": i.message, "line": i.line} for i in issues],
        ensure_ascii=False,
    )


def issues_from_json(text: str) -> tuple[FileIssue, ...]:
    return tuple(FileIssue(i["code"], i["message"], i.get("line")) for i in json.loads(text))


def written_to_json(written: Written) -> str:
    return json.dumps([[s.topic, s.partition, s.first, s.last, s.records] for s in written])


def written_from_json(text: str | None) -> Written:
    return tuple(Span(*span) for span in json.loads(text or "[]"))


def import_record(row: Row, *, to_time: Callable[[Any], datetime]) -> ImportRecord:
    """The record of a row of imp_imports; `to_time` reads the store's timestamps."""
    return ImportRecord(
        id=row["import_id"],
        app_id=row["app_id"],
        filename=row["filename"],
        options=ImportOptions(
            mode=ImportMode(row["mode"]),
            on_error=OnError(row["on_error"]),
            dry_run=bool(row["dry_run"]),
        ),
        created_at=to_time(row["created_at"]),
        status=ImportStatus(row["status"]),
        counts=Counts(
            total_rows=row["total_rows"],
            created=row["created"],
            updated=row["updated"],
            unchanged=row["unchanged"],
            rejected=row["rejected"],
        ),
        progress=row["progress"],
        finished_at=to_time(row["finished_at"]) if row["finished_at"] is not None else None,
        errors=issues_from_json(row["errors"]),
        warnings=issues_from_json(row["warnings"]),
        published_at=_time_or_none(row["published_at"], to_time),
        visible_at=_time_or_none(row["visible_at"], to_time),
        written=written_from_json(row["written"]),
    )


def _time_or_none(value: Any, to_time: Callable[[Any], datetime]) -> datetime | None:
    return to_time(value) if value is not None else None


def update_params(record: ImportRecord, *, from_time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The parameters of the UPDATE of a running or finished import, in the stores' order."""
    counts = record.counts
    return (
        record.status.value,
        counts.total_rows,
        counts.created,
        counts.updated,
        counts.unchanged,
        counts.rejected,
        record.progress,
        from_time(record.finished_at) if record.finished_at is not None else None,
        issues_to_json(record.errors),
        issues_to_json(record.warnings),
        from_time(record.published_at) if record.published_at is not None else None,
        from_time(record.visible_at) if record.visible_at is not None else None,
        written_to_json(record.written),
        record.app_id,
        record.id,
    )
