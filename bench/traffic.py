"""The messages of a generated app as a stream: generated in time order, never held whole.

Who gets a message is Zipf-distributed over the users (weight (rank + 10)^-s): a few users get
hundreds or thousands of messages, most get a handful, and the ranks are scattered over the user
indices. What is sent, and what becomes of it, is the demo catalog's (insights.demo_data): ten
templates with one to three versions across the six channels, rendered content, the per-channel
delivery delays, read rates, failure codes and responses. The catalog's version dates are
stretched to the span, so every version is live for part of it and the first ones from its start.

Events come out in `occurred_at` order. A message's later events (delivered, read, clicked,
responded, failed) wait in a heap until the stream reaches their time, so memory is bounded by
the messages of the last hours (reads come up to ten hours after the send), whatever the count.
Events that would happen after `now` are never sent, as on a live platform.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bench.people import person
from insights.demo_catalogue import Template
from insights.demo_data import (
    TEMPLATES,
    Builder,
    Plan,
    channels_for,
    drawn_plan,
    rfc3339,
    template_events,
    version_at,
)

ZIPF_OFFSET = 10.0
STAGES = ("sent", "delivered", "read", "clicked")
_CATALOG_DAYS = max(v.days_ago for t in TEMPLATES for v in t.versions)


class Audience:
    """Which user a message goes to: rank by Zipf, rank to user index by a fixed permutation."""

    def __init__(self, users: int, *, exponent: float, seed: int) -> None:
        if users < 1:
            raise ValueError("users must be at least 1")
        self.users = users
        self.exponent = exponent
        self._cum = array("d", itertools.accumulate(self.weight(r) for r in range(users)))
        self._total = self._cum[-1]
        stride = 1_000_003 + 2 * (abs(seed) % 1000)
        while math.gcd(stride, users) != 1:
            stride += 2
        self._stride = stride
        self._shift = abs(seed) * 7919 % users

    def weight(self, rank: int) -> float:
        return float((rank + 1 + ZIPF_OFFSET) ** -self.exponent)

    def share(self, rank: int) -> float:
        """The expected share of all messages that the user at `rank` gets."""
        return self.weight(rank) / self._total

    def index_of(self, rank: int) -> int:
        return (rank * self._stride + self._shift) % self.users

    def pick(self, rng: random.Random) -> int:
        rank = bisect.bisect_right(self._cum, rng.random() * self._total)
        return self.index_of(min(rank, self.users - 1))


def catalog(days: float) -> tuple[Template, ...]:
    """The demo catalog with its version dates stretched from its span to `days`."""
    scale = days / _CATALOG_DAYS
    return tuple(
        replace(t, versions=tuple(replace(v, days_ago=v.days_ago * scale) for v in t.versions))
        for t in TEMPLATES
    )


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of one message, as the events sent about it show."""

    number: int
    message_id: str
    user_id: str
    channel: str
    template: str
    status: str  # the furthest stage, or failed
    responded: bool
    sent_at: datetime


class Traffic:
    """`messages` messages to `users` users over the `days` before `now`.

    `seed` fixes the users and who gets how much; `stream` picks another sequence of messages
    for the same users (the same seed and stream give the same events, given the same `now`).
    The users are those of index `first_user` to `first_user + users`, so an app can grow by
    cohorts: each its own users, its own stream and its own Zipf skew.
    """

    def __init__(
        self,
        *,
        app_id: str,
        seed: int,
        users: int,
        messages: int,
        now: datetime,
        days: float = 90,
        zipf: float = 0.8,
        stream: int = 0,
        first_user: int = 0,
    ) -> None:
        if messages < 0:
            raise ValueError("messages must not be negative")
        if days <= 0:
            raise ValueError("days must be positive")
        self.app_id = app_id
        self.seed = seed
        self.first_user = first_user
        self.messages = messages
        self.now = now
        self.start = now - timedelta(days=days)
        self.templates = catalog(days)
        self._template_cum = list(itertools.accumulate(t.weight for t in self.templates))
        self.audience = Audience(users, exponent=zipf, seed=seed)
        self._stream_seed = seed * 1000 + stream

    def template_events(self) -> list[dict[str, Any]]:
        """Every version of the catalog as a template.upserted, oldest first."""
        return template_events(
            self._builder(random.Random(0)), self.templates, lead=timedelta(hours=1)
        )

    def events(self, on_message: Callable[[Sent], None] | None = None) -> Iterator[dict[str, Any]]:
        """The notification events in occurred_at order; `on_message` hears of each message."""
        rng = random.Random(self._stream_seed)
        builder = self._builder(rng)
        pending: list[tuple[datetime, int, dict[str, Any]]] = []
        order = itertools.count()
        span = (self.now - self.start).total_seconds()
        for number in range(self.messages):
            sent_at = self.start + timedelta(seconds=span * (number + rng.random()) / self.messages)
            while pending and pending[0][0] <= sent_at:
                yield heapq.heappop(pending)[2]
            who = person(self.seed, self.first_user + self.audience.pick(rng))
            builder.message(self._plan(rng, who.profile, sent_at), number)
            for at, _, event in builder.events:
                heapq.heappush(pending, (at, next(order), event))
            if on_message is not None and builder.events:
                on_message(_outcome(number, [event for _, _, event in builder.events]))
            builder.events.clear()
        while pending:
            yield heapq.heappop(pending)[2]

    def _builder(self, rng: random.Random) -> Builder:
        return Builder(app_id=self.app_id, seed=self._stream_seed, now=self.now, rng=rng)

    def _plan(self, rng: random.Random, user: Any, sent_at: datetime) -> Plan:
        """The demo's plan of a message, for a given user and time."""
        for _ in range(1000):
            template = rng.choices(self.templates, cum_weights=self._template_cum)[0]
            version = version_at(template, sent_at, self.now)
            if version is None:
                continue
            channels = channels_for(version.channels, user)
            if channels:
                break
        else:
            raise RuntimeError(f"no template of the catalog is live at {rfc3339(sent_at)}")
        return drawn_plan(rng, user, template, channels, sent_at)


def _outcome(number: int, events: list[dict[str, Any]]) -> Sent:
    sent = events[0]
    kinds = {event["event_type"].removeprefix("notification.") for event in events}
    status = "failed" if "failed" in kinds else max(kinds & set(STAGES), key=STAGES.index)
    return Sent(
        number=number,
        message_id=sent["message_id"],
        user_id=sent["user_id"],
        channel=sent["channel"],
        template=sent["template"]["key"],
        status=status,
        responded="responded" in kinds,
        sent_at=datetime.fromisoformat(sent["occurred_at"]),
    )
