"""The query API over HTTP on each store: events in through the bus, JSON out.

Every test runs on SQLite and on OpenSearch (the `store` fixture's parameters mark them unit and
integration).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from insights_common.bus import InProcessBus
from insights_common.http.conventions import encode_cursor
from insights_common.sqlite.keys import SqliteKeyStore
from insights_query.app import EMBEDDED_PROJECTOR, build_projector
from insights_query.service import QueryService
from insights_query.settings import QuerySettings

API = "/api/v1"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


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
    client: httpx.AsyncClient,
    headers: dict[str, str],
    path: str,
    *,
    start: str | None = None,
    **params: Any,
) -> list[dict[str, Any]]:
    """Every item of a list (from the page at `start`), following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = start
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


# Signing in, before any caller is known: no route of these answers 401.
SIGN_IN_PATHS = {
    "/api/v1/session/options",
    "/api/v1/session/sso",
    "/api/v1/session/sso/callback",
}
ACCOUNT_PATHS = {
    *SIGN_IN_PATHS,
    "/api/v1/session",
    "/api/v1/sessions",
    "/api/v1/me",
    "/api/v1/members",
    "/api/v1/members/{email}",
    "/api/v1/audit",
    "/api/v1/settings/retention",
    "/api/v1/settings/sources",
    "/api/v1/settings/sources/{platform}",
}
REVEAL = {"/api/v1/users/{user_id}/phone"}
ERASE = "/api/v1/users/{user_id}"


async def test_every_route_shows_another_app_nothing(
    embedded: tuple[QueryService, FastAPI],
    bus: InProcessBus,
    client: httpx.AsyncClient,
    acme: dict[str, str],
    other: dict[str, str],
    ev: Any,
) -> None:
    await bus.publish(
        [
            ev.user("alex", "2026-11-01T09:00:00Z", phone="+14155550171", nickname="Alex Kim"),
            ev.template("order_shipped", 1, "2026-11-01T00:00:00Z", name="Order shipped"),
            ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
            ev.read("m1", "alex", "2026-11-02T10:01:00Z"),
        ]
    )
    ids = {"user_id": "alex", "message_id": "m1", "key": "order_shipped"}
    # every way of finding alex, and the export beside the list
    variants: dict[str, list[dict[str, str]]] = {
        "/api/v1/users": [
            {},
            {"q": "alex"},
            {"q": "Alex Kim"},
            {"q": "+14155550171"},
            {"q": "1 415 555 0171"},
        ],
        "/api/v1/users/{user_id}": [{}, {"since": "2026-11-01", "until": "2026-11-03"}],
        "/api/v1/users/{user_id}/messages": [{}, {"format": "csv"}],
    }
    walked = []
    for path, operations in embedded[1].openapi()["paths"].items():
        if path in ACCOUNT_PATHS:
            continue  # the caller's own app only, by construction (tests/unit/test_access.py)
        # revealing a phone is the one write, and takes a reason
        method, body = ("post", {"reason": "support call"}) if path in REVEAL else ("get", None)
        # erasing is the other write: another app's erase of the same id, below
        expected = {method} | ({"delete"} if path == ERASE else set())
        assert set(operations) == expected, f"{path}: only reads are expected here"
        url = path.format(**ids)
        for params in variants.get(path, [{}]):
            mine = await client.request(method, url, headers=acme, params=params, json=body)
            assert mine.status_code == 200, (url, params, mine.text)
            # the owner finds something there, so the other app's empty answer means something
            assert any(found in mine.text for found in ("alex", "m1", "order_shipped"))
            theirs = await client.request(method, url, headers=other, params=params, json=body)
            if "{" in path:
                assert theirs.status_code == 404, (url, params, theirs.text)
                assert theirs.headers["content-type"] == "application/problem+json"
            else:
                assert theirs.status_code == 200, (url, params, theirs.text)
                assert theirs.json() == {"items": [], "next_cursor": None}
            walked.append((path, tuple(params)))
    assert len(walked) == 14
    # another app erasing the same user id erases its own user of that id, never this one's
    assert (await client.delete(API + "/users/alex", headers=other)).status_code == 200
    assert (await get(client, acme, "/users/alex"))["nickname"] == "Alex Kim"
    assert (await get(client, acme, "/messages/m1"))["user_id"] == "alex"


