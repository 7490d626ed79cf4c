"""User statistics from aggregated counts: rates, breakdowns and the daily series."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime

from insights_query.domain.time import Window
from insights_query.domain.views import (
    ChannelStats,
    DailyStats,
    TemplateStats,
    UserStats,
    WindowView,
)

RATE_DIGITS = 4


@dataclass(frozen=True, slots=True)
class Counts:
    """Messages sent, and how many reached each stage (read implies delivered, and so on)."""

    sent: int = 0
    delivered: int = 0
    read: int = 0
    clicked: int = 0
    failed: int = 0
    responded: int = 0


@dataclass(frozen=True, slots=True)
class DayCounts:
    sent: int = 0
    read: int = 0
    clicked: int = 0


@dataclass(frozen=True, slots=True)
class StatsRows:
    """What the store aggregates over the messages a user was sent inside a window."""

    totals: Counts
    last_sent_at: datetime | None
    last_engaged_at: datetime | None
    by_channel: list[tuple[str, Counts]] = field(default_factory=list)
    by_template: list[tuple[str, str, Counts]] = field(default_factory=list)
    daily: dict[date, DayCounts] = field(default_factory=dict)


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, RATE_DIGITS)


def build_user_stats(rows: StatsRows, window: Window) -> UserStats:
    totals = rows.totals
    by_channel = sorted(rows.by_channel, key=lambda item: (-item[1].sent, item[0]))
    by_template = sorted(rows.by_template, key=lambda item: (-item[2].sent, item[0]))
    return UserStats(
        sent=totals.sent,
        delivered=totals.delivered,
        read=totals.read,
        clicked=totals.clicked,
        failed=totals.failed,
        responded=totals.responded,
        delivery_rate=rate(totals.delivered, totals.sent),
        read_rate=rate(totals.read, totals.delivered),
        click_rate=rate(totals.clicked, totals.delivered),
        response_rate=rate(totals.responded, totals.delivered),
        last_sent_at=rows.last_sent_at,
        last_engaged_at=rows.last_engaged_at,
        by_channel=[
            ChannelStats(channel=channel, **asdict(counts)) for channel, counts in by_channel
        ],
        by_template=[
            TemplateStats(key=key, name=name, **asdict(counts)) for key, name, counts in by_template
        ],
        daily=[
            DailyStats(date=day, sent=counts.sent, read=counts.read, clicked=counts.clicked)
            for day in window.days()
            for counts in [rows.daily.get(day, DayCounts())]
        ],
        window=WindowView(since=window.since, until=window.until),
    )
