"""The one clock, the one RFC 3339 formatter and the one stored form of instants.

Code that needs "now" takes a `clock` argument defaulting to `utc_now`, so tests can give it
another; instants leave the process as RFC 3339 in UTC with a `Z`, and are kept in SQLite as
`sortable` text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Precision = Literal["auto", "seconds", "milliseconds", "microseconds"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime, *, precision: Precision = "milliseconds") -> str:
    """`2026-11-02T10:00:00.000Z`; `precision="auto"` keeps what the instant has (no fraction
    when it has none, microseconds otherwise)."""
    return moment.astimezone(UTC).isoformat(timespec=precision).replace("+00:00", "Z")


def sortable(moment: datetime) -> str:
    """Fixed-width UTC text (`2026-11-02T10:00:00.000000+00:00`) whose text order is time order,
    as SQLite tables keep instants; `datetime.fromisoformat` reads it back."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")  # half strftime's time
