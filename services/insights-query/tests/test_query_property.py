"""Any order and any duplication of the same events gives the same API-visible state.

On the fold itself (`domain.projection`, over an in-memory store that loads and saves only the
keys a batch touches, as the stores do), with many examples: the state after the events arrive
shuffled, duplicated and cut into batches must equal the state defined from the whole set of
events. On each store: the state after such an arrival must equal what SQLite shows after the
events in one batch. So OpenSearch is held both to order independence and to showing what
SQLite shows.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insights_common.sqlite.database import SqliteDatabase
from insights_contracts import (
    AnyEvent,
    NotificationClicked,
    NotificationDelivered,
    NotificationFailed,
    NotificationRead,
    NotificationResponded,
    NotificationSent,
    NotificationStatus,
    TemplateUpserted,
    UserUpserted,
)
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.domain.errors import NotFound
from insights_query.domain.messages import STATUSES, MessageProjection, project_message
from insights_query.domain.projection import (
    MessageKey,
    StoredMessage,
    StoredUser,
    TemplateKey,
    UserKey,
    fold_messages,
    fold_templates,
    fold_users,
    keys_of,
    widen,
)
from insights_query.domain.templates import TemplateVersion, best_versions
from insights_query.domain.users import ActivitySpan, UserFact, project_user
from insights_query.ports import InsightsReader, ProjectionStore
from insights_query.service import Projector, QueryService
from insights_query.settings import QuerySettings

T = TypeVar("T")

APP = "acme"
BASE = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, tzinfo=UTC)
USERS = ("alex", "bo", "cy")
MESSAGES = {
    "m1": ("alex", "push", "welcome"),
    "m2": ("alex", "sms", "promo"),
    "m3": ("bo", "email", "welcome"),
    "m4": ("cy", "push", "promo"),
    "m5": ("alex", "email", "welcome"),
}
TEMPLATE_KEYS = ("welcome", "promo")
NICKNAMES = (None, "Alex Kim", "김철수", "José", "王小明", "")
SEARCHES = (
    "alex",
    "ALEX",
    "b",
    "kim",
    "김",
    "철수",
    "jose",
    "+1415",
    "1415555",
    "8210",
    "王",
    "zzz",
)


@st.composite
def histories(draw: st.DrawFn) -> list[AnyEvent]:
    """A set of distinct events: messages (some without their sent), users and templates."""
    counter = itertools.count()
    # few distinct instants, so equal occurred_at values (and their tie-breaks) are common
    instants = st.integers(0, 3).map(lambda minutes: BASE + timedelta(minutes=minutes))

    def envelope() -> dict[str, Any]:
        return {
            "event_id": f"e{next(counter):03d}",
            "app_id": APP,
            "occurred_at": draw(instants),
        }

    events: list[AnyEvent] = []
    for message_id, (user_id, channel, key) in MESSAGES.items():
        ids = {"message_id": message_id, "user_id": user_id}
        for _ in range(draw(st.integers(0, 2))):
            # now and then a send names another user (the earlier send decides the message's)
            to = draw(st.sampled_from([user_id, user_id, user_id, *USERS]))
            events.append(
                NotificationSent.model_validate(
                    {
                        **envelope(),
                        **ids,
                        "user_id": to,
                        "channel": channel,
                        "template": {
                            "key": key,
                            "name": draw(st.sampled_from(["Old name", "New name"])),
                            "version": draw(st.integers(1, 3)),
                        },
                        "content": {"title": "Hello", "body": f"Body of {message_id}"},
                    }
                )
            )
        kinds = st.sampled_from(["delivered", "read", "clicked", "failed", "responded", "reported"])
        for kind in draw(st.lists(kinds, max_size=5)):
            if kind == "delivered":
                events.append(NotificationDelivered(**envelope(), **ids))
            elif kind == "read":
                events.append(NotificationRead(**envelope(), **ids))
            elif kind == "clicked":
                events.append(NotificationClicked(**envelope(), **ids, button_id="b1"))
            elif kind == "failed":
                code = draw(st.sampled_from(["E1", "E2"]))
                events.append(NotificationFailed(**envelope(), **ids, code=code, reason="r"))
            elif kind == "reported":
                word = draw(st.sampled_from(["queued", "archived"]))
                events.append(
                    NotificationStatus(**envelope(), **ids, status=word, reported_by="Twilio")
                )
            else:
                events.append(
                    NotificationResponded.model_validate(
                        {
                            **envelope(),
                            **ids,
                            "response": {
                                "type": "reply",
                                "value": draw(st.sampled_from(["yes", "no"])),
                            },
                        }
                    )
                )
    for user_id in USERS:
        for _ in range(draw(st.integers(0, 3))):
            events.append(
                UserUpserted(
                    **envelope(),
                    user_id=user_id,
                    phone_number=draw(st.sampled_from([None, "+14155550171", "+821012345678"])),
                    nickname=draw(st.sampled_from(NICKNAMES)),
                    source=draw(st.sampled_from(["platform", "import:a", "import:b"])),
                )
            )
    for _ in range(draw(st.integers(0, 3))):
        events.append(
            TemplateUpserted.model_validate(
                {
                    **envelope(),
                    "template": {
                        "key": draw(st.sampled_from(TEMPLATE_KEYS)),
                        "name": draw(st.sampled_from(["Defined A", "Defined B"])),
                        "version": draw(st.integers(1, 3)),
                        "channels": draw(
                            st.sampled_from([{}, {"push": {"title": "T", "body": "{{x}}"}}])
                        ),
                    },
                }
            )
        )
    return events


async def _optional(work: Any) -> Any:
    try:
        return (await work).model_dump(mode="json")
    except NotFound:
        return None


async def _pages(list_page: Any) -> list[Any]:
    """Every item of a list read one small page at a time, so the cursors are compared too."""
    items: list[Any] = []
    after = None
    while True:
        page = await list_page(after)
        items += [item.model_dump(mode="json") for item in page.items]
        if page.next_position is None:
            return items
        after = page.next_position


async def visible_state(service: QueryService, app: str = APP) -> dict[str, Any]:
    """Everything the query API shows for the app."""
    state: dict[str, Any] = {}
    state["recent"] = await _pages(
        lambda after: service.search_users(app, q=None, limit=2, after=after)
    )
    for q in SEARCHES:
        found = await service.search_users(app, q=q, limit=200, after=None)
        state[f"search:{q}"] = [u.model_dump(mode="json") for u in found.items]
    state["search-paged:alex"] = await _pages(
        lambda after: service.search_users(app, q="alex", limit=1, after=after)
    )
    for user_id in USERS:
        state[f"user:{user_id}"] = await _optional(
            service.get_user(app, user_id, since="2026-11-01", until="2026-11-03")
        )
        for status in (None, *STATUSES):
            try:
                listed = await service.list_messages(
                    app, user_id, status=status, limit=200, after=None
                )
            except NotFound:
                state[f"messages:{user_id}:{status}"] = None
            else:
                state[f"messages:{user_id}:{status}"] = [
                    m.model_dump(mode="json") for m in listed.items
                ]
    if state["messages:alex:None"] is not None:
        state["messages-paged:alex"] = await _pages(
            lambda after: service.list_messages(app, "alex", limit=1, after=after)
        )
    for message_id in MESSAGES:
        state[f"message:{message_id}"] = await _optional(service.get_message(app, message_id))
    state["templates"] = await _pages(
        lambda after: service.list_templates(app, limit=1, after=after)
    )
    for key in TEMPLATE_KEYS:
        state[f"template:{key}"] = await _optional(service.get_template(app, key))
    return state


async def project_and_look(
    store: ProjectionStore,
    reader: InsightsReader,
    batches: Sequence[Sequence[AnyEvent]],
    app: str = APP,
) -> dict[str, Any]:
    projector = Projector(store)
    for batch in batches:
        await projector.handle([event.model_copy(update={"app_id": app}) for event in batch])
    service = QueryService(reader, settings=QuerySettings(), clock=lambda: NOW)
    return await visible_state(service, app)


async def state_after(batches: Sequence[Sequence[AnyEvent]]) -> dict[str, Any]:
    db = SqliteDatabase(":memory:")
    try:
        store = SqliteInsightsStore(db)
        return await project_and_look(store, store, batches)
    finally:
        db.close()


async def opensearch_state_after(
    url: str, prefix: str, app: str, batches: Sequence[Sequence[AnyEvent]]
) -> dict[str, Any]:
    """On the test's indices, as an app of its own (each example gets a new one)."""
    client = create_client(url)
    try:
        store = OpenSearchInsightsStore(client, prefix=prefix, refresh=True)
        return await project_and_look(store, store, batches, app)
    finally:
        await client.close()


