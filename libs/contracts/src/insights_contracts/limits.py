"""The values an event may carry because every store can keep them; the rule lives here once.

What the stores hold (services/insights-query: the SQLite schema and the OpenSearch mappings):

- template versions are `integer` in OpenSearch (messages.template_version, templates.version):
  signed 32 bits, so 1 to 2,147,483,647;
- any other integer (template variables, response values) is kept as JSON and read back by
  SQLite and orjson, which take signed 64 bits at most;
- instants become UTC microseconds in OpenSearch `long` fields, which aggregations answer as
  doubles, exact only within 2^53 microseconds of 1970 (until the year 2255); the SQLite store
  and the query windows (ts_key, day arithmetic) overflow near the years 1 and 9999. An event
  must have happened from 1970-01-01T00:00:00Z and before 2200-01-01T00:00:00Z, in UTC.

- an event id is kept in PostgreSQL `text` (the distributed mode's dedup), which cannot hold
  the NUL character (U+0000).

An event outside these bounds is refused where it is validated, so no door answers `accepted`
for an event a projection would then dead-letter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, JsonValue
from pydantic_core import PydanticCustomError

VERSION_MAX = 2**31 - 1
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # excluded

OUT_OF_RANGE = "value_out_of_store_range"
"""The error type of a value no store can keep; its context names the `path` inside the field."""


def _storable_instant(moment: datetime) -> datetime:
    # Compared as instants: converting year 1 or 9999 with an offset to UTC would overflow.
    if not EARLIEST <= moment < LATEST:
        raise PydanticCustomError(
            OUT_OF_RANGE,
            "{shown} is outside the instants kept, {earliest} up to (not including) {latest}; "
            "send the moment the event happened, in RFC 3339 with a time zone",
            {
                "shown": moment.isoformat(),
                "earliest": _z(EARLIEST),
                "latest": _z(LATEST),
                "path": "",
            },
        )
    return moment


def _storable_text(text: str) -> str:
    if "\x00" in text:
        raise PydanticCustomError(
            OUT_OF_RANGE,
            "The text holds a NUL character (\\u0000), which PostgreSQL text cannot keep; "
            "leave it out",
            {"path": ""},
        )
    return text


def _storable_json(value: JsonValue) -> JsonValue:
    path = _first_wide_integer(value)
    if path is not None:
        where, number = path
        raise PydanticCustomError(
            OUT_OF_RANGE,
            "{number} is outside the integers kept ({low} to {high}); send it as a string",
            {"number": _short(number), "low": str(INT_MIN), "high": str(INT_MAX), "path": where},
        )
    return value


def _first_wide_integer(value: JsonValue) -> tuple[str, int] | None:
    """The dotted path of the first integer beyond signed 64 bits, and that integer."""
    stack: list[tuple[str, JsonValue]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                return where, item
        elif isinstance(item, dict):
            stack.extend((_join(where, key), child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(
                (_join(where, str(i)), child) for i, child in reversed(list(enumerate(item)))
            )
    return None


def _short(number: int) -> str:
    text = str(number)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text.lstrip('-'))} digits)"


def _join(where: str, part: str) -> str:
    return f"{where}.{part}" if where else part


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


Instant = Annotated[AwareDatetime, AfterValidator(_storable_instant)]
"""An aware date-time the stores and the query windows can keep and compute with."""

StoredText = AfterValidator(_storable_text)
"""For strings PostgreSQL keeps: no NUL."""

Version = Annotated[int, Field(ge=1, le=VERSION_MAX)]
"""A template version: OpenSearch maps it as a 32-bit integer."""

StoredJson = Annotated[JsonValue, AfterValidator(_storable_json)]
"""Free JSON whose integers fit signed 64 bits."""
