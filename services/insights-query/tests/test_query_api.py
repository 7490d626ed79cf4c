"""The query API over HTTP on each store: events in through the bus, JSON out.

Every test runs on SQLite and on OpenSearch (the `store` fixture's parameters mark them unit and
integration).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from insights_common.auth import SqliteKeyStore
from insights_common.bus import InProcessBus
from insights_query.service import QueryService
from insights_query.settings import QuerySettings

API = "/api/v1"


async def get(client: httpx.AsyncClient, headers: dict[str, str], path: str, **params: Any) -> Any:
    response = await client.get(API + path, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def problem(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, expected: int, **params: Any
) -> dict[str, Any]:
    response = await client.get(API + path, headers=headers, params=params)
    assert response.status_code == expected, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def walk(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, **params: Any
) -> list[dict[str, Any]]:
    """Every item of a list, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page = await get(client, headers, path, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the list never ended")


# -- auth and tenancy --------------------------------------------------------------------------


async def test_every_call_needs_an_api_key(client: httpx.AsyncClient) -> None:
    response = await client.get(API + "/users")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    response = await client.get(API + "/templates", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


async def test_another_app_sees_nothing(
    bus: InProcessBus,
    client: httpx.AsyncClient,
    acme: dict[str, str],
    other: dict[str, str],
    keys: SqliteKeyStore,
    ev: Any,
    other_ev: Any,
) -> None:
    await bus.publish(
        [
            ev.user("alex", "2026-11-01T09:00:00Z", phone="+14155550171", nickname="Alex"),
            ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
            ev.template("order_shipped", 2, "2026-11-01T00:00:00Z", name="Order shipped"),
            other_ev.sent("m9", "alex", "2026-11-03T10:00:00Z", key="welcome"),
        ]
    )
    assert [u["user_id"] for u in (await get(client, other, "/users", q="alex"))["items"]] == [
        "alex"
    ]
    other_alex = await get(client, other, "/users/alex", since="2026-11-01", until="2026-11-05")
    assert other_alex["nickname"] is None
    assert other_alex["phone_number"] is None
    assert other_alex["stats"]["sent"] == 1
    assert other_alex["stats"]["by_template"][0]["key"] == "welcome"
    await problem(client, other, "/messages/m1", 404)
    await problem(client, acme, "/messages/m9", 404)
    other_messages = await get(client, other, "/users/alex/messages")
    assert [m["message_id"] for m in other_messages["items"]] == ["m9"]
    assert [t["key"] for t in (await get(client, other, "/templates"))["items"]] == ["welcome"]
    await problem(client, other, "/templates/order_shipped", 404)
    assert (await get(client, other, "/users", q="Alex"))["items"][0]["nickname"] is None
    # an app with no data at all
    third = {"Authorization": f"Bearer {await keys.create_api_key('third')}"}
    assert (await get(client, third, "/users"))["items"] == []
    assert (await get(client, third, "/templates"))["items"] == []
    await problem(client, third, "/users/alex", 404)


# -- search ------------------------------------------------------------------------------------


@pytest.fixture
async def people(bus: InProcessBus, service: QueryService, ev: Any) -> None:
    at = "2026-11-01T09:00:00Z"
    await bus.publish(
        [
            ev.user("alex", at, phone="+14155550171", nickname="Sam Lee"),
            ev.user("alex2", at, nickname="Second"),
            ev.user("Alexandra", at),
            ev.user("kim1", at, nickname="Alex Kim"),
            ev.user("jose1", at, nickname="José Álvarez"),
            ev.user("kim2", at, nickname="김철수", phone="+821012345678"),
            ev.user("wang", at, nickname="王小明"),
            ev.user("p1", at, phone="+14155550172"),
            ev.user("zed", at, nickname="alexis"),
        ]
    )


@pytest.mark.usefixtures("people")
async def test_search_ranks_exact_then_prefix_then_nickname_then_phone(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    found = await get(client, acme, "/users", q="alex")
    assert [u["user_id"] for u in found["items"]] == ["alex", "Alexandra", "alex2", "kim1", "zed"]
    first = found["items"][0]
    assert first == {
        "user_id": "alex",
        "nickname": "Sam Lee",
        "phone_number": "+1 415-***-**71",
        "stats": {"sent": 0, "read": 0, "clicked": 0, "last_sent_at": None},
    }
    # the same order page by page
    paged = await walk(client, acme, "/users", q="alex", limit=1)
    assert [u["user_id"] for u in paged] == ["alex", "Alexandra", "alex2", "kim1", "zed"]


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("jose", ["jose1"]),
        ("ÁLV", ["jose1"]),
        ("김", ["kim2"]),
        ("김철", ["kim2"]),
        ("小明", ["wang"]),
        ("王", ["wang"]),
        ("alex ki", ["kim1"]),
        ("+1415555", ["alex", "p1"]),
        ("1415555017", ["alex", "p1"]),
        ("+1 415 555 0172", ["p1"]),
        ("+8210", ["kim2"]),
        ("nobody", []),
        ("lee", ["alex"]),
    ],
)
async def test_search_finds_nicknames_and_phone_numbers(
    client: httpx.AsyncClient, acme: dict[str, str], query: str, expected: list[str]
) -> None:
    found = await get(client, acme, "/users", q=query)
    assert [u["user_id"] for u in found["items"]] == expected


async def test_a_user_id_prefix_outranks_a_phone_match(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [
            ev.user("1415x", "2026-11-01T09:00:00Z"),
            ev.user("a", "2026-11-01T09:00:00Z", phone="+14155550171"),
            ev.user("b", "2026-11-01T09:00:00Z", nickname="1415 club"),
        ]
    )
    found = await get(client, acme, "/users", q="1415")
    assert [u["user_id"] for u in found["items"]] == ["1415x", "b", "a"]


@pytest.mark.usefixtures("people")
async def test_blank_query_lists_users_by_recent_activity(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [
            ev.sent("m1", "p1", "2026-11-05T10:00:00Z"),
            ev.read("m1", "p1", "2026-11-05T11:00:00Z"),
            ev.user("wang", "2026-11-04T10:00:00Z", nickname="王小明"),
            ev.sent("m2", "ghost", "2026-11-03T10:00:00Z"),
        ]
    )
    listed = await walk(client, acme, "/users", q="  ", limit=3)
    ids = [u["user_id"] for u in listed]
    assert ids[:3] == ["p1", "wang", "ghost"]
    assert sorted(ids) == sorted(
        ["alex", "alex2", "Alexandra", "kim1", "jose1", "kim2", "wang", "p1", "zed", "ghost"]
    )
    assert listed[0]["stats"] == {
        "sent": 1,
        "read": 1,
        "clicked": 0,
        "last_sent_at": "2026-11-05T10:00:00Z",
    }


async def test_search_rejects_overlong_queries_and_bad_cursors(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    body = await problem(client, acme, "/users", 422, q="x" * 201)
    assert body["errors"][0]["loc"] == ["query", "q"]
    await get(client, acme, "/users", q="x" * 200)
    await problem(client, acme, "/users", 400, cursor="not-a-cursor!")
    await problem(client, acme, "/users", 422, limit=201)
    await problem(client, acme, "/users", 422, limit=0)
    # a cursor of another list
    templates_cursor = "eyJrIjoiYSJ9"  # {"k":"a"}
    await problem(client, acme, "/users", 400, q="alex", cursor=templates_cursor)


# -- user profile and statistics ---------------------------------------------------------------


@pytest.fixture
async def history(bus: InProcessBus, service: QueryService, ev: Any) -> None:
    await bus.publish(
        [
            ev.user("alex", "2026-10-01T08:00:00Z", phone="+14155550171", source="import:imp1"),
            ev.user("alex", "2026-10-05T08:00:00Z", nickname="Alex Kim", source="platform"),
            ev.user("alex", "2026-10-09T08:00:00Z", nickname="Alex K.", source="import:imp2"),
            ev.template("welcome", 1, "2026-10-01T00:00:00Z", name="Welcome!"),
            # inside the window
            ev.sent("m1", "alex", "2026-11-02T10:00:00Z", channel="push"),
            ev.delivered("m1", "alex", "2026-11-02T10:00:05Z"),
            ev.clicked("m1", "alex", "2026-11-02T10:07:00Z", button_id="track"),
            ev.sent("m2", "alex", "2026-11-02T23:59:59Z", channel="sms", key="welcome"),
            ev.delivered("m2", "alex", "2026-11-03T00:00:10Z"),
            ev.responded("m2", "alex", "2026-11-03T00:02:00Z", type="reply", value="STOP"),
            ev.sent("m3", "alex", "2026-11-04T09:00:00Z", channel="push", key="welcome"),
            ev.failed("m3", "alex", "2026-11-04T09:00:01Z", code="E_TOKEN", reason="expired"),
            ev.sent("m4", "alex", "2026-11-04T12:00:00Z", channel="email"),
            ev.read("m4", "alex", "2026-11-04T13:00:00Z"),
            # outside the window on both sides
            ev.sent("m0", "alex", "2026-10-31T23:59:59Z"),
            ev.sent("m5", "alex", "2026-11-06T00:00:00Z"),
        ]
    )


@pytest.mark.usefixtures("history")
async def test_profile_and_stats_over_a_window(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    user = await get(client, acme, "/users/alex", since="2026-11-01", until="2026-11-05")
    assert {k: v for k, v in user.items() if k != "stats"} == {
        "user_id": "alex",
        "nickname": "Alex K.",
        "phone_number": "+1 415-***-**71",
        "phone_country": "US",
        "created_at": "2026-10-01T08:00:00Z",
        "updated_at": "2026-10-09T08:00:00Z",
        "imports": ["imp1", "imp2"],
    }
    stats = user["stats"]
    counts = ("sent", "delivered", "read", "clicked", "failed", "responded")
    assert [stats[k] for k in counts] == [4, 3, 2, 1, 1, 1]
    assert stats["delivery_rate"] == 0.75
    assert stats["read_rate"] == 0.6667
    assert stats["click_rate"] == 0.3333
    assert stats["response_rate"] == 0.3333
    assert stats["last_sent_at"] == "2026-11-04T12:00:00Z"
    assert stats["last_engaged_at"] == "2026-11-04T13:00:00Z"
    assert stats["by_channel"] == [
        {
            "channel": "push",
            "sent": 2,
            "delivered": 1,
            "read": 1,
            "clicked": 1,
            "failed": 1,
            "responded": 0,
        },
        {
            "channel": "email",
            "sent": 1,
            "delivered": 1,
            "read": 1,
            "clicked": 0,
            "failed": 0,
            "responded": 0,
        },
        {
            "channel": "sms",
            "sent": 1,
            "delivered": 1,
            "read": 0,
            "clicked": 0,
            "failed": 0,
            "responded": 1,
        },
    ]
    assert stats["by_template"] == [
        {
            "key": "order_shipped",
            "name": "Order shipped",
            "sent": 2,
            "delivered": 2,
            "read": 2,
            "clicked": 1,
            "failed": 0,
            "responded": 0,
        },
        {
            "key": "welcome",
            "name": "Welcome!",
            "sent": 2,
            "delivered": 1,
            "read": 0,
            "clicked": 0,
            "failed": 1,
            "responded": 1,
        },
    ]
    assert stats["daily"] == [
        {"date": "2026-11-01", "sent": 0, "read": 0, "clicked": 0},
        {"date": "2026-11-02", "sent": 2, "read": 1, "clicked": 1},
        {"date": "2026-11-03", "sent": 0, "read": 0, "clicked": 0},
        {"date": "2026-11-04", "sent": 2, "read": 1, "clicked": 0},
        {"date": "2026-11-05", "sent": 0, "read": 0, "clicked": 0},
    ]
    assert stats["window"] == {
        "since": "2026-11-01T00:00:00Z",
        "until": "2026-11-05T23:59:59.999999Z",
    }


@pytest.mark.usefixtures("history")
async def test_stats_window_accepts_date_times_and_defaults_to_thirty_days(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    narrow = await get(
        client, acme, "/users/alex", since="2026-11-02T10:00:00Z", until="2026-11-02T23:59:59Z"
    )
    assert narrow["stats"]["sent"] == 2
    assert [d["date"] for d in narrow["stats"]["daily"]] == ["2026-11-02"]
    # the clock of the test app says 2026-11-20T12:00Z
    default = await get(client, acme, "/users/alex")
    assert default["stats"]["window"] == {
        "since": "2026-10-22T00:00:00Z",
        "until": "2026-11-20T23:59:59.999999Z",
    }
    assert len(default["stats"]["daily"]) == 30
    assert default["stats"]["sent"] == 6
    empty = await get(client, acme, "/users/alex", since="2025-01-01", until="2025-01-02")
    assert empty["stats"]["sent"] == 0
    assert empty["stats"]["delivery_rate"] is None
    assert empty["stats"]["last_sent_at"] is None
    assert empty["stats"]["by_channel"] == []


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"since": "2026-11-05", "until": "2026-11-01"}, "after until"),
        ({"since": "2025-01-01", "until": "2026-11-01"}, "at most 366 days"),
        ({"since": "last week"}, "RFC 3339"),
        ({"until": "2026-11-02T10:00:00"}, "time zone"),
    ],
)
async def test_bad_stats_windows_are_422(
    client: httpx.AsyncClient, acme: dict[str, str], params: dict[str, str], fragment: str
) -> None:
    body = await problem(client, acme, "/users/alex", 422, **params)
    assert fragment in body["detail"]