async def create_indices(url: str, prefix: str) -> None:
    client = create_client(url)
    try:
        await OpenSearchInsightsStore(client, prefix=prefix).ensure_indices()
    finally:
        await client.close()


def arrivals(data: st.DataObject) -> tuple[list[AnyEvent], list[list[AnyEvent]]]:
    """A history, and the same events duplicated, shuffled and cut into batches."""
    events = data.draw(histories(), label="events")
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=8)) if events else []
    arrival = data.draw(st.permutations([*events, *duplicates]), label="arrival")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrival)), max_size=5), label="cuts"))
    bounds = [0, *cuts, len(arrival)]
    return events, [arrival[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize(
    ("backend", "examples"),
    [
        pytest.param("sqlite", 75, marks=pytest.mark.unit, id="sqlite"),
        # each example costs ~100 requests to OpenSearch; 25 keep the test around 20 s
        pytest.param("opensearch", 25, marks=pytest.mark.integration, id="opensearch"),
    ],
)
def test_any_order_and_duplication_give_the_same_projection(
    request: pytest.FixtureRequest, backend: str, examples: int
) -> None:
    if backend == "sqlite":

        def project(batches: list[list[AnyEvent]]) -> dict[str, Any]:
            return asyncio.run(state_after(batches))

    else:
        url: str = request.getfixturevalue("opensearch_url")
        prefix: str = request.getfixturevalue("os_prefix")
        asyncio.run(create_indices(url, prefix))
        apps = itertools.count()

        def project(batches: list[list[AnyEvent]]) -> dict[str, Any]:
            return asyncio.run(opensearch_state_after(url, prefix, f"p{next(apps)}", batches))

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        events, batches = arrivals(data)
        expected = asyncio.run(state_after([events]))
        assert project(batches) == expected

    check()


def facts_of(events: Sequence[AnyEvent], user_id: str) -> list[UserFact]:
    return [UserFact.of(e) for e in events if isinstance(e, UserUpserted) and e.user_id == user_id]


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_pure_folds_ignore_order_and_duplicates(data: st.DataObject) -> None:
    """The store happens to read events back in one order; the rules must not depend on it."""
    events = data.draw(histories(), label="events")
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=8)) if events else []
    arrival = data.draw(st.permutations([*events, *duplicates]), label="arrival")
    span = ActivitySpan(first=BASE, last=BASE + timedelta(minutes=9))
    for message_id in MESSAGES:
        mine = [e for e in events if getattr(e, "message_id", None) == message_id]
        theirs = [e for e in arrival if getattr(e, "message_id", None) == message_id]
        assert project_message(theirs) == project_message(mine)
    for user_id in USERS:
        assert project_user(user_id, facts_of(arrival, user_id), span) == project_user(
            user_id, facts_of(events, user_id), span
        )


