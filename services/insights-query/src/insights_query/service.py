"""Use cases of the query side: project events, and answer the query API for one app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from prometheus_client import Counter

from insights_common.clock import utc_now
from insights_contracts import AnyEvent
from insights_query.domain.erasure import screen, users_of
from insights_query.domain.errors import NotFound
from insights_query.domain.messages import message_item
from insights_query.domain.queries import (
    ActivityPosition,
    KeyPosition,
    MessageFilter,
    MessagePosition,
    Position,
    SearchPosition,
    Slice,
    parse_message_filter,
)
from insights_query.domain.search import parse_search
from insights_query.domain.stats import build_user_stats
from insights_query.domain.time import resolve_window, ts_key
from insights_query.domain.users import UserProfile, user_detail, user_summary
from insights_query.domain.views import (
    MessageDetail,
    MessageItem,
    TemplateDetail,
    TemplateSummary,
    UserDetail,
    UserSummary,
)
from insights_query.ports import InsightsReader, ProjectionStore
from insights_query.settings import QuerySettings

T = TypeVar("T")


class Projector:
    """The batch handler of the users, notifications and templates topics.

    Erases go first (`domain.erasure`): the batch's erased users are removed and marked, and
    the events about an erased user dated at or before the erase are dropped and counted.
    """

    def __init__(self, store: ProjectionStore) -> None:
        self._store = store
        self.dropped = Counter(
            "insights_events_dropped_total",
            "Events the projector dropped, by reason (erased: about a user erased after the"
            " event's occurred_at)",
            ["reason"],
            registry=None,
        )

    async def handle(self, events: Sequence[AnyEvent]) -> None:
        if not events:
            return
        screened = screen(events, await self._store.erased(users_of(events)))
        if screened.erasures:
            await self._store.erase(screened.erasures)
        if screened.dropped:
            self.dropped.labels(reason="erased").inc(screened.dropped)
        if screened.kept:
            await self._store.apply(screened.kept)


class QueryService:
    def __init__(
        self,
        reader: InsightsReader,
        *,
        settings: QuerySettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._reader = reader
        self._settings = settings
        self._clock = clock

    async def search_users(
        self, app_id: str, *, q: str | None, limit: int, after: Position | None
    ) -> Slice[UserSummary]:
        """Ranked matches for q; a blank q lists users by most recent activity."""
        query = parse_search(q)
        following: Position | None = None
        if query is None:
            position = ActivityPosition.load(after) if after is not None else None
            profiles = await self._reader.recent_users(app_id, after=position, limit=limit + 1)
            if len(profiles) > limit:
                last = profiles[limit - 1]
                following = ActivityPosition(ts_key(last.last_activity_at), last.user_id).dump()
        else:
            start = SearchPosition.load(after) if after is not None else None
            ranked = await self._reader.search_users(app_id, query, after=start, limit=limit + 1)
            profiles = [profile for _, profile in ranked]
            if len(ranked) > limit:
                rank, last = ranked[limit - 1]
                following = SearchPosition(rank, last.user_id).dump()
        page = profiles[:limit]
        stats = await self._reader.brief_stats(app_id, [p.user_id for p in page])
        return Slice([user_summary(p, stats.get(p.user_id)) for p in page], following)

    async def get_user(
        self, app_id: str, user_id: str, *, since: str | None, until: str | None
    ) -> UserDetail:
        window = resolve_window(
            since=since,
            until=until,
            now=self._clock(),
            default_days=self._settings.default_window_days,
            max_days=self._settings.max_window_days,
        )
        profile, rows = await self._with_user(
            app_id, user_id, self._reader.user_stats(app_id, user_id, window)
        )
        return user_detail(profile, build_user_stats(rows, window))

    async def list_messages(
        self,
        app_id: str,
        user_id: str,
        *,
        status: str | None = None,
        channel: str | None = None,
        template: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int,
        after: Position | None,
    ) -> Slice[MessageItem]:
        filters = parse_message_filter(
            status=status, channel=channel, template=template, since=since, until=until
        )
        start = MessagePosition.load(after) if after is not None else None
        _, details = await self._with_user(
            app_id,
            user_id,
            self._reader.list_messages(
                app_id, user_id, filters=filters, after=start, limit=limit + 1
            ),
        )
        page = details[:limit]
        following = _message_position(page[-1]).dump() if len(details) > limit else None
        preview = self._settings.preview_length
        return Slice([message_item(d, preview_length=preview) for d in page], following)

    async def export_messages(
        self,
        app_id: str,
        user_id: str,
        *,
        status: str | None = None,
        channel: str | None = None,
        template: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> AsyncIterator[list[MessageDetail]]:
        """Every message of the filtered list, page by page.

        Validates before returning, so a bad filter or an unknown user fails before any byte of
        the export is sent.
        """
        filters = parse_message_filter(
            status=status, channel=channel, template=template, since=since, until=until
        )
        await self._require_user(app_id, user_id)
        return self._pages(app_id, user_id, filters)

    async def _pages(
        self, app_id: str, user_id: str, filters: MessageFilter
    ) -> AsyncIterator[list[MessageDetail]]:
        size = self._settings.export_page_size
        after: MessagePosition | None = None
        while True:
            page = await self._reader.list_messages(
                app_id, user_id, filters=filters, after=after, limit=size
            )
            if page:
                yield page
            if len(page) < size:
                return
            after = _message_position(page[-1])

    async def get_message(self, app_id: str, message_id: str) -> MessageDetail:
        detail = await self._reader.get_message(app_id, message_id)
        if detail is None:
            raise NotFound("message", message_id)
        return detail

    async def get_user_message(self, app_id: str, user_id: str, message_id: str) -> MessageDetail:
        """The message, if it is the user's: another user's is not found, as a missing one."""
        detail = await self.get_message(app_id, message_id)
        if detail.user_id != user_id:
            raise NotFound("message", message_id)
        return detail

    async def list_templates(
        self, app_id: str, *, limit: int, after: Position | None
    ) -> Slice[TemplateSummary]:
        start = KeyPosition.load(after).key if after is not None else None
        templates = await self._reader.list_templates(app_id, after_key=start, limit=limit + 1)
        page = templates[:limit]
        following = KeyPosition(page[-1].key).dump() if len(templates) > limit else None
        return Slice(page, following)

    async def get_template(self, app_id: str, key: str) -> TemplateDetail:
        detail = await self._reader.get_template(app_id, key)
        if detail is None:
            raise NotFound("template", key)
        return detail

    async def reveal_phone(self, app_id: str, user_id: str) -> str | None:
        """The user's whole phone number (None when it has none); NotFound without the user."""
        profile = await self._reader.get_user(app_id, user_id)
        if profile is None:
            raise NotFound("user", user_id)
        return profile.phone_number

    async def _require_user(self, app_id: str, user_id: str) -> None:
        if await self._reader.get_user(app_id, user_id) is None:
            raise NotFound("user", user_id)

    async def _with_user(
        self, app_id: str, user_id: str, read: Awaitable[T]
    ) -> tuple[UserProfile, T]:
        """The user's profile and what `read` answers, both asked at once: a request waits for
        the slower, not for the two in turn. NotFound when there is no such user, whatever
        `read` gave."""
        profile, answer = await asyncio.gather(
            self._reader.get_user(app_id, user_id), read, return_exceptions=True
        )
        if isinstance(profile, BaseException):
            raise profile
        if profile is None:
            raise NotFound("user", user_id)
        if isinstance(answer, BaseException):
            raise answer
        return profile, answer


def _message_position(detail: MessageDetail) -> MessagePosition:
    return MessagePosition(sent_at=ts_key(detail.sent_at), message_id=detail.message_id)