async def test_unknown_ids_are_404(client: httpx.AsyncClient, acme: dict[str, str]) -> None:
    body = await problem(client, acme, "/users/nobody", 404)
    assert body["detail"] == "No user 'nobody' in this app."
    await problem(client, acme, "/users/nobody/messages", 404)
    await problem(client, acme, "/users/nobody/messages", 404, format="csv")
    await problem(client, acme, "/messages/nope", 404)
    await problem(client, acme, "/templates/nope", 404)


# -- message lists -----------------------------------------------------------------------------


@pytest.mark.usefixtures("history")
async def test_messages_newest_first_with_items(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    page = await get(client, acme, "/users/alex/messages")
    assert [m["message_id"] for m in page["items"]] == ["m5", "m4", "m3", "m2", "m1", "m0"]
    failed = page["items"][2]
    assert failed == {
        "message_id": "m3",
        "channel": "push",
        "template": {"key": "welcome", "name": "Order shipped", "version": 1},
        "title": "Your order shipped",
        "body_preview": "Order A-1001 is on its way",
        "status": "failed",
        "sent_at": "2026-11-04T09:00:00Z",
        "failure": {"code": "E_TOKEN", "reason": "expired", "at": "2026-11-04T09:00:01Z"},
    }


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, ["m3"]),
        ({"status": "clicked"}, ["m1"]),
        ({"status": "delivered"}, ["m2"]),
        ({"status": "sent"}, ["m5", "m0"]),
        ({"channel": "push"}, ["m5", "m3", "m1", "m0"]),
        ({"template": "welcome"}, ["m3", "m2"]),
        ({"template": "welcome", "channel": "sms"}, ["m2"]),
        ({"since": "2026-11-04"}, ["m5", "m4", "m3"]),
        ({"until": "2026-11-02"}, ["m2", "m1", "m0"]),
        ({"since": "2026-11-02T10:00:00Z", "until": "2026-11-04T09:00:00Z"}, ["m3", "m2", "m1"]),
        ({"status": ""}, ["m5", "m4", "m3", "m2", "m1", "m0"]),
    ],
)
async def test_message_filters(
    client: httpx.AsyncClient, acme: dict[str, str], params: dict[str, str], expected: list[str]
) -> None:
    items = await walk(client, acme, "/users/alex/messages", limit=2, **params)
    assert [m["message_id"] for m in items] == expected


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    ("params", "name", "allowed"),
    [
        ({"status": "opened"}, "status", ["sent", "delivered", "read", "clicked", "failed"]),
        ({"channel": "fax"}, "channel", ["in_app", "push", "sms", "alimtalk", "whatsapp", "email"]),
        ({"since": "soon"}, "since", None),
        ({"since": "2026-11-05", "until": "2026-11-01"}, "since", None),
        ({"template": "no spaces"}, "template", None),
    ],
)
async def test_bad_message_filters_are_422_naming_what_is_allowed(
    client: httpx.AsyncClient,
    acme: dict[str, str],
    params: dict[str, str],
    name: str,
    allowed: list[str] | None,
) -> None:
    for extra in ({}, {"format": "csv"}):
        body = await problem(client, acme, "/users/alex/messages", 422, **params, **extra)
        assert body["errors"][0]["loc"] == ["query", name]
        assert body.get("allowed") == allowed
        if allowed:
            assert ", ".join(allowed) in body["detail"]
    body = await problem(client, acme, "/users/alex/messages", 422, format="xlsx")
    assert "csv" in body["detail"]