@pytest.mark.unit
def test_the_generated_histories_exercise_the_hard_cases() -> None:
    """Guard against a generator that silently stops producing what the property needs."""
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None)
    @given(histories())
    def collect(events: list[AnyEvent]) -> None:
        by_message: dict[str, list[str]] = {}
        for event in events:
            seen.add(event.event_type)
            if hasattr(event, "message_id"):
                by_message.setdefault(event.message_id, []).append(event.event_type)
        for types in by_message.values():
            if "notification.sent" not in types:
                seen.add("events without their sent")
            if types.count("notification.sent") > 1:
                seen.add("two sent events")
        sent_to: dict[str, set[str]] = {}
        for event in events:
            if isinstance(event, NotificationSent):
                sent_to.setdefault(event.message_id, set()).add(event.user_id)
        if any(len(users) > 1 for users in sent_to.values()):
            seen.add("a message sent to two users")
        first_sent: dict[tuple[str, str], datetime] = {}
        for event in sorted(events, key=lambda e: e.occurred_at):
            if isinstance(event, NotificationSent):
                first_sent.setdefault((event.user_id, event.message_id), event.occurred_at)
        instants = [(user, at) for (user, _), at in first_sent.items()]
        if len(instants) > len(set(instants)):
            seen.add("two messages of a user sent at one instant")

    collect()
    assert {
        "notification.sent",
        "notification.failed",
        "notification.responded",
        "notification.status",
        "user.upserted",
        "template.upserted",
        "events without their sent",
        "two sent events",
        "a message sent to two users",
        "two messages of a user sent at one instant",
    } <= seen


