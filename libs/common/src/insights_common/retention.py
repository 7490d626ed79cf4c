"""How long each app keeps its messages: the setting, and who may run a pass at a time.

An app without a setting keeps every message. The setting lives where the app's members and
keys live (the data dir's SQLite file, or PostgreSQL in the distributed mode), so the CLI and
every process read the same value. The pass itself belongs to the query service, which owns the
stores it removes from (`insights_query.retention`).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

MIN_DAYS = 1
MAX_DAYS = 36_500
"""A hundred years: longer is as good as keeping everything, and keeps the cut-off in range."""


class InvalidRetention(ValueError):
    """A number of days the setting cannot take; the message says what it takes."""


def check_days(days: int) -> int:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise InvalidRetention(
            f"days must be a whole number from {MIN_DAYS} to {MAX_DAYS} (got {days}); "
            "to keep every message, turn retention off instead"
        )
    return days


@dataclass(frozen=True, slots=True)
class Retention:
    app_id: str
    days: int
    updated_at: datetime


class RetentionSettings(Protocol):
    async def get(self, app_id: str) -> Retention | None:
        """The app's setting; None keeps every message."""
        ...

    async def set(self, app_id: str, days: int | None, *, now: datetime) -> None:
        """Keep the app's messages `days` days; None turns retention off."""
        ...

    async def every(self) -> list[Retention]:
        """Every app with a setting, by app id."""
        ...

    def exclusive(self) -> AbstractAsyncContextManager[bool]:
        """While held (True), no other process runs a retention pass; False when another does."""
        ...
