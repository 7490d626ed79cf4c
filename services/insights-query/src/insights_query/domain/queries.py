"""Filters and page positions of the query lists, validated before any store is asked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from insights_contracts.types import CHANNELS
from insights_query.domain.errors import InvalidCursor, InvalidParameter
from insights_query.domain.messages import STATUSES
from insights_query.domain.search import Rank
from insights_query.domain.time import resolve_range, ts_key

T = TypeVar("T")
Position = dict[str, Any]

_TEMPLATE_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    """One page of a list and where the next one starts (None on the last page)."""

    items: list[T]
    next_position: Position | None = None


@dataclass(frozen=True, slots=True)
class MessageFilter:
    status: str | None = None
    channel: str | None = None
    template: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """One of `allowed`; None for an absent or empty value."""
    if not value:
        return None
    if value not in allowed:
        raise InvalidParameter(
            name,
            f"{name} '{value}' is not one of: {', '.join(allowed)}",
            allowed=allowed,
        )
    return value


def parse_message_filter(
    *,
    status: str | None,
    channel: str | None,
    template: str | None,
    since: str | None,
    until: str | None,
) -> MessageFilter:
    """Empty values mean 'any', so a form that sends `status=` lists everything."""
    if template and not _TEMPLATE_KEY.match(template):
        raise InvalidParameter(
            "template",
            f"template '{template}' is not a template key (1-128 letters, digits, '_', '.', '-')",
        )
    start, end = resolve_range(since=since, until=until)
    return MessageFilter(
        status=choice("status", status, STATUSES),
        channel=choice("channel", channel, CHANNELS),
        template=template or None,
        since=start,
        until=end,
    )


def _text(position: Position, key: str) -> str:
    value = position.get(key)
    if not isinstance(value, str):
        raise InvalidCursor()
    return value


def _instant(position: Position, key: str) -> str:
    """The ts_key of an instant in a cursor.

    Re-rendered, not trusted: the stores compare it as text (SQLite) or as microseconds
    (OpenSearch), so a hand-made cursor must mean the same position to both or be refused.
    """
    try:
        moment = datetime.fromisoformat(_text(position, key))
    except ValueError as exc:
        raise InvalidCursor() from exc
    if moment.tzinfo is None:
        raise InvalidCursor()
    try:
        return ts_key(moment)
    except OverflowError as exc:  # an offset that moves it outside the years 1 to 9999 in UTC
        raise InvalidCursor() from exc


@dataclass(frozen=True, slots=True)
class SearchPosition:
    rank: Rank
    user_id: str

    def dump(self) -> Position:
        return {"r": int(self.rank), "u": self.user_id}

    @classmethod
    def load(cls, position: Position) -> SearchPosition:
        rank = position.get("r")
        if type(rank) is not int or rank not in tuple(Rank):
            raise InvalidCursor()
        return cls(rank=Rank(rank), user_id=_text(position, "u"))


@dataclass(frozen=True, slots=True)
class ActivityPosition:
    """Users listed by recent activity: (last_activity_at key, user_id) descending."""

    at: str
    user_id: str

    def dump(self) -> Position:
        return {"a": self.at, "u": self.user_id}

    @classmethod
    def load(cls, position: Position) -> ActivityPosition:
        return cls(at=_instant(position, "a"), user_id=_text(position, "u"))


@dataclass(frozen=True, slots=True)
class MessagePosition:
    """Messages newest first: (sent_at key, message_id) descending; new messages sort before."""

    sent_at: str
    message_id: str

    def dump(self) -> Position:
        return {"s": self.sent_at, "m": self.message_id}

    @classmethod
    def load(cls, position: Position) -> MessagePosition:
        return cls(sent_at=_instant(position, "s"), message_id=_text(position, "m"))


@dataclass(frozen=True, slots=True)
class KeyPosition:
    key: str

    def dump(self) -> Position:
        return {"k": self.key}

    @classmethod
    def load(cls, position: Position) -> KeyPosition:
        return cls(key=_text(position, "k"))