class MemoryProjection:
    """A store in a few dicts, loading and saving only what a batch touches, as the real ones."""

    def __init__(self) -> None:
        self.messages: dict[MessageKey, StoredMessage] = {}
        self.projections: dict[MessageKey, MessageProjection] = {}
        self.users: dict[UserKey, StoredUser] = {}
        self.templates: dict[TemplateKey, TemplateVersion] = {}

    def apply(self, events: Sequence[AnyEvent]) -> None:
        keys = keys_of(events)
        messages = fold_messages(events, _some(self.messages, keys.messages))
        rest = {
            user: widen(
                m.span
                for key, m in self.messages.items()
                if key not in keys.messages and (key[0], m.user_id) == user
            )
            for user in messages.left
        }
        users = _some(self.users, keys.users | messages.users)
        user_changes = fold_users(events, messages, users, rest)
        origins = {key: v.origin for key, v in _some(self.templates, keys.templates).items()}
        versions = fold_templates(events, origins)
        for change in messages.changes:
            held = self.messages.get(change.key)
            every = {**(held.events if held else {}), **{e.event_id: e for e in change.added}}
            projection = change.projection
            if projection is None:
                self.messages[change.key] = StoredMessage(every, None, None)
                continue
            span = ActivitySpan(projection.first_event_at, projection.last_event_at)
            self.messages[change.key] = StoredMessage(every, projection.detail.user_id, span)
            self.projections[change.key] = projection
        for user in user_changes:
            if user.profile is None:
                self.users.pop(user.key, None)
            else:
                facts = {fact.event_id: fact for fact in user.facts}
                self.users[user.key] = StoredUser(facts, user.span, user.profile)
        for version in versions:
            self.templates[(version.app_id, version.key, version.version)] = version

    def state(self) -> dict[str, Any]:
        return {
            "messages": self.projections,
            "users": {key: user.profile for key, user in self.users.items()},
            "templates": self.templates,
        }


def _some(stored: dict[Any, T], keys: set[Any]) -> dict[Any, T]:
    return {key: stored[key] for key in keys if key in stored}


def defined_state(events: Sequence[AnyEvent]) -> dict[str, Any]:
    """The projection from its definition: each message from all its events, each user from
    all their facts and the span of the visible messages listed under them."""
    projections: dict[MessageKey, MessageProjection] = {}
    for message_id in MESSAGES:
        projection = project_message(
            e for e in events if getattr(e, "message_id", "") == message_id
        )
        if projection is not None:
            projections[(APP, message_id)] = projection
    users = {}
    for user_id in USERS:
        span = widen(
            ActivitySpan(p.first_event_at, p.last_event_at)
            for p in projections.values()
            if p.detail.user_id == user_id
        )
        profile = project_user(user_id, facts_of(events, user_id), span)
        if profile is not None:
            users[(APP, user_id)] = profile
    templates = {(v.app_id, v.key, v.version): v for v in best_versions(events)}
    return {"messages": projections, "users": users, "templates": templates}


@pytest.mark.unit
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
@given(data=st.data())
def test_the_fold_gives_the_defined_state_in_any_order_batching_and_duplication(
    data: st.DataObject,
) -> None:
    events, batches = arrivals(data)
    memory = MemoryProjection()
    for batch in batches:
        memory.apply(batch)
    assert memory.state() == defined_state(events)