# -- search ------------------------------------------------------------------------------------


PEOPLE = {
    "alex": {"phone": "+14155550171", "nickname": "Sam Lee"},
    "alex2": {"nickname": "Second"},
    "Alexandra": {},
    "kim1": {"nickname": "Alex Kim"},
    "jose1": {"nickname": "José Álvarez"},
    "kim2": {"nickname": "김철수", "phone": "+821012345678"},
    "cat": {"nickname": "행복한 고양이"},
    "wang": {"nickname": "王小明"},
    "jp1": {"nickname": "がっこう"},
    "vn1": {"nickname": "Nguyễn Văn An"},
    "de1": {"nickname": "Jürgen Straße"},
    "gr1": {"nickname": "Ελένη"},
    "p1": {"phone": "+14155550172"},
    "zed": {"nickname": "alexis"},
    # a user_id that is also a word of another user's nickname ("Sam Lee")
    "sam": {},
    "Samir": {"nickname": "Sam"},
}


@pytest.fixture
async def people(bus: InProcessBus, service: QueryService, ev: Any) -> None:
    await bus.publish(
        [ev.user(user_id, "2026-11-01T09:00:00Z", **known) for user_id, known in PEOPLE.items()]
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
        # user ids ignore case: an id equal to the query comes first, whatever its case
        ("ALEX", ["alex", "Alexandra", "alex2", "kim1", "zed"]),
        ("alexANDRA", ["Alexandra"]),
        ("SAMIR", ["Samir"]),
        # 'sam' is a user, a prefix of 'Samir' and a word of alex's nickname: each once, best rank
        ("sam", ["sam", "Samir", "alex"]),
        ("Sam L", ["alex"]),
        ("lee", ["alex"]),
        ("alex ki", ["kim1"]),
        ("nobody", []),
        # accents are ignored on Latin, Greek and Cyrillic letters, in the nickname and the query
        ("jose", ["jose1"]),
        ("JOSÉ", ["jose1"]),
        ("ÁLV", ["jose1"]),
        ("nguyen van", ["vn1"]),
        ("VĂN", ["vn1"]),
        ("jurgen", ["de1"]),
        ("strasse", ["de1"]),
        ("straß", ["de1"]),
        ("ελενη", ["gr1"]),
        ("ΕΛΈΝΗ", ["gr1"]),
        # the Japanese voicing mark is a letter of its own, not an accent
        ("がっ", ["jp1"]),
        ("かっこう", []),
        # Hangul: a prefix of any word, and of the given name inside a full name
        ("김", ["kim2"]),
        ("김철", ["kim2"]),
        ("철수", ["kim2"]),
        ("고양", ["cat"]),
        ("행복한 고", ["cat"]),
        ("양이", ["cat"]),
        # Chinese runs: any suffix is a word start
        ("小明", ["wang"]),
        ("王", ["wang"]),
        # phone numbers: the whole number, E.164 or its digits, with any formatting
        ("+14155550171", ["alex"]),
        ("14155550171", ["alex"]),
        ("+1 (415) 555-0172", ["p1"]),
        ("1-415-555-0172", ["p1"]),
        ("821012345678", ["kim2"]),
        ("+82 10 1234 5678", ["kim2"]),
        # never a part of one: a masked number cannot be read back digit by digit
        ("+1415555", []),
        ("1415555017", []),
        ("+8210", []),
        ("4155550171", []),
        ("141555501712", []),
    ],
)
async def test_search_finds_ids_nicknames_and_phone_numbers(
    client: httpx.AsyncClient, acme: dict[str, str], query: str, expected: list[str]
) -> None:
    found = await get(client, acme, "/users", q=query)
    assert [u["user_id"] for u in found["items"]] == expected


async def test_a_user_id_prefix_outranks_a_phone_match(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [
            ev.user("14155550171x", "2026-11-01T09:00:00Z"),
            ev.user("a", "2026-11-01T09:00:00Z", phone="+14155550171"),
            ev.user("b", "2026-11-01T09:00:00Z", nickname="14155550171 club"),
        ]
    )
    found = await get(client, acme, "/users", q="14155550171")
    assert [u["user_id"] for u in found["items"]] == ["14155550171x", "b", "a"]


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
    assert sorted(ids) == sorted([*PEOPLE, "ghost"])
    assert listed[0]["stats"] == {
        "sent": 1,
        "read": 1,
        "clicked": 0,
        "last_sent_at": "2026-11-05T10:00:00Z",
    }


