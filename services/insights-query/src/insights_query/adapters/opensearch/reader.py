"""`OpenSearchReader`: the InsightsReader queries (users, statistics, messages, templates).

Every query filters on app_id. Messages are not routed by app or user: the doc id
(`app_id:message_id`) must be enough to get a message, and routing by app would pile a large
app onto one shard. The SQLite store's orderings are reproduced exactly: instants are stored
as UTC microseconds (what ts_key orders by), ids as keywords (byte order, like SQLite's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from pydantic import TypeAdapter

from insights_contracts import Channel, ChannelContent, VariableSpec
from insights_query.adapters.opensearch.document_io import _PAGE, DocumentIO
from insights_query.adapters.opensearch.documents import (
    PROFILE_FIELDS,
    Doc,
    message_key,
    micros,
    profile_of,
    user_key,
)
from insights_query.adapters.opensearch.queries import (
    _COUNT_FIELDS,
    _TERMS_SIZE,
    _counts,
    _few_terms,
    _int,
    _latest_version,
    _opt_instant,
    _rank_query,
    _sums,
    _term,
    _visible,
)
from insights_query.domain.queries import (
    ActivityPosition,
    MessageFilter,
    MessagePosition,
    SearchPosition,
)
from insights_query.domain.search import Rank, SearchQuery
from insights_query.domain.stats import DayCounts, StatsRows
from insights_query.domain.time import Window, from_ts_key
from insights_query.domain.users import UserProfile
from insights_query.domain.views import (
    BriefStats,
    MessageDetail,
    TemplateDetail,
    TemplateSummary,
    TemplateVersionView,
)

_channels: TypeAdapter[dict[Channel, ChannelContent]] = TypeAdapter(dict[Channel, ChannelContent])
_variables: TypeAdapter[list[VariableSpec]] = TypeAdapter(list[VariableSpec])


class OpenSearchReader(DocumentIO):
    """Implements InsightsReader on OpenSearch."""

    # -- users ------------------------------------------------------------------------------

    async def get_user(self, app_id: str, user_id: str) -> UserProfile | None:
        source = await self._get_source("users", user_key(app_id, user_id), PROFILE_FIELDS)
        return profile_of(source) if source else None

    async def recent_users(
        self, app_id: str, *, after: ActivityPosition | None, limit: int
    ) -> list[UserProfile]:
        body: Doc = {
            "size": limit,
            "query": {"bool": {"filter": [_term("app_id", app_id)]}},
            "sort": [{"activity_us": "desc"}, {"user_id": "desc"}],
            "_source": PROFILE_FIELDS,
        }
        if after is not None:
            body["search_after"] = [micros(from_ts_key(after.at)), after.user_id]
        return [profile_of(hit["_source"]) for hit in await self._hits("users", body)]

    async def search_users(
        self, app_id: str, query: SearchQuery, *, after: SearchPosition | None, limit: int
    ) -> list[tuple[Rank, UserProfile]]:
        ranks = [rank for rank in query.ranks() if after is None or rank >= after.rank]
        bodies: list[Doc] = [
            {
                "size": limit,
                "query": _rank_query(
                    app_id,
                    query,
                    rank,
                    after.user_id if after is not None and rank == after.rank else "",
                ),
                "sort": [{"user_id": "asc"}],
                "_source": PROFILE_FIELDS,
            }
            for rank in ranks
        ]
        # Every rank in one request: the page is the first `limit` of their hits in rank order,
        # what asking each rank in turn for the rest of the page gives, without the waits.
        found: list[tuple[Rank, UserProfile]] = []
        for rank, hits in zip(ranks, await self._multi_hits("users", bodies), strict=True):
            found += [(rank, profile_of(hit["_source"])) for hit in hits]
        return found[:limit]

    async def brief_stats(self, app_id: str, user_ids: Sequence[str]) -> dict[str, BriefStats]:
        if not user_ids:
            return {}
        body: Doc = {
            "size": 0,
            "query": _visible(app_id, {"terms": {"user_id": list(user_ids)}}),
            "aggs": {
                "users": {
                    "terms": _few_terms("user_id", len(user_ids)),
                    "aggs": {**_sums("read", "clicked"), "last": {"max": {"field": "sent_us"}}},
                }
            },
        }
        response = await self._search("messages", body)
        return {
            bucket["key"]: BriefStats(
                sent=bucket["doc_count"],
                read=_int(bucket["read"]),
                clicked=_int(bucket["clicked"]),
                last_sent_at=_opt_instant(bucket["last"]),
            )
            for bucket in response["aggregations"]["users"]["buckets"]
        }

    async def user_stats(self, app_id: str, user_id: str, window: Window) -> StatsRows:
        counts = _sums(*_COUNT_FIELDS)
        body: Doc = {
            "size": 0,
            "track_total_hits": True,
            "query": _visible(
                app_id,
                _term("user_id", user_id),
                {"range": {"sent_us": {"gte": micros(window.since), "lte": micros(window.until)}}},
            ),
            "aggs": {
                **counts,
                "last_sent": {"max": {"field": "sent_us"}},
                "last_engaged": {"max": {"field": "engaged_us"}},
                "by_channel": {
                    "terms": _few_terms("channel", _TERMS_SIZE),
                    "aggs": counts,
                },
                "by_template": {
                    "terms": _few_terms("template_key", _TERMS_SIZE),
                    "aggs": counts,
                },
                "daily": {
                    "terms": _few_terms("sent_day", len(window.days())),
                    "aggs": _sums("read", "clicked"),
                },
            },
        }
        response = await self._search("messages", body)
        aggs = response["aggregations"]
        template_buckets = aggs["by_template"]["buckets"]
        names = await self._latest_names(app_id, [b["key"] for b in template_buckets])
        return StatsRows(
            totals=_counts(aggs, response["hits"]["total"]["value"]),
            last_sent_at=_opt_instant(aggs["last_sent"]),
            last_engaged_at=_opt_instant(aggs["last_engaged"]),
            by_channel=[
                (b["key"], _counts(b, b["doc_count"])) for b in aggs["by_channel"]["buckets"]
            ],
            by_template=[
                (b["key"], names.get(b["key"], ""), _counts(b, b["doc_count"]))
                for b in template_buckets
            ],
            daily={
                date.fromisoformat(b["key"]): DayCounts(
                    sent=b["doc_count"], read=_int(b["read"]), clicked=_int(b["clicked"])
                )
                for b in aggs["daily"]["buckets"]
            },
        )

    async def _latest_names(self, app_id: str, keys: list[str]) -> dict[str, str]:
        """The name of the newest version of each template key."""
        if not keys:
            return {}
        body: Doc = {
            "size": 0,
            "query": {"bool": {"filter": [_term("app_id", app_id), {"terms": {"key": keys}}]}},
            "aggs": {
                "keys": {
                    "terms": _few_terms("key", len(keys)),
                    "aggs": {"latest": _latest_version()},
                }
            },
        }
        response = await self._search("templates", body)
        return {
            bucket["key"]: bucket["latest"]["hits"]["hits"][0]["_source"]["name"]
            for bucket in response["aggregations"]["keys"]["buckets"]
        }

    # -- messages ---------------------------------------------------------------------------

    async def list_messages(
        self,
        app_id: str,
        user_id: str,
        *,
        filters: MessageFilter,
        after: MessagePosition | None,
        limit: int,
    ) -> list[MessageDetail]:
        clauses: list[Doc] = [_term("user_id", user_id)]
        for name, value in (
            ("status", filters.status),
            ("channel", filters.channel),
            ("template_key", filters.template),
        ):
            if value is not None:
                clauses.append(_term(name, value))
        sent_range: Doc = {}
        if filters.since is not None:
            sent_range["gte"] = micros(filters.since)
        if filters.until is not None:
            sent_range["lte"] = micros(filters.until)
        if sent_range:
            clauses.append({"range": {"sent_us": sent_range}})
        body: Doc = {
            "size": limit,
            "query": _visible(app_id, *clauses),
            "sort": [{"sent_us": "desc"}, {"message_id": "desc"}],
            "_source": ["detail"],
        }
        if after is not None:
            body["search_after"] = [micros(from_ts_key(after.sent_at)), after.message_id]
        hits = await self._hits("messages", body)
        return [MessageDetail.model_validate(hit["_source"]["detail"]) for hit in hits]

    async def get_message(self, app_id: str, message_id: str) -> MessageDetail | None:
        key = message_key(app_id, message_id)
        source = await self._get_source("messages", key, ["visible", "detail"])
        if source is None or not source["visible"]:
            return None
        return MessageDetail.model_validate(source["detail"])

    # -- templates --------------------------------------------------------------------------

    async def list_templates(
        self, app_id: str, *, after_key: str | None, limit: int
    ) -> list[TemplateSummary]:
        composite: Doc = {"size": limit, "sources": [{"key": {"terms": {"field": "key"}}}]}
        if after_key is not None:
            composite["after"] = {"key": after_key}
        body: Doc = {
            "size": 0,
            "query": {"bool": {"filter": [_term("app_id", app_id)]}},
            "aggs": {"keys": {"composite": composite, "aggs": {"latest": _latest_version()}}},
        }
        response = await self._search("templates", body)
        latest = {
            bucket["key"]["key"]: bucket["latest"]["hits"]["hits"][0]["_source"]
            for bucket in response["aggregations"]["keys"]["buckets"]
        }
        counts = await self._message_counts(app_id, "template_key", list(latest), {})
        return [
            TemplateSummary(
                key=key,
                name=source["name"],
                latest_version=source["version"],
                **counts.get(key, {"sent": 0, "read": 0, "clicked": 0}),
            )
            for key, source in latest.items()
        ]

    async def get_template(self, app_id: str, key: str) -> TemplateDetail | None:
        query = {"bool": {"filter": [_term("app_id", app_id), _term("key", key)]}}
        versions: list[Doc] = []
        search_after: list[Any] | None = None
        while True:
            body: Doc = {"size": _PAGE, "query": query, "sort": [{"version": "desc"}]}
            if search_after is not None:
                body["search_after"] = search_after
            hits = await self._hits("templates", body)
            versions += [hit["_source"] for hit in hits]
            if len(hits) < _PAGE:
                break
            search_after = hits[-1]["sort"]
        if not versions:
            return None
        counts = await self._message_counts(
            app_id,
            "template_version",
            [v["version"] for v in versions],
            {"template_key": key},
        )
        views = [
            TemplateVersionView(
                version=v["version"],
                name=v["name"],
                channels=_channels.validate_python(v["channels"]),
                variable_schema=_variables.validate_python(v["variable_schema"]),
                **counts.get(v["version"], {"sent": 0, "read": 0, "clicked": 0}),
            )
            for v in versions
        ]
        return TemplateDetail(key=key, name=views[0].name, versions=views)

    async def _message_counts(
        self, app_id: str, by: str, values: Sequence[Any], where: Mapping[str, Any]
    ) -> dict[Any, dict[str, int]]:
        """sent/read/clicked of the visible messages per value of `by`."""
        if not values:
            return {}
        body: Doc = {
            "size": 0,
            "query": _visible(
                app_id,
                {"terms": {by: list(values)}},
                *(_term(name, value) for name, value in where.items()),
            ),
            "aggs": {
                "groups": {
                    "terms": {"field": by, "size": len(values)},
                    "aggs": _sums("read", "clicked"),
                }
            },
        }
        response = await self._search("messages", body)
        return {
            bucket["key"]: {
                "sent": bucket["doc_count"],
                "read": _int(bucket["read"]),
                "clicked": _int(bucket["clicked"]),
            }
            for bucket in response["aggregations"]["groups"]["buckets"]
        }
