"""The distributed store: ProjectionStore and InsightsReader on OpenSearch.

Writing. `apply` reads the documents of the keys a batch touches with `mget` (real-time: no
refresh is needed to read what was just written), folds the batch into them with
`domain.projection` (the same fold the SQLite store runs) and writes every changed document
with `bulk` (requests of up to 1 MB, sent together). Each write is conditional (`create` for a
new document, `if_seq_no`/`if_primary_term` otherwise); when some lost a race with another
projector, the batch is read and folded again, so concurrent projectors never lose an update.
Documents that would not change are not written, so a replay costs the `mget`s and no write.
A failed bulk item raises: the batch is then redelivered, and because applying is idempotent
the replay completes what the failure left half done. (OpenSearch has
no multi-document transaction; "all or nothing" becomes "eventually all, never wrong".) A failure
that is a passing state of the cluster (a recovering shard, a block, 429, 5xx, no connection:
`errors.py`) raises `DependencyUnavailable`, so the projector waits it out instead of taking an
event for poison.

Reading: `reader.py`; the requests both send: `document_io.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from opensearchpy import AsyncOpenSearch

from insights_common.outage import DependencyUnavailable
from insights_contracts import AnyEvent
from insights_query.adapters.opensearch.document_io import _PAGE, _Current, _Write
from insights_query.adapters.opensearch.documents import (
    Doc,
    from_micros,
    message_doc,
    message_key,
    micros,
    split_key,
    stored_messages,
    stored_user,
    template_doc,
    template_key,
    user_doc,
    user_key,
)
from insights_query.adapters.opensearch.errors import DEPENDENCY, outages
from insights_query.adapters.opensearch.mappings import KINDS, ensure_indices
from insights_query.adapters.opensearch.queries import _few_terms, _term, _visible, _visible_or_not
from insights_query.adapters.opensearch.reader import OpenSearchReader
from insights_query.adapters.opensearch.refreshes import Refreshes
from insights_query.domain.projection import (
    NO_USER,
    MessageKey,
    UserChange,
    UserKey,
    fold_messages,
    fold_templates,
    fold_users,
    keys_of,
    recount_users,
)
from insights_query.domain.retention import RemovedChunk
from insights_query.domain.users import ActivitySpan

logger = logging.getLogger(__name__)
_MAX_ROUNDS = 10
REFRESH_SECONDS = 0.5


class ProjectionConflict(RuntimeError):
    """Documents kept changing under this projector for every retry."""


class OpenSearchInsightsStore(OpenSearchReader):
    """Implements ProjectionStore and InsightsReader on OpenSearch."""

    def __init__(
        self, client: AsyncOpenSearch, *, prefix: str = "insights", refresh: bool = False
    ) -> None:
        super().__init__(client, prefix=prefix, refresh=refresh)
        self._refreshes = Refreshes(self._refresh_all, gap=REFRESH_SECONDS)

    async def ensure_indices(
        self,
        *,
        shards: int = 1,
        replicas: int | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        """Create what is missing; replicas by default: one when the cluster has two nodes, and
        a refresh every `refresh_seconds` (`OpenSearchSettings.refresh_seconds`), which `visible`
        keeps between its own too."""
        self._refreshes.gap = refresh_seconds
        await ensure_indices(
            self._client,
            self._prefix,
            shards=shards,
            replicas=replicas,
            refresh_seconds=refresh_seconds,
        )

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def visible(self) -> None:
        """Return once what was written before the call can be searched: a refresh of the
        indices, begun after the call, ended (shared by every caller meanwhile: `Refreshes`).

        The projector's commits wait for it, off the path of its next batch: a batch's reads of
        the documents it folds into are real-time `mget`s, which see unrefreshed writes, and its
        searches wait for a refresh first (`_spans_of_messages`, `erase`).
        """
        await self._refreshes.after_writes()

    async def _refresh_all(self) -> None:
        async with outages():
            await self._client.indices.refresh(index=",".join(self.index(k) for k in KINDS))

    # -- projection -----------------------------------------------------------------------

    async def apply(self, events: Sequence[AnyEvent]) -> None:
        """Fold the events into their documents. A passing state of the cluster (see `errors`)
        raises `DependencyUnavailable`, for the batch to be retried; only another error can be
        an event's own."""
        try:
            async with outages():
                await self._apply(events)
        except ProjectionConflict as error:
            raise DependencyUnavailable(DEPENDENCY, str(error)) from error

    async def _apply(self, events: Sequence[AnyEvent]) -> None:
        left: set[UserKey] = set()
        lost = 0
        for _ in range(_MAX_ROUNDS):
            lost, left = await self._apply_round(events, left)
            if not lost:
                return
            logger.info("re-folding the batch: another writer changed %d of its documents", lost)
        raise ProjectionConflict(f"{lost} documents still conflicted after {_MAX_ROUNDS} attempts")

    async def _apply_round(
        self, events: Sequence[AnyEvent], left_before: set[UserKey]
    ) -> tuple[int, set[UserKey]]:
        """Load the batch's documents, fold, write conditionally; answer how many writes lost a
        race, and the users messages left (in this round or an earlier one: a user whose write
        lost is still to be taken from their remaining messages in the next)."""
        keys = keys_of(events)
        message_ids = {message_key(*key): key for key in keys.messages}
        template_ids = {template_key(*key): key for key in keys.templates}
        current_messages, current_templates = await asyncio.gather(
            self._mget("messages", sorted(message_ids)),
            self._mget("templates", sorted(template_ids)),
        )
        messages = fold_messages(
            events,
            stored_messages({message_ids[i]: c.source for i, c in current_messages.items()}),
        )
        left = left_before | messages.left
        user_ids = {user_key(*key): key for key in keys.users | messages.users | left}
        # Read before the messages index is refreshed for `rest`: a projector that writes one
        # of these users after this read makes this write lose the race (and be folded again);
        # one that wrote before it had written its messages before the refresh, so they count.
        current_users = await self._mget("users", sorted(user_ids))
        rest = await self._spans_of_messages(left, without=keys.messages) if left else {}
        users = fold_users(
            events,
            messages,
            {user_ids[i]: stored_user(c.source) for i, c in current_users.items()},
            rest,
            left=left_before,
        )
        versions = fold_templates(
            events,
            {template_ids[i]: c.source["origin"] for i, c in current_templates.items()},
        )

        writes: list[_Write] = []
        for change in messages.changes:
            app_id, message_id = change.key
            key = message_key(app_id, message_id)
            current = current_messages.get(key)
            doc = message_doc(
                app_id,
                message_id,
                current.source if current else None,
                change.added,
                change.projection,
            )
            writes.append(_Write("messages", key, doc, current))
        writes += self._user_writes(users, current_users)
        for version in versions:
            key, doc = template_doc(version)
            writes.append(_Write("templates", key, doc, current_templates.get(key)))
        return len(await self._bulk(writes)), left

    @staticmethod
    def _user_writes(
        changes: Sequence[UserChange], current: Mapping[str, _Current]
    ) -> list[_Write]:
        writes: list[_Write] = []
        for change in changes:
            key = user_key(*change.key)
            stored = current.get(key)
            if change.profile is None:
                if stored is not None:
                    writes.append(_Write("users", key, None, stored))
                continue
            doc = user_doc(*change.key, change.profile, change.facts, change.span)
            if stored is None or stored.source != doc:
                writes.append(_Write("users", key, doc, stored))
        return writes

    async def _recount(self, keys: set[UserKey]) -> set[UserKey]:
        """Fold the users again with the span of the messages they have now (retention removed
        some); answer the keys that lost a race."""
        ids = {user_key(*key): key for key in keys}
        current = await self._mget("users", sorted(ids))
        stored = dict.fromkeys(keys, NO_USER)
        stored |= {ids[i]: stored_user(c.source) for i, c in current.items()}
        rest = await self._spans_of_messages(keys, without=set())
        writes = self._user_writes(recount_users(stored, rest), current)
        return {ids[key] for _, key in await self._bulk(writes)}

    async def _spans_of_messages(
        self, keys: Iterable[UserKey], *, without: set[MessageKey]
    ) -> dict[UserKey, ActivitySpan | None]:
        """The activity span of each user's visible messages other than `without`, by user
        key; a user without any is missing. Refreshes the messages index first."""
        await self._client.indices.refresh(index=self.index("messages"))
        by_app: dict[str, list[str]] = defaultdict(list)
        for app_id, user_id in sorted(keys):
            by_app[app_id].append(user_id)
        bodies: list[Doc] = []
        apps: list[str] = []
        for app_id, user_ids in by_app.items():
            skipped = sorted(message_id for app, message_id in without if app == app_id)
            for start in range(0, len(user_ids), _PAGE):
                page = user_ids[start : start + _PAGE]
                apps.append(app_id)
                query = _visible(app_id, {"terms": {"user_id": page}})
                if skipped:
                    query["bool"]["must_not"] = [{"terms": {"message_id": skipped}}]
                bodies.append(
                    {
                        "size": 0,
                        "query": query,
                        "aggs": {
                            "users": {
                                "terms": _few_terms("user_id", len(page)),
                                "aggs": {
                                    "first": {"min": {"field": "first_event_us"}},
                                    "last": {"max": {"field": "last_event_us"}},
                                },
                            }
                        },
                    }
                )
        spans: dict[UserKey, ActivitySpan | None] = {}
        for app_id, response in zip(
            apps, await self._multi_search("messages", bodies), strict=True
        ):
            for bucket in response["aggregations"]["users"]["buckets"]:
                spans[(app_id, bucket["key"])] = ActivitySpan(
                    from_micros(bucket["first"]["value"]), from_micros(bucket["last"]["value"])
                )
        return spans

    # -- erasure ----------------------------------------------------------------------------

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        if not users:
            return {}
        keys = sorted(user_key(*user) for user in users)
        async with outages():
            # Pages at once: the projector asks this for every batch, nearly always in vain.
            pages = await asyncio.gather(
                *(
                    self._mget("erasures", keys[start : start + _PAGE])
                    for start in range(0, len(keys), _PAGE)
                )
            )
        found = {key: current for page in pages for key, current in page.items()}
        return {
            split_key(key): from_micros(current.source["erased_us"])
            for key, current in found.items()
        }

    async def erase(self, erasures: Mapping[UserKey, datetime]) -> None:
        """The markers first, so a projector folding the user meanwhile drops its next batch;
        then every message document naming the user (visible or not) and the user document,
        refreshed at once, so no read finds them after this answers."""
        if not erasures:
            return
        # A delete by query finds what a search finds: the user's documents that earlier
        # batches wrote must be searchable first (their commits, not the batches, wait for it).
        await self.visible()
        async with outages():
            await self._mark_erased(erasures)
            for (app_id, user_id), _ in sorted(erasures.items()):
                for kind in ("messages", "users"):
                    await self._client.delete_by_query(
                        index=self.index(kind),
                        body={"query": _visible_or_not(app_id, _term("user_id", user_id))},
                        params={"refresh": "true", "conflicts": "proceed"},
                    )
            # A projector that read the user before the marker may write them once more; its
            # next batch, and the erase event it takes after, remove them again.

    async def _mark_erased(self, erasures: Mapping[UserKey, datetime]) -> None:
        pending = {user_key(*user): at for user, at in erasures.items()}
        for _ in range(_MAX_ROUNDS):
            if not pending:
                return
            current = await self._mget("erasures", sorted(pending))
            writes = []
            for key, at in pending.items():
                known = current.get(key)
                if known is not None and known.source["erased_us"] >= micros(at):
                    continue
                app_id, user_id = split_key(key)
                doc = {"app_id": app_id, "user_id": user_id, "erased_us": micros(at)}
                writes.append(_Write("erasures", key, doc, known))
            lost = {key for _, key in await self._bulk(writes)}
            pending = {key: at for key, at in pending.items() if key in lost}
        if pending:
            raise DependencyUnavailable(DEPENDENCY, f"{len(pending)} erase markers kept changing")

    # -- retention --------------------------------------------------------------------------

    async def remove_sent_before(
        self, app_id: str, before: datetime, *, limit: int, after: str | None
    ) -> RemovedChunk:
        """One search (in user order, after `after`), one bulk of conditional deletes, one
        refresh and the users' recount.

        A message a projector changed meanwhile is not deleted (its write won the race): it
        is still old, and the next pass takes it.
        """
        async with outages():
            body: Doc = {
                "size": limit,
                "query": _visible(app_id, {"range": {"sent_us": {"lt": micros(before)}}}),
                "sort": [{"user_id": "asc"}, {"message_id": "asc"}],
                "_source": ["user_id"],
                "seq_no_primary_term": True,
            }
            if after is not None:
                body["search_after"] = orjson.loads(after)
            response = await self._client.search(index=self.index("messages"), body=body)
            hits = cast(list[dict[str, Any]], response["hits"]["hits"])
            if not hits:
                return RemovedChunk(messages=0, users=0, resume=None)
            writes = [
                _Write(
                    "messages",
                    hit["_id"],
                    None,
                    _Current(hit["_source"], hit["_seq_no"], hit["_primary_term"]),
                )
                for hit in hits
            ]
            lost = {key for _, key in await self._bulk(writes)}
            users = {(app_id, hit["_source"]["user_id"]) for hit in hits if hit["_id"] not in lost}
            pending = set(users)
            for _ in range(_MAX_ROUNDS):
                if not pending:
                    break
                pending = await self._recount(pending)
            if pending:
                raise DependencyUnavailable(
                    DEPENDENCY, f"{len(pending)} users kept changing while their span was recounted"
                )
        resume = orjson.dumps(hits[-1]["sort"]).decode() if len(hits) == limit else None
        return RemovedChunk(messages=len(hits) - len(lost), users=len(users), resume=resume)
