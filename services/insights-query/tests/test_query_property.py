"""Any order and any duplication of the same events gives the same API-visible state.

On each store: the state after the events arrive shuffled, duplicated and cut into batches must
equal what SQLite shows after the events in one batch. So OpenSearch is held both to order
independence and to showing what SQLite shows.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insights_common.sqlite import SqliteDatabase
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
from insights_query.domain.messages import STATUSES, project_message
from insights_query.domain.users import ActivitySpan, UserFact, project_user
from insights_query.ports import InsightsReader, ProjectionStore
from insights_query.service import Projector, QueryService
from insights_query.settings import QuerySettings

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
            events.append(
                NotificationSent.model_validate(
                    {
                        **envelope(),
                        **ids,
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
        "two messages of a user sent at one instant",
    } <= seen