async def test_message_cursor_is_stable_when_new_messages_arrive(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish([ev.sent(f"m{n}", "alex", f"2026-11-0{n}T10:00:00Z") for n in range(1, 6)])
    # two messages share a sent_at: message_id breaks the tie
    await bus.publish([ev.sent("m3b", "alex", "2026-11-03T10:00:00Z")])
    first = await get(client, acme, "/users/alex/messages", limit=2)
    assert [m["message_id"] for m in first["items"]] == ["m5", "m4"]
    await bus.publish(
        [
            ev.sent("m9", "alex", "2026-11-09T10:00:00Z"),
            ev.sent("m6", "alex", "2026-11-06T10:00:00Z"),
        ]
    )
    second = await get(client, acme, "/users/alex/messages", limit=2, cursor=first["next_cursor"])
    assert [m["message_id"] for m in second["items"]] == ["m3b", "m3"]
    third = await get(client, acme, "/users/alex/messages", limit=2, cursor=second["next_cursor"])
    assert [m["message_id"] for m in third["items"]] == ["m2", "m1"]
    assert third["next_cursor"] is None


# -- CSV export --------------------------------------------------------------------------------


async def test_csv_export_streams_every_page_spreadsheet_safe(
    wiring: Any, bus: InProcessBus, acme: dict[str, str], ev: Any
) -> None:
    _, app = wiring(QuerySettings(export_page_size=2))
    await bus.publish(
        [
            ev.sent(
                "=m1",
                "alex",
                "2026-11-01T10:00:00Z",
                title="=cmd|' /C calc'!A0",
                body='+1 more, "quoted"\nsecond line',
            ),
            ev.failed("=m1", "alex", "2026-11-01T10:00:01Z", code="-1", reason="@bad"),
            *[
                ev.sent(f"m{n}", "alex", f"2026-11-0{n}T10:00:00Z", channel="sms")
                for n in range(2, 7)
            ],
            ev.sent("x1", "alex", "2026-11-07T10:00:00Z", channel="email"),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(API + "/users/alex/messages?format=csv", headers=acme)
        filtered = await client.get(
            API + "/users/alex/messages", params={"format": "csv", "channel": "sms"}, headers=acme
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="messages-alex.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == [
        "message_id",
        "sent_at",
        "channel",
        "template_key",
        "template_version",
        "status",
        "title",
        "body",
        "failure_code",
        "failure_reason",
    ]
    assert [r[0] for r in rows[1:]] == ["x1", "m6", "m5", "m4", "m3", "m2", "'=m1"]
    assert rows[-1] == [
        "'=m1",
        "2026-11-01T10:00:00Z",
        "push",
        "order_shipped",
        "1",
        "failed",
        "'=cmd|' /C calc'!A0",
        '\'+1 more, "quoted"\nsecond line',
        "'-1",
        "'@bad",
    ]
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)
    sms = list(csv.reader(io.StringIO(filtered.text)))
    assert [r[0] for r in sms[1:]] == ["m6", "m5", "m4", "m3", "m2"]


# -- message details ---------------------------------------------------------------------------


async def test_message_detail_with_timeline_failure_and_responses(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    button = {"id": "track", "label": "Track", "url": "https://example.com/t"}
    await bus.publish(
        [
            ev.read("m1", "alex", "2026-11-02T10:03:00Z"),
            ev.responded(
                "m1", "alex", "2026-11-02T10:09:00Z", type="button", value="track", label="Track"
            ),
            ev.clicked(
                "m1", "alex", "2026-11-02T10:08:00Z", button_id="track", url="https://example.com/t"
            ),
        ]
    )
    # nothing is shown before the sent event arrives
    await problem(client, acme, "/messages/m1", 404)
    assert (await get(client, acme, "/users", q="alex"))["items"] == []
    await bus.publish(
        [
            ev.sent(
                "m1",
                "alex",
                "2026-11-02T10:00:00Z",
                buttons=(button,),
                variables={"order": "A-1001"},
                version=3,
            ),
            ev.failed("m1", "alex", "2026-11-02T10:00:30Z", code="E_RATE", reason="throttled"),
            ev.delivered("m1", "alex", "2026-11-02T10:01:00Z"),
        ]
    )
    detail = await get(client, acme, "/messages/m1")
    assert detail == {
        "message_id": "m1",
        "user_id": "alex",
        "channel": "push",
        "template": {
            "key": "order_shipped",
            "name": "Order shipped",
            "version": 3,
            "variables": {"order": "A-1001"},
        },
        "content": {
            "title": "Your order shipped",
            "body": "Order A-1001 is on its way",
            "buttons": [button],
        },
        "status": "clicked",
        "sent_at": "2026-11-02T10:00:00Z",
        "timeline": [
            {"status": "sent", "at": "2026-11-02T10:00:00Z", "detail": None},
            {"status": "failed", "at": "2026-11-02T10:00:30Z", "detail": "E_RATE: throttled"},
            {"status": "delivered", "at": "2026-11-02T10:01:00Z", "detail": None},
            {"status": "read", "at": "2026-11-02T10:03:00Z", "detail": None},
            {
                "status": "clicked",
                "at": "2026-11-02T10:08:00Z",
                "detail": "Track (https://example.com/t)",
            },
            {"status": "responded", "at": "2026-11-02T10:09:00Z", "detail": "Track (track)"},
        ],
        "failure": {"code": "E_RATE", "reason": "throttled", "at": "2026-11-02T10:00:30Z"},
        "responses": [
            {"type": "button", "value": "track", "label": "Track", "at": "2026-11-02T10:09:00Z"}
        ],
    }
    # the user now exists, known only from the message
    user = await get(client, acme, "/users/alex", since="2026-11-01", until="2026-11-03")
    assert (user["nickname"], user["phone_number"], user["created_at"]) == (
        None,
        None,
        "2026-11-02T10:00:00Z",
    )
    assert user["stats"]["responded"] == 1


# -- templates ---------------------------------------------------------------------------------


async def test_templates_catalog_and_versions_with_counts(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    push = {"push": {"title": "Hi {{name}}", "body": "Welcome, {{name}}"}}
    await bus.publish(
        [
            ev.template(
                "welcome",
                1,
                "2026-10-01T00:00:00Z",
                name="Welcome",
                channels=push,
                variable_schema=[{"key": "name", "type": "string", "name": "Name"}],
            ),
            ev.template("welcome", 2, "2026-10-02T00:00:00Z", name="Welcome v2", channels=push),
            ev.template("a_first", 1, "2026-10-02T00:00:00Z", name="A"),
        ]
    )
    await bus.publish(
        [
            ev.sent("m1", "alex", "2026-11-01T10:00:00Z", key="welcome", version=1, name="Old"),
            ev.read("m1", "alex", "2026-11-01T10:01:00Z"),
            ev.sent("m2", "bo", "2026-11-01T11:00:00Z", key="welcome", version=2),
            ev.clicked("m2", "bo", "2026-11-01T11:01:00Z"),
            ev.sent("m3", "bo", "2026-11-01T12:00:00Z", key="welcome", version=2),
            # a version only seen in a sent snapshot
            ev.sent(
                "m4", "bo", "2026-11-01T13:00:00Z", key="welcome", version=3, name="Welcome v3"
            ),
            ev.sent("m5", "bo", "2026-11-01T14:00:00Z", key="promo", version=7, name="Promo"),
        ]
    )
    catalog = await get(client, acme, "/templates")
    assert catalog["items"] == [
        {"key": "a_first", "name": "A", "latest_version": 1, "sent": 0, "read": 0, "clicked": 0},
        {"key": "promo", "name": "Promo", "latest_version": 7, "sent": 1, "read": 0, "clicked": 0},
        {
            "key": "welcome",
            "name": "Welcome v3",
            "latest_version": 3,
            "sent": 4,
            "read": 2,
            "clicked": 1,
        },
    ]
    paged = await walk(client, acme, "/templates", limit=2)
    assert [t["key"] for t in paged] == ["a_first", "promo", "welcome"]
    welcome = await get(client, acme, "/templates/welcome")
    assert welcome["key"] == "welcome"
    assert welcome["name"] == "Welcome v3"
    assert [
        (v["version"], v["name"], v["sent"], v["read"], v["clicked"]) for v in welcome["versions"]
    ] == [
        (3, "Welcome v3", 1, 0, 0),
        (2, "Welcome v2", 2, 1, 1),
        (1, "Welcome", 1, 1, 0),
    ]
    v1 = welcome["versions"][2]
    assert v1["channels"] == {
        "push": {"title": "Hi {{name}}", "body": "Welcome, {{name}}", "buttons": []}
    }
    assert v1["variable_schema"] == [{"key": "name", "type": "string", "name": "Name"}]
    assert welcome["versions"][0]["channels"] == {}


def test_openapi_documents_every_query_route(embedded: tuple[QueryService, FastAPI]) -> None:
    paths = embedded[1].openapi()["paths"]
    assert {
        "/api/v1/users",
        "/api/v1/users/{user_id}",
        "/api/v1/users/{user_id}/messages",
        "/api/v1/messages/{message_id}",
        "/api/v1/templates",
        "/api/v1/templates/{key}",
    } <= set(paths)
    assert (
        "text/csv"
        in paths["/api/v1/users/{user_id}/messages"]["get"]["responses"]["200"]["content"]
    )
