"""Instants, their sortable storage form, and the since/until windows of the query API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from insights_common import clock
from insights_query.domain.errors import InvalidParameter

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# An unencoded '+' in a query string arrives as a space: "10:00:00 09:00" meant "10:00:00+09:00".
_SPACE_FOR_PLUS = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$")


# Batches repeat instants (every user of an import has its moment): formatting dominated
# projecting an import's users before this cache.
@lru_cache(maxsize=4096)
def ts_key(moment: datetime) -> str:
    """Fixed-width UTC text ('2026-11-02T10:00:00.000000Z') whose lexical order is time order."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_ts_key(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """The API's instants: as precise as they were given."""
    return clock.rfc3339(moment, precision="auto")


def parse_bound(name: str, value: str, *, end_of_day: bool) -> datetime:
    """An RFC 3339 date-time, or a YYYY-MM-DD date meaning the start (or end) of that UTC day."""
    text = value.strip()
    example = "2026-11-02T10:00:00Z or a date like 2026-11-02"
    if _DATE_ONLY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise InvalidParameter(
                name, f"{name} '{value}' is not a real date; use {example}"
            ) from exc
        return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
    text = _SPACE_FOR_PLUS.sub(r"\1+\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidParameter(
            name, f"{name} '{value}' is not an RFC 3339 date-time; use {example}"
        ) from exc
    if moment.tzinfo is None:
        raise InvalidParameter(
            name, f"{name} '{value}' has no time zone; add 'Z' or an offset, e.g. {example}"
        )
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidParameter(
            name, f"{name} '{value}' is outside the years 1 to 9999 in UTC; use {example}"
        ) from exc


@dataclass(frozen=True, slots=True)
class Window:
    """An inclusive range of instants; statistics count the messages sent inside it."""

    since: datetime
    until: datetime

    def days(self) -> list[date]:
        first, last = self.since.date(), self.until.date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def resolve_window(
    *,
    since: str | None,
    until: str | None,
    now: datetime,
    default_days: int,
    max_days: int,
) -> Window:
    """The window of the user statistics: by default the `default_days` UTC days up to today.

    An open end is the end of today (UTC), not this instant, so the same question asked twice
    today gets the same answer, and the last daily row is a whole day like the others.
    """
    today = now.astimezone(UTC).date()
    if until:
        end = parse_bound("until", until, end_of_day=True)
    else:
        end = datetime.combine(today, time.max, tzinfo=UTC)
    if since:
        start = parse_bound("since", since, end_of_day=False)
    elif end.date() - date.min >= timedelta(days=default_days - 1):
        first_day = end.date() - timedelta(days=default_days - 1)
        start = datetime.combine(first_day, time.min, tzinfo=UTC)
    else:
        start = datetime.min.replace(tzinfo=UTC)
    if start > end:
        raise InvalidParameter(
            "since", f"since ({rfc3339(start)}) is after until ({rfc3339(end)}); swap them"
        )
    if end - start > timedelta(days=max_days):
        raise InvalidParameter(
            "until",
            f"since ({rfc3339(start)}) and until ({rfc3339(end)}) are more than {max_days} days"
            f" apart; ask for at most {max_days} days at a time",
        )
    return Window(since=start, until=end)


def resolve_range(
    *, since: str | None, until: str | None
) -> tuple[datetime | None, datetime | None]:
    """Optional bounds of a list filter; either side may be open."""
    start = parse_bound("since", since, end_of_day=False) if since else None
    end = parse_bound("until", until, end_of_day=True) if until else None
    if start is not None and end is not None and start > end:
        raise InvalidParameter(
            "since", f"since ({rfc3339(start)}) is after until ({rfc3339(end)}); swap them"
        )
    return start, end
