"""Which messages an app's retention removes: the pure rule both stores apply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from insights_common.retention import check_days


def cutoff(now: datetime, days: int) -> datetime:
    """Messages sent before this instant are removed: sent more than `days` days before `now`.

    A message sent exactly `days` days ago is kept (the comparison is strict).
    """
    return now - timedelta(days=check_days(days))


@dataclass(frozen=True, slots=True)
class RemovedChunk:
    """What one bounded step of a pass removed."""

    messages: int
    users: int
    """Users whose messages were removed, and whose activity was computed again."""
    resume: str | None
    """Where the next chunk starts (the store's own position); None when none is left."""


@dataclass(frozen=True, slots=True)
class PassResult:
    app_id: str
    days: int
    before: datetime
    messages: int
    users: int
    chunks: int
    seconds: float
