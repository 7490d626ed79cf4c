"""Erasing a user, through the query API, on each store (SQLite: unit; OpenSearch: integration).

The conftest's clock stands still at NOW: the erase is dated NOW, the events below before it
(dropped when they come again) or after it (a new user).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from insights_common.bus import InProcessBus
from insights_contracts import UserErased
from insights_query.service import Projector

API = "/api/v1"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the conftest's clock
PHONE = "+14155550171"


async def _seed(bus: InProcessBus, ev: Any) -> None:
    await bus.publish(
        [
            ev.user("alex", "2026-11-01T09:00:00Z", phone=PHONE, nickname="Alex Kim"),
            ev.user("bo", "2026-11-01T09:00:00Z", phone="+14155550172", nickname="Bo"),
            ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
            ev.read("m1", "alex", "2026-11-02T10:05:00Z"),
            # before its sent: an event held, not shown
            ev.delivered("m2", "alex", "2026-11-03T10:00:00Z"),
            ev.sent("m3", "bo", "2026-11-02T11:00:00Z"),
        ]
    )


async def test_an_erased_user_is_gone_and_stays_gone(
    bus: InProcessBus, client: httpx.AsyncClient, acme: dict[str, str], ev: Any
) -> None:
    await _seed(bus, ev)
    response = await client.delete(f"{API}/users/alex", headers=acme)
    assert response.status_code == 200, response.text
    assert response.json()["complete"] is True
    assert (await client.get(f"{API}/users/alex", headers=acme)).status_code == 404
    assert (await client.get(f"{API}/messages/m1", headers=acme)).status_code == 404
    for q in ("alex", "Alex", PHONE):
        found = (await client.get(f"{API}/users", headers=acme, params={"q": q})).json()
        assert [u["user_id"] for u in found["items"]] == [], q
    # the others stay
    assert (await client.get(f"{API}/users/bo", headers=acme)).status_code == 200
    assert (await client.get(f"{API}/messages/m3", headers=acme)).status_code == 200

    # a replay of everything, and a late event, dated before the erase: dropped
    await _seed(bus, ev)
    await bus.publish([ev.sent("m2", "alex", "2026-11-03T09:59:00Z")])
    assert (await client.get(f"{API}/users/alex", headers=acme)).status_code == 404
    assert (await client.get(f"{API}/messages/m2", headers=acme)).status_code == 404

    # a new import after the erase makes a new user, with nothing of the old one
    later = NOW + timedelta(minutes=1)
    await bus.publish([ev.user("alex", later, phone="+14155550199", source="import:imp_2")])
    again = (await client.get(f"{API}/users/alex", headers=acme)).json()
    assert again["stats"]["sent"] == 0
    assert again["nickname"] is None


async def test_erase_needs_its_permission(
    client: httpx.AsyncClient, keys: Any, bus: InProcessBus, ev: Any
) -> None:
    await _seed(bus, ev)
    reader = {"Authorization": f"Bearer {await keys.create_api_key('acme', scopes=('read',))}"}
    response = await client.delete(f"{API}/users/alex", headers=reader)
    assert response.status_code == 403
    assert response.json()["permission"] == "erase_users"


async def test_the_projector_counts_what_it_drops(store: Any, ev: Any) -> None:
    projector = Projector(store)
    registry = CollectorRegistry()
    registry.register(projector.dropped)
    erase = UserErased(event_id="erase:1", app_id="acme", occurred_at=NOW, user_id="alex")
    # in one batch, in any order: the erase first, the event before it dropped
    await projector.handle([ev.sent("m1", "alex", "2026-11-02T10:00:00Z"), erase])
    await projector.handle([ev.read("m1", "alex", "2026-11-02T10:05:00Z")])
    dropped = registry.get_sample_value("insights_events_dropped_total", {"reason": "erased"})
    assert dropped == 2
    assert await store.get_message("acme", "m1") is None
    assert await store.erased([("acme", "alex"), ("acme", "bo")]) == {("acme", "alex"): NOW}


async def test_a_user_id_the_contract_refuses_is_a_problem(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    response = await client.delete(f"{API}/users/not%20an%20id", headers=acme)
    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == ["path", "user_id"]
    assert response.headers["content-type"] == "application/problem+json"


async def test_markers_are_found_however_many_the_app_has_against_the_batch(
    projecting: Any, ev: Any
) -> None:
    # However many markers an app has against the users a batch names (SQLite matches an app's
    # few markers in one read, and looks many up user by user), each store answers the same.
    store = projecting
    projector = Projector(store)
    gone = ["ana", "ben", "cy"]
    await projector.handle(
        [UserErased(event_id=f"erase:{u}", app_id="acme", occurred_at=NOW, user_id=u) for u in gone]
        + [UserErased(event_id="erase:g", app_id="globex", occurred_at=NOW, user_id="ben")]
    )
    assert await store.erased([("acme", "ben")]) == {("acme", "ben"): NOW}
    assert await store.erased([("acme", "ben"), ("acme", "dee")]) == {("acme", "ben"): NOW}
    everyone = [("acme", u) for u in [*gone, "dee", "eve"]] + [("globex", "ana"), ("initech", "x")]
    assert await store.erased(everyone) == {("acme", u): NOW for u in gone}
    # marked, then at once found, and what comes about them dated before is dropped
    await projector.handle(
        [UserErased(event_id="erase:dee", app_id="acme", occurred_at=NOW, user_id="dee")]
    )
    assert await store.erased(everyone) == {("acme", u): NOW for u in [*gone, "dee"]}
    await projector.handle([ev.sent("m9", "dee", "2026-11-02T10:00:00Z")])
    assert await store.get_message("acme", "m9") is None