# -- bad input ---------------------------------------------------------------------------------


def cursor_of(position: dict[str, Any]) -> str:
    return encode_cursor(position)


STATUSES = ["sent", "delivered", "read", "clicked", "failed"]
CHANNELS = ["in_app", "push", "sms", "alimtalk", "whatsapp", "email"]


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    ("path", "params", "name", "allowed", "fragment"),
    [
        ("/users", {"q": "x" * 201}, "q", None, "at most 200 characters"),
        ("/users", {"limit": "0"}, "limit", None, "from 1 to 200"),
        ("/users", {"limit": "201"}, "limit", None, "from 1 to 200"),
        ("/users", {"limit": "ten"}, "limit", None, "from 1 to 200 (got 'ten')"),
        ("/users", {"cursor": "not-a-cursor!"}, "cursor", None, "without cursor"),
        # a cursor of another list
        ("/users", {"q": "alex", "cursor": cursor_of({"k": "a"})}, "cursor", None, "cursor"),
        ("/users", {"cursor": cursor_of({"a": "last week", "u": "x"})}, "cursor", None, "cursor"),
        ("/users", {"q": "a", "cursor": cursor_of({"r": True, "u": "x"})}, "cursor", None, ""),
        # an instant that the offset moves out of the years 1 to 9999 in UTC
        (
            "/users",
            {"cursor": cursor_of({"a": "0001-01-01T00:00:00+01:00", "u": "x"})},
            "cursor",
            None,
            "without cursor",
        ),
        ("/users/alex", {"since": "2026-11-05", "until": "2026-11-01"}, "since", None, "swap"),
        ("/users/alex", {"since": "2025-01-01", "until": "2026-11-01"}, "until", None, "366"),
        ("/users/alex", {"since": "last week"}, "since", None, "RFC 3339"),
        ("/users/alex", {"until": "2026-11-02T10:00:00"}, "until", None, "time zone"),
        ("/users/alex", {"until": "2026-02-30"}, "until", None, "not a real date"),
        ("/users/alex", {"since": "9999-12-31T23:00:00-05:00"}, "since", None, "9999"),
        ("/users/alex/messages", {"status": "opened"}, "status", STATUSES, ", ".join(STATUSES)),
        ("/users/alex/messages", {"channel": "fax"}, "channel", CHANNELS, ", ".join(CHANNELS)),
        ("/users/alex/messages", {"format": "xlsx"}, "format", ["json", "csv"], "json, csv"),
        ("/users/alex/messages", {"since": "soon"}, "since", None, "RFC 3339"),
        (
            "/users/alex/messages",
            {"since": "2026-11-05", "until": "2026-11-01"},
            "since",
            None,
            "is after until",
        ),
        ("/users/alex/messages", {"template": "no spaces"}, "template", None, "template key"),
        ("/users/alex/messages", {"limit": "-1"}, "limit", None, "from 1 to 200"),
        ("/users/alex/messages", {"cursor": cursor_of({"s": 5, "m": "m1"})}, "cursor", None, ""),
        (
            "/users/alex/messages",
            {"cursor": cursor_of({"s": "yesterday", "m": "m1"})},
            "cursor",
            None,
            "",
        ),
        (
            "/users/alex/messages",
            {"cursor": cursor_of({"s": "2026-11-02T10:00:00", "m": "m1"})},
            "cursor",
            None,
            "",
        ),
        (
            "/users/alex/messages",
            {"cursor": cursor_of({"s": "9999-12-31T23:59:59-01:00", "m": "m1"})},
            "cursor",
            None,
            "without cursor",
        ),
        ("/templates", {"limit": "1000"}, "limit", None, "from 1 to 200"),
        ("/templates", {"cursor": "e30"}, "cursor", None, "cursor"),  # {}
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter_and_what_is_allowed(
    client: httpx.AsyncClient,
    acme: dict[str, str],
    path: str,
    params: dict[str, str],
    name: str,
    allowed: list[str] | None,
    fragment: str,
) -> None:
    variants = [params]
    if path.endswith("/messages") and not {"cursor", "limit", "format"} & set(params):
        variants.append({**params, "format": "csv"})  # the export checks before it streams
    for variant in variants:
        body = await problem(client, acme, path, 400, **variant)
        assert [error["loc"] for error in body["errors"]] == [["query", name]]
        assert body.get("allowed") == allowed
        assert name in body["detail"]
        assert fragment in body["detail"]


async def test_bad_parameters_without_a_key_are_401(client: httpx.AsyncClient) -> None:
    response = await client.get(API + "/users", params={"limit": "0", "q": "x" * 300})
    assert response.status_code == 401


async def test_several_bad_parameters_are_named_together(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    body = await problem(client, acme, "/users", 400, q="x" * 201, limit="0")
    assert sorted(error["loc"][1] for error in body["errors"]) == ["limit", "q"]
    assert "201 characters" in body["detail"]


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


async def test_window_bounds_are_inclusive_to_the_microsecond(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [
            ev.sent("early", "alex", "2026-11-02T09:59:59.999999Z"),
            ev.sent("at-since", "alex", "2026-11-02T10:00:00Z"),
            ev.sent("at-until", "alex", "2026-11-03T18:30:00.000001Z"),
            ev.sent("late", "alex", "2026-11-03T18:30:00.000002Z"),
        ]
    )
    bounds = {"since": "2026-11-02T10:00:00Z", "until": "2026-11-03T18:30:00.000001Z"}
    stats = (await get(client, acme, "/users/alex", **bounds))["stats"]
    assert stats["sent"] == 2
    assert stats["last_sent_at"] == "2026-11-03T18:30:00.000001Z"
    assert [(d["date"], d["sent"]) for d in stats["daily"]] == [
        ("2026-11-02", 1),
        ("2026-11-03", 1),
    ]
    listed = await get(client, acme, "/users/alex/messages", **bounds)
    assert [m["message_id"] for m in listed["items"]] == ["at-until", "at-since"]
    # the same instants written with an offset are the same bounds
    shifted = {"since": "2026-11-02T19:00:00+09:00", "until": "2026-11-03T13:30:00.000001-05:00"}
    assert (await get(client, acme, "/users/alex", **shifted))["stats"]["sent"] == 2


async def test_date_bounds_cover_whole_utc_days(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [
            ev.sent("last-of-oct", "alex", "2026-10-31T23:59:59.999999Z"),
            ev.sent("first-of-nov", "alex", "2026-11-01T00:00:00Z"),
            ev.sent("end-of-nov-2", "alex", "2026-11-02T23:59:59.999999Z"),
            ev.sent("nov-3", "alex", "2026-11-03T00:00:00Z"),
        ]
    )
    days = {"since": "2026-11-01", "until": "2026-11-02"}
    stats = (await get(client, acme, "/users/alex", **days))["stats"]
    assert stats["sent"] == 2
    assert stats["window"] == {
        "since": "2026-11-01T00:00:00Z",
        "until": "2026-11-02T23:59:59.999999Z",
    }
    listed = await get(client, acme, "/users/alex/messages", **days)
    assert [m["message_id"] for m in listed["items"]] == ["end-of-nov-2", "first-of-nov"]


async def test_daily_has_a_row_for_every_day_even_without_messages(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [
            ev.sent("m1", "alex", "2026-11-04T08:00:00Z"),
            ev.read("m1", "alex", "2026-11-05T08:00:00Z"),  # counted on the day it was sent
            ev.sent("m2", "alex", "2026-11-04T20:00:00Z"),
            ev.clicked("m2", "alex", "2026-11-04T20:01:00Z"),
        ]
    )
    week = await get(client, acme, "/users/alex", since="2026-11-01", until="2026-11-07")
    assert week["stats"]["daily"] == [
        {
            "date": f"2026-11-0{n}",
            "sent": 2 if n == 4 else 0,
            "read": 2 if n == 4 else 0,
            "clicked": 1 if n == 4 else 0,
        }
        for n in range(1, 8)
    ]
    quiet = await get(client, acme, "/users/alex", since="2026-10-01", until="2026-10-31")
    assert len(quiet["stats"]["daily"]) == 31
    assert {(d["sent"], d["read"], d["clicked"]) for d in quiet["stats"]["daily"]} == {(0, 0, 0)}
    # the first and last years the calendar has
    for since, until in (("0001-01-01", "0001-01-03"), ("9999-12-29", "9999-12-31")):
        edge = (await get(client, acme, "/users/alex", since=since, until=until))["stats"]
        assert (edge["sent"], len(edge["daily"])) == (0, 3)


async def test_rates_without_a_denominator_are_null(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [
            ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
            ev.failed("m1", "alex", "2026-11-02T10:00:01Z", code="invalid_number"),
            # a reply without a delivery report: counted, but no rate over deliveries
            ev.sent("m2", "alex", "2026-11-02T11:00:00Z", channel="sms"),
            ev.responded("m2", "alex", "2026-11-02T11:05:00Z", type="reply", value="STOP"),
        ]
    )
    window = {"since": "2026-11-01", "until": "2026-11-03"}
    stats = (await get(client, acme, "/users/alex", **window))["stats"]
    assert [stats[k] for k in ("sent", "delivered", "failed", "responded")] == [2, 0, 1, 1]
    assert stats["delivery_rate"] == 0.0
    assert (stats["read_rate"], stats["click_rate"], stats["response_rate"]) == (None, None, None)
    assert stats["last_engaged_at"] == "2026-11-02T11:05:00Z"
    empty = await get(client, acme, "/users/alex", since="2026-10-01", until="2026-10-02")
    rates = ("delivery_rate", "read_rate", "click_rate", "response_rate")
    assert [empty["stats"][k] for k in rates] == [None] * 4
    assert (empty["stats"]["last_sent_at"], empty["stats"]["last_engaged_at"]) == (None, None)
    assert (empty["stats"]["by_channel"], empty["stats"]["by_template"]) == ([], [])


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
        "failure": {
            "code": "E_TOKEN",
            "reason": "expired",
            "explanation": None,
            "explained_by": None,
            "at": "2026-11-04T09:00:01Z",
        },
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


async def test_pages_neither_repeat_nor_skip_when_newer_and_older_messages_arrive(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [ev.sent(f"m{n:02d}", "alex", f"2026-11-{n:02d}T10:00:00Z") for n in range(1, 11)]
    )
    existing = {f"m{n:02d}" for n in range(1, 11)}
    first = await get(client, acme, "/users/alex/messages", limit=4)
    assert [m["message_id"] for m in first["items"]] == ["m10", "m09", "m08", "m07"]
    await bus.publish(
        [
            ev.sent("new-newest", "alex", "2026-11-20T10:00:00Z"),
            ev.sent("new-oldest", "alex", "2026-10-01T10:00:00Z"),
            ev.sent("new-between", "alex", "2026-11-05T12:00:00Z"),
            # at the instant of the last item shown: before it (a larger id) or after it
            ev.sent("m07z", "alex", "2026-11-07T10:00:00Z"),
            ev.sent("m00", "alex", "2026-11-07T10:00:00Z"),
            # a message shown on the first page changes status; one not shown yet too
            ev.read("m08", "alex", "2026-11-15T10:00:00Z"),
            ev.failed("m03", "alex", "2026-11-15T10:00:00Z", code="E1"),
        ]
    )
    rest = await walk(client, acme, "/users/alex/messages", limit=4, start=first["next_cursor"])
    ids = [m["message_id"] for m in first["items"] + rest]
    assert len(ids) == len(set(ids)), ids
    assert existing <= set(ids)
    # what came after the first page is what sorts after its last item, in order
    assert [m["message_id"] for m in rest] == [
        "m00",
        "m06",
        "new-between",
        "m05",
        "m04",
        "m03",
        "m02",
        "m01",
        "new-oldest",
    ]
    assert [m["status"] for m in rest if m["message_id"] == "m03"] == ["failed"]


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
        "failure_explanation",
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
        "",
    ]
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)
    sms = list(csv.reader(io.StringIO(filtered.text)))
    assert [r[0] for r in sms[1:]] == ["m6", "m5", "m4", "m3", "m2"]


