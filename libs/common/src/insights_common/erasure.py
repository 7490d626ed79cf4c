"""Which events about an erased user are still taken: the rule of every consumer of them.

An erase (`user.erased`) removes everything a store holds of the user and leaves a
marker: when the user was erased. An event about that user dated at or before the marker is
dropped, wherever it arrives (late, replayed, or in the same batch as the erase), so nothing
erased comes back. An event dated after it is taken: a new import of the same user_id after the
erase (an explicit decision to have them again) makes a new user, as the platform's later
messages do.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from insights_contracts import AnyEvent, TemplateUpserted, UserErased

UserKey = tuple[str, str]
"""(app_id, user_id)"""


def user_of(event: AnyEvent) -> UserKey | None:
    """The user an event is about; None for a template's."""
    if isinstance(event, TemplateUpserted):
        return None
    return (event.app_id, event.user_id)


def users_of(events: Iterable[AnyEvent]) -> set[UserKey]:
    return {key for event in events if (key := user_of(event)) is not None}


@dataclass(frozen=True, slots=True)
class Screened:
    erasures: dict[UserKey, datetime]
    """The batch's erases: each user's latest, to apply before `kept`."""
    kept: list[AnyEvent]
    dropped: int
    """Events about erased users dated at or before their erase."""


def screen(events: Sequence[AnyEvent], erased: Mapping[UserKey, datetime]) -> Screened:
    """Split a batch into its erases, the events still taken (in order) and a count of those
    dropped; `erased` holds the stored markers of the batch's users."""
    erasures: dict[UserKey, datetime] = {}
    for event in events:
        if isinstance(event, UserErased):
            key = (event.app_id, event.user_id)
            known = erasures.get(key)
            erasures[key] = event.occurred_at if known is None else max(known, event.occurred_at)
    if not erasures and not erased:
        return Screened(erasures=erasures, kept=list(events), dropped=0)
    markers = dict(erased)
    for key, at in erasures.items():
        markers[key] = max(markers[key], at) if key in markers else at
    kept: list[AnyEvent] = []
    dropped = 0
    for event in events:
        if isinstance(event, UserErased):
            continue
        user = user_of(event)
        marker = markers.get(user) if user is not None else None
        if marker is not None and event.occurred_at <= marker:
            dropped += 1
        else:
            kept.append(event)
    return Screened(erasures=erasures, kept=kept, dropped=dropped)


class ErasureMarkers(Protocol):
    """When each erased user was erased, kept by a consumer of the users topic beside what it
    stores of users, so that it drops what comes later about them (`screen`)."""

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        """The markers of these users; users never erased are missing."""
        ...

    async def mark(self, erasures: Mapping[UserKey, datetime]) -> None:
        """Keep each marker, or move it later; an earlier one changes nothing."""
        ...
