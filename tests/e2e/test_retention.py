"""Retention per app, in each mode: the CLI sets it and removes the older messages, the API
shows and changes it for admins, and the audit trail records every change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.dates import at
from tests.deployments import eventually_true
from tests.e2e.test_flow import event, post_events

if TYPE_CHECKING:
    from tests.conftest import Deployment

pytestmark = pytest.mark.e2e

API = "/api/v1"


def sent(event_id: str, message_id: str, user_id: str, when: str) -> dict[str, Any]:
    return event(
        "notification.sent",
        event_id,
        when,
        message_id=message_id,
        user_id=user_id,
        channel="push",
        template={"key": "order_shipped", "name": "Order shipped", "version": 1, "variables": {}},
        content={"title": "Shipped", "body": "On its way", "buttons": []},
    )


def status(api: httpx.Client, path: str) -> int:
    return api.get(f"{API}{path}").status_code


def test_retention_removes_older_messages_and_every_change_is_recorded(
    deployment: Deployment,
) -> None:
    key = deployment.cli("keys", "create", "--app", "acme")
    secret = deployment.cli("webhooks", "secret", "--app", "acme")
    old, recent = at("10:00:00", -40), at("10:00:00")  # 45 and 5 days ago
    events = [
        event(
            "user.upserted",
            "u-alex",
            at("09:00:00", -41),
            user_id="alex",
            nickname="Alex Kim",
            source="platform",
        ),
        sent("s-old", "m-old", "alex", old),
        sent("s-new", "m-new", "alex", recent),
        sent("s-ghost", "m-ghost", "ghost", old),
    ]
    assert post_events(deployment, secret, events).json()["accepted"] == len(events)

    with deployment.client(key) as api:
        eventually_true(
            lambda: (
                status(api, "/messages/m-old") == 200
                and status(api, "/messages/m-new") == 200
                and status(api, "/users/ghost") == 200
            )
        )
        assert api.get(f"{API}/settings/retention").json()["days"] is None

        printed = deployment.cli("apps", "set-retention", "--app", "acme", "--days", "30")
        assert "keeps messages 30 day(s)" in printed and "removed 2 message(s)" in printed
        assert "30 day(s)" in deployment.cli("apps", "show-retention", "--app", "acme")

        eventually_true(lambda: status(api, "/users/ghost") == 404)
        assert status(api, "/messages/m-old") == 404
        assert status(api, "/messages/m-new") == 200
        alex = api.get(f"{API}/users", params={"q": "alex"}).json()["items"][0]
        assert (alex["user_id"], alex["stats"]["sent"]) == ("alex", 1)

        assert api.get(f"{API}/settings/retention").json()["days"] == 30
        refused = api.put(f"{API}/settings/retention", json={"days": 0})
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert "from 1 to 36500" in refused.json()["detail"]
        assert api.put(f"{API}/settings/retention", json={"days": None}).json()["days"] is None
        assert "keeps every message" in deployment.cli("apps", "show-retention", "--app", "acme")

        trail = api.get(f"{API}/audit", params={"action": "retention.set"}).json()["items"]
        assert [e["detail"] for e in trail] == ["off", "30 days"]
        assert trail[0]["actor"].startswith("key:") and trail[1]["actor"].startswith("cli:")