class CountingReader:
    """The real store, counting the pages an export asks it for."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.pages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def list_messages(self, *args: Any, **kwargs: Any) -> Any:
        self.pages += 1
        return await self.store.list_messages(*args, **kwargs)


async def test_csv_export_reads_one_page_at_a_time_as_it_streams(
    store: Any, bus: InProcessBus, ev: Any
) -> None:
    build_projector(store=store, bus=bus, group=EMBEDDED_PROJECTOR, settings=QuerySettings())
    await bus.publish([ev.sent(f"m{n}", "alex", f"2026-11-0{n}T10:00:00Z") for n in range(1, 6)])
    reader = CountingReader(store)
    service = QueryService(reader, settings=QuerySettings(export_page_size=2), clock=lambda: NOW)
    pages = await service.export_messages("acme", "alex")
    first = await anext(pages)
    assert [m.message_id for m in first] == ["m5", "m4"]
    assert reader.pages == 1  # nothing more is read before the first rows go out
    rest = [[m.message_id for m in page] async for page in pages]
    assert rest == [["m3", "m2"], ["m1"]]
    assert reader.pages == 3


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
        "failure": {
            "code": "E_RATE",
            "reason": "throttled",
            "explanation": None,
            "explained_by": None,
            "at": "2026-11-02T10:00:30Z",
        },
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


async def test_a_message_whose_earlier_sent_names_another_user_moves_to_that_user(
    bus: InProcessBus,
    client: httpx.AsyncClient,
    acme: dict[str, str],
    ev: Any,
) -> None:
    await bus.publish(
        [
            ev.user("bo", "2026-11-01T09:00:00Z", nickname="Bo"),
            ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
        ]
    )
    assert (await get(client, acme, "/users/alex"))["created_at"] == "2026-11-02T10:00:00Z"
    # the first sent wins whatever the order they come in: the message is bo's
    await bus.publish([ev.sent("m1", "bo", "2026-11-02T09:00:00Z")])
    assert (await get(client, acme, "/messages/m1"))["user_id"] == "bo"
    bo = await get(client, acme, "/users/bo", since="2026-11-01", until="2026-11-03")
    assert (bo["stats"]["sent"], bo["updated_at"]) == (1, "2026-11-01T09:00:00Z")
    assert [u["user_id"] for u in (await get(client, acme, "/users"))["items"]] == ["bo"]
    await problem(client, acme, "/users/alex", 404)


async def test_a_message_read_through_its_user_is_recorded_for_that_user(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [
            ev.user("alex", "2026-11-01T09:00:00Z", nickname="Alex"),
            ev.user("bo", "2026-11-01T09:00:00Z", nickname="Bo"),
            ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
        ]
    )
    by_user = await get(client, acme, "/users/alex/messages/m1")
    assert by_user == await get(client, acme, "/messages/m1")
    # Another user's message, or none, is not found; the ask is recorded all the same.
    await problem(client, acme, "/users/bo/messages/m1", 404)
    await problem(client, acme, "/users/bo/messages/nope", 404)
    await problem(client, acme, "/messages/nope", 404)
    trail = await get(client, acme, "/audit", action="message.view")
    assert [(e["user_id"], e["detail"]) for e in trail["items"]] == [
        ("bo", "nope"),
        ("bo", "m1"),
        ("alex", "m1"),
        ("alex", "m1"),
    ]


async def test_a_user_a_message_left_keeps_the_activity_of_their_other_messages(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await bus.publish(
        [
            ev.user("bo", "2026-11-01T09:00:00Z", nickname="Bo"),
            ev.sent("m0", "alex", "2026-11-01T08:00:00Z"),
            ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
            ev.sent("m2", "cy", "2026-11-02T09:30:00Z"),
        ]
    )
    recent = await get(client, acme, "/users")
    assert [u["user_id"] for u in recent["items"]] == ["alex", "cy", "bo"]
    await bus.publish([ev.sent("m1", "bo", "2026-11-02T09:00:00Z")])
    # alex's last activity is m0's again; bo has m1, whose last event is alex's later sent
    recent = await get(client, acme, "/users")
    assert [u["user_id"] for u in recent["items"]] == ["bo", "cy", "alex"]
    alex = await get(client, acme, "/users/alex", since="2026-11-01", until="2026-11-03")
    assert (alex["created_at"], alex["stats"]["sent"]) == ("2026-11-01T08:00:00Z", 1)
    assert [
        m["message_id"] for m in (await get(client, acme, "/users/alex/messages"))["items"]
    ] == ["m0"]


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
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if method == "get":
                assert "422" not in responses, path  # a bad parameter is a 400
            assert "401" in responses or path in SIGN_IN_PATHS, path
            for status, answer in responses.items():
                if not status.startswith(("2", "3")):  # a redirect has no body
                    assert "application/problem+json" in answer["content"], (path, status)
