"""The projection of one user from their user.upserted events and their messages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from insights_contracts import UserUpserted
from insights_contracts.phone import mask_phone, phone_country
from insights_query.domain.views import BriefStats, UserDetail, UserStats, UserSummary

UserSummaryOrDetail = TypeVar("UserSummaryOrDetail", UserSummary, UserDetail)

IMPORT_SOURCE_PREFIX = "import:"


@dataclass(frozen=True, slots=True)
class UserFact:
    """What one user.upserted event said; None means the field was absent."""

    event_id: str
    occurred_at: datetime
    phone_number: str | None
    nickname: str | None
    source: str

    @classmethod
    def of(cls, event: UserUpserted) -> UserFact:
        return cls(
            event_id=event.event_id,
            occurred_at=event.occurred_at,
            phone_number=event.phone_number,
            nickname=event.nickname,
            source=event.source,
        )


@dataclass(frozen=True, slots=True)
class ActivitySpan:
    """First and last event of the user's visible messages."""

    first: datetime
    last: datetime


@dataclass(frozen=True, slots=True)
class UserProfile:
    user_id: str
    nickname: str | None
    phone_number: str | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    imports: tuple[str, ...]


def project_user(
    user_id: str, facts: Iterable[UserFact], messages: ActivitySpan | None
) -> UserProfile | None:
    """Per field, the latest upsert that has it wins; an absent field never erases.

    A user known only from messages exists with what is known. None when nothing is known.
    """
    ordered = sorted(
        {f.event_id: f for f in facts}.values(), key=lambda f: (f.occurred_at, f.event_id)
    )
    if not ordered and messages is None:
        return None
    nickname: str | None = None
    phone: str | None = None
    for fact in ordered:
        if fact.nickname is not None:
            nickname = fact.nickname
        if fact.phone_number is not None:
            phone = fact.phone_number
    moments = [f.occurred_at for f in ordered]
    if messages is not None:
        moments += [messages.first, messages.last]
    created_at = min(moments)
    imports = sorted(
        {
            f.source.removeprefix(IMPORT_SOURCE_PREFIX)
            for f in ordered
            if f.source.startswith(IMPORT_SOURCE_PREFIX)
        }
    )
    return UserProfile(
        user_id=user_id,
        # An empty nickname from the platform clears it rather than showing a blank name.
        nickname=nickname or None,
        phone_number=phone,
        created_at=created_at,
        updated_at=ordered[-1].occurred_at if ordered else created_at,
        last_activity_at=max(moments),
        imports=tuple(imports),
    )


def user_summary(profile: UserProfile, stats: BriefStats | None) -> UserSummary:
    return UserSummary(
        user_id=profile.user_id,
        nickname=profile.nickname,
        phone_number=mask_phone(profile.phone_number),
        stats=stats or BriefStats(),
    )


def user_detail(profile: UserProfile, stats: UserStats) -> UserDetail:
    return UserDetail(
        user_id=profile.user_id,
        nickname=profile.nickname,
        phone_number=mask_phone(profile.phone_number),
        phone_country=phone_country(profile.phone_number) if profile.phone_number else None,
        created_at=profile.created_at,
        updated_at=profile.updated_at,
        imports=list(profile.imports),
        stats=stats,
    )


def without_phone(view: UserSummaryOrDetail) -> UserSummaryOrDetail:
    """The view for a caller who may not see phone numbers, even masked: they are left out."""
    if isinstance(view, UserDetail):
        return view.model_copy(update={"phone_number": None, "phone_country": None})
    return view.model_copy(update={"phone_number": None})
