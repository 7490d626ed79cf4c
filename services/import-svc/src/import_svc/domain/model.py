"""The import record, its state machine, its options and what a validation produces."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from insights_common.bus import Written, written_records


class ImportMode(StrEnum):
    UPSERT = "upsert"
    INSERT_ONLY = "insert_only"
    UPDATE_ONLY = "update_only"


class OnError(StrEnum):
    SKIP_ROWS = "skip_rows"
    REJECT_FILE = "reject_file"


class ImportStatus(StrEnum):
    QUEUED = "queued"
    VALIDATING = "validating"
    IMPORTING = "importing"
    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"


UNFINISHED = frozenset({ImportStatus.QUEUED, ImportStatus.VALIDATING, ImportStatus.IMPORTING})

# The progress bar's phases: validating up to VALIDATED, publishing up to PUBLISHED, then the
# users becoming visible to searches (the projection catching up) up to 1.
VALIDATED = 0.6
PUBLISHED = 0.7

# validating -> completed is the path of a dry run: it writes nothing, so it never imports.
TRANSITIONS: dict[ImportStatus, frozenset[ImportStatus]] = {
    ImportStatus.QUEUED: frozenset({ImportStatus.VALIDATING, ImportStatus.FAILED}),
    ImportStatus.VALIDATING: frozenset(
        {
            ImportStatus.IMPORTING,
            ImportStatus.COMPLETED,
            ImportStatus.REJECTED,
            ImportStatus.FAILED,
        }
    ),
    ImportStatus.IMPORTING: frozenset({ImportStatus.COMPLETED, ImportStatus.FAILED}),
    ImportStatus.COMPLETED: frozenset(),
    ImportStatus.REJECTED: frozenset(),
    ImportStatus.FAILED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: ImportStatus, target: ImportStatus) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (it is final)"
        super().__init__(
            f"an import cannot go from {current} to {target}; from {current} it can go to {allowed}"
        )
        self.current = current
        self.target = target


@dataclass(frozen=True, slots=True)
class ImportOptions:
    mode: ImportMode = ImportMode.UPSERT
    on_error: OnError = OnError.SKIP_ROWS
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class FileIssue:
    """A problem (or warning) about the whole file rather than one row."""

    code: str
    message: str
    line: int | None = None


class RowError(NamedTuple):
    line: int
    user_id: str | None
    column: str | None
    code: str
    message: str


class ValidRow(NamedTuple):
    line: int
    user_id: str
    phone: str
    nickname: str | None  # None: the cell was blank, which keeps a known nickname


class KnownUser(NamedTuple):
    user_id: str
    phone: str | None
    nickname: str | None


@dataclass(frozen=True, slots=True)
class Counts:
    total_rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class ImportRecord:
    id: str
    app_id: str
    filename: str
    options: ImportOptions
    created_at: datetime
    status: ImportStatus = ImportStatus.QUEUED
    counts: Counts = field(default_factory=Counts)
    progress: float = 0.0
    finished_at: datetime | None = None
    errors: tuple[FileIssue, ...] = ()
    warnings: tuple[FileIssue, ...] = ()
    published_at: datetime | None = None
    """When its users were published (to Kafka, or into the embedded projection)."""
    visible_at: datetime | None = None
    """When every user it published could be read: `completed` is not said before."""
    written: Written = ()
    """Where its users were published, for the projection's watermark to be checked against."""

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED

    @property
    def published(self) -> bool:
        return self.published_at is not None

    def _check(self, target: ImportStatus) -> ImportStatus:
        if target not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.status, target)
        return target

    def validating(self) -> ImportRecord:
        return replace(self, status=self._check(ImportStatus.VALIDATING), progress=0.0)

    def importing(self, counts: Counts) -> ImportRecord:
        return replace(
            self,
            status=self._check(ImportStatus.IMPORTING),
            counts=counts,
            progress=max(self.progress, VALIDATED),
        )

    def publishing_done(
        self, written: Written, *, at: datetime, warnings: tuple[FileIssue, ...] = ()
    ) -> ImportRecord:
        """Its users are published: what remains is their becoming visible."""
        if self.status is not ImportStatus.IMPORTING:
            raise ValueError(f"an import publishes while importing, not while {self.status}")
        return replace(
            self,
            published_at=at,
            written=written,
            progress=max(self.progress, PUBLISHED),
            warnings=self.warnings + warnings,
        )

    def becoming_visible(self, visible: int) -> ImportRecord:
        """`visible` of the published users can be read so far."""
        total = written_records(self.written)
        share = min(visible / total, 1.0) if total else 1.0
        return replace(
            self, progress=max(self.progress, PUBLISHED + (1.0 - PUBLISHED) * share * 0.999)
        )

    def warned(self, warning: FileIssue) -> ImportRecord:
        """With `warning`, unless one of its code is there already."""
        if any(known.code == warning.code for known in self.warnings):
            return self
        return replace(self, warnings=(*self.warnings, warning))

    def completed(
        self, counts: Counts, *, at: datetime, warnings: tuple[FileIssue, ...] = ()
    ) -> ImportRecord:
        """Done: a dry run once validated, an import once all its users are visible."""
        return replace(
            self,
            status=self._check(ImportStatus.COMPLETED),
            counts=counts,
            progress=1.0,
            finished_at=at,
            visible_at=at if self.published else None,
            warnings=self.warnings + warnings,
        )

    def rejected(
        self,
        errors: tuple[FileIssue, ...],
        counts: Counts,
        *,
        at: datetime,
        warnings: tuple[FileIssue, ...] = (),
    ) -> ImportRecord:
        return replace(
            self,
            status=self._check(ImportStatus.REJECTED),
            counts=counts,
            progress=1.0,
            finished_at=at,
            errors=self.errors + errors,
            warnings=self.warnings + warnings,
        )

    def failed(self, issue: FileIssue, *, at: datetime) -> ImportRecord:
        return replace(
            self,
            status=self._check(ImportStatus.FAILED),
            finished_at=at,
            errors=(*self.errors, issue),
        )

    def with_progress(self, *, total_rows: int, progress: float) -> ImportRecord:
        if self.status is not ImportStatus.VALIDATING:
            raise ValueError(f"progress is reported while validating, not while {self.status}")
        return replace(
            self,
            counts=replace(self.counts, total_rows=total_rows),
            progress=min(max(progress, self.progress), 1.0),
        )


def new_import_id(now: datetime, *, after: str | None = None) -> str:
    """'imp_' + 13 hex digits of epoch milliseconds + 10 random hex digits: sorts by time.

    Given the previous id, the milliseconds move past it, so ids made in the same millisecond
    still sort in the order they were made.
    """
    millis = int(now.timestamp() * 1000)
    if after is not None:
        millis = max(millis, int(after[4:17], 16) + 1)
    return f"imp_{millis:013x}{secrets.token_hex(5)}"


def format_bytes(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


class FileRejected(Exception):
    """A file-level problem: the whole file is refused. `import_id` names the import that
    recorded the refusal, when one did."""

    def __init__(self, issue: FileIssue, *, import_id: str | None = None) -> None:
        super().__init__(issue.message)
        self.issue = issue
        self.import_id = import_id
