"""Instants for the tests that run the product on the real clock, relative to today.

A process under test counts its statistics over windows that end today; events dated on fixed
days drift out of those windows as the calendar moves on, and an open `since` on a fixed day
grows past the longest window allowed. Instants built here stay a few days old whatever the date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

T = TypeVar("T")


def utc_today() -> date:
    return datetime.now(UTC).date()


# Five days before the test session started: far enough back for any event of a test, near enough
# for the 30-day default window; fixed for the session, so a run across midnight stays consistent.
BASE_DAY = utc_today() - timedelta(days=5)


def day(offset: int = 0) -> date:
    """The session's base day moved by `offset` days."""
    return BASE_DAY + timedelta(days=offset)


def at(clock: str, offset: int = 0) -> str:
    """An RFC 3339 instant, 'HH:MM:SS' on the base day moved by `offset` days, in UTC."""
    moment = datetime.combine(day(offset), time.fromisoformat(clock), tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def on_one_utc_day(check: Callable[[], T]) -> T:
    """Run `check`; when it fails and the UTC day turned while it ran, run it once more.

    The server counts "today" when it answers and the test when it builds its expectation; a
    check that straddles midnight compares two different windows, so its failure says nothing.
    """
    started = utc_today()
    try:
        return check()
    except Exception:
        if utc_today() == started:
            raise
    return check()
