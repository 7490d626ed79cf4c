"""What the query service needs from outside. SQLite implements these in the embedded mode."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from insights_contracts import AnyEvent
from insights_query.domain.erasure import UserKey
from insights_query.domain.queries import (
    ActivityPosition,
    MessageFilter,
    MessagePosition,
    SearchPosition,
)
from insights_query.domain.retention import RemovedChunk
from insights_query.domain.search import Rank, SearchQuery
from insights_query.domain.stats import StatsRows
from insights_query.domain.time import Window
from insights_query.domain.users import UserProfile
from insights_query.domain.views import (
    BriefStats,
    MessageDetail,
    TemplateDetail,
    TemplateSummary,
)


class ProjectionStore(Protocol):
    async def apply(self, events: Sequence[AnyEvent]) -> None:
        """Store a batch of events and recompute what they touch, all or nothing."""
        ...

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        """When each of these users was erased; users never erased are missing."""
        ...

    async def erase(self, erasures: Mapping[UserKey, datetime]) -> None:
        """Remove everything stored of each user (profile, facts, messages and their events)
        and keep (or move forward) their erase marker; done again, it changes nothing."""
        ...


class RetentionStore(Protocol):
    async def remove_sent_before(
        self, app_id: str, before: datetime, *, limit: int, after: str | None
    ) -> RemovedChunk:
        """Remove up to `limit` of the app's messages sent before `before`, from `after` (the
        `resume` of the previous chunk) in user order, and compute again the profiles of their
        users (their activity span; a user known only from the removed messages goes, an
        imported one stays). In user order, a chunk touches few users and each user is
        recounted about once a pass. Each call is short for readers and the projector: one
        transaction, or one bulk request and one refresh."""
        ...


class InsightsReader(Protocol):
    """Every method answers for one app only."""

    async def search_users(
        self, app_id: str, query: SearchQuery, *, after: SearchPosition | None, limit: int
    ) -> list[tuple[Rank, UserProfile]]:
        """Matches in (rank, user_id) order after `after`, each user once at its best rank."""
        ...

    async def recent_users(
        self, app_id: str, *, after: ActivityPosition | None, limit: int
    ) -> list[UserProfile]:
        """Users by (last_activity_at, user_id) descending, after `after`."""
        ...

    async def brief_stats(self, app_id: str, user_ids: Sequence[str]) -> dict[str, BriefStats]:
        """All-time counts per user; users without messages may be missing."""
        ...

    async def get_user(self, app_id: str, user_id: str) -> UserProfile | None: ...

    async def user_stats(self, app_id: str, user_id: str, window: Window) -> StatsRows:
        """Counts over the user's messages with sent_at inside the window."""
        ...

    async def list_messages(
        self,
        app_id: str,
        user_id: str,
        *,
        filters: MessageFilter,
        after: MessagePosition | None,
        limit: int,
    ) -> list[MessageDetail]:
        """The user's messages by (sent_at, message_id) descending, after `after`."""
        ...

    async def get_message(self, app_id: str, message_id: str) -> MessageDetail | None: ...

    async def list_templates(
        self, app_id: str, *, after_key: str | None, limit: int
    ) -> list[TemplateSummary]:
        """Templates by key, after `after_key`."""
        ...

    async def get_template(self, app_id: str, key: str) -> TemplateDetail | None:
        """Every version seen, newest first, with the counts of the messages sent with it."""
        ...
