"""What one ingested batch came to."""

from __future__ import annotations

from dataclasses import dataclass

from insights_common.bus import Written
from insights_contracts import AnyEvent


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in one event: `loc` is a dotted path into it ('' for the event as a whole)."""

    loc: str
    message: str


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    event_id: str | None
    errors: tuple[FieldError, ...]

    def summary(self) -> str:
        """The errors on one line, e.g. for a dead-letter record."""
        return "; ".join(f"{e.loc}: {e.message}" if e.loc else e.message for e in self.errors)


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """The valid events of a batch (first occurrence of each event_id, original order)."""

    events: tuple[AnyEvent, ...]
    duplicates: int
    rejected: tuple[Rejection, ...]


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: tuple[Rejection, ...]
    written: Written = ()
    """Where the accepted events were published, for a caller to wait until they are visible."""
    visible: bool | None = None
    """Whether they could all be read when the answer was given; None: not asked."""


@dataclass(frozen=True, slots=True)
class RecordRejection:
    """An event of a raw-topic batch refused: which record, and the rejection (its `index` is the
    event's position in that record)."""

    record: int
    rejection: Rejection


@dataclass(frozen=True, slots=True)
class PlatformResult:
    accepted: int
    duplicates: int
    rejected: tuple[RecordRejection, ...]
