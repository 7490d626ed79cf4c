"""Another app's API key finds nothing of an app's data, on every route the API documents.

The routes come from the deployment's own OpenAPI document, so a route added later is walked
too, or fails this test until it says how another app must see it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.deployments import eventually_true
from tests.e2e.test_flow import LIFECYCLE, USERS_CSV, event, post_events, wait_for_import

if TYPE_CHECKING:
    from tests.conftest import Deployment

pytestmark = pytest.mark.e2e

API = "/api/v1"

# Ways to ask each route, beyond asking it plainly: every way search finds a user, the exports.
VARIANTS: dict[str, list[dict[str, str]]] = {
    "/users": [
        {},
        {"q": "alex"},
        {"q": "Alex Kim"},
        {"q": "+14155550171"},
        {"q": "1 (415) 555-0171"},
    ],
    "/users/{user_id}": [{}, {"since": "2026-11-01", "until": "2026-11-05"}],
    "/users/{user_id}/messages": [{}, {"status": "failed"}, {"format": "csv"}],
    "/imports/{import_id}/errors": [{}, {"format": "csv"}],
}
# Routes that take data in rather than show it; checked below by what they do.
WRITES = {
    ("post", "/imports"),
    ("post", "/events"),
    ("post", "/users/{user_id}/phone"),
    ("post", "/members"),
    ("patch", "/members/{email}"),
    ("delete", "/members/{email}"),
    ("put", "/settings/retention"),
    ("delete", "/users/{user_id}"),
}
# Routes of the caller itself, where its app is its own: signing in names the app and a member
# of it (tests/security/test_roles.py); a platform's callback is signed with that app's source
# secret (tests/security/test_webhook_door.py refuses another app's); a source's settings are
# the caller's app's.
OWN = {
    ("get", "/session/options"),
    ("get", "/session/sso"),
    ("get", "/session/sso/callback"),
    ("post", "/session"),
    ("delete", "/session"),
    ("delete", "/sessions"),
    ("post", "/sources/{platform}/{app_id}"),
    ("put", "/settings/sources/{platform}"),
    ("delete", "/settings/sources/{platform}"),
}
# The app's people, its audit trail and its settings: another app's never name this app.
PEOPLE = {"/me", "/members", "/audit", "/settings/retention", "/settings/sources"}


def found_something(response: httpx.Response) -> bool:
    if response.headers["content-type"].startswith("text/csv"):
        return len(response.text.strip().splitlines()) > 1
    body = response.json()
    return bool(body.get("items")) if "items" in body else bool(body)


def test_another_apps_key_sees_nothing_on_any_route(deployment: Deployment) -> None:
    key = deployment.cli("keys", "create", "--app", "acme")
    secret = deployment.cli("webhooks", "secret", "--app", "acme")
    other_key = deployment.cli("keys", "create", "--app", "globex")
    other_secret = deployment.cli("webhooks", "secret", "--app", "globex")
    member = "agent@acme.example"
    deployment.cli("members", "add", "--app", "acme", "--email", member, "--role", "agent")

    with deployment.client(key) as api, deployment.client(other_key) as other:
        upload = api.post(
            f"{API}/imports", files={"file": ("users.csv", USERS_CSV.encode(), "text/csv")}
        )
        done = wait_for_import(api, f"{API}/imports/{upload.json()['id']}")
        assert done["rejected"] > 0  # so the error report has rows to hide
        assert post_events(deployment, secret, LIFECYCLE).json()["accepted"] == len(LIFECYCLE)

        def settled() -> bool:
            templates = api.get(f"{API}/templates").json()["items"]
            failed = api.get(f"{API}/users/alex/messages", params={"status": "failed"}).json()
            return len(templates) == 2 and len(failed["items"]) == 1

        eventually_true(settled)  # the distributed projection takes a moment
        ids = {
            "user_id": "alex",
            "message_id": "m1",
            "key": "order_shipped",
            "import_id": done["id"],
        }

        spec = api.get(f"{API}/openapi.json").json()
        walked: set[tuple[str, str]] = set()
        for full_path, operations in spec["paths"].items():
            path = full_path.removeprefix(API)
            for method in operations:
                walked.add((method, path))
                if (method, path) in WRITES | OWN:
                    continue
                assert method == "get", f"{method.upper()} {full_path}: say how it keeps apps apart"
                url = full_path.format(**ids)
                if path in PEOPLE:
                    assert api.get(url).status_code == 200, url
                    theirs = other.get(url)
                    assert theirs.status_code == 200, (url, theirs.text)
                    assert "acme" not in theirs.text and member not in theirs.text, theirs.text
                    continue
                for params in VARIANTS.get(path, [{}]):
                    mine = api.get(url, params=params)
                    assert mine.status_code == 200, (url, params, mine.text)
                    assert found_something(mine), (url, params, mine.text)
                    theirs = other.get(url, params=params)
                    if "{" in path:
                        assert theirs.status_code == 404, (url, params, theirs.text)
                        assert theirs.headers["content-type"] == "application/problem+json"
                    else:
                        assert theirs.status_code == 200, (url, params, theirs.text)
                        assert theirs.json()["items"] == [], (url, params, theirs.text)
        assert WRITES | OWN <= walked, "the writes this test checks are no longer in the API"
        assert {("get", path) for path in (*VARIANTS, "/messages/{message_id}")} <= walked

        # Another app can neither reveal this app's users' numbers nor touch its members.
        revealed = other.post(f"{API}/users/alex/phone", json={"reason": "a support call"})
        assert revealed.status_code == 404, revealed.text
        changed = other.patch(f"{API}/members/{member}", json={"role": "admin"})
        removed = other.delete(f"{API}/members/{member}")
        assert (changed.status_code, removed.status_code) == (404, 404), (changed, removed)
        assert member in api.get(f"{API}/members").text
        # Nor set how long this app keeps its messages.
        assert other.put(f"{API}/settings/retention", json={"days": 1}).status_code == 200
        assert api.get(f"{API}/settings/retention").json()["days"] is None
        assert api.get(f"{API}/users/alex/messages").json()["items"]
        # Nor erase this app's users: erasing the same id erases its own app's user only.
        assert other.delete(f"{API}/users/alex").status_code == 200
        assert api.get(f"{API}/users/alex").json()["nickname"] == "Alex Kim"
        assert api.get(f"{API}/users/alex/messages").json()["items"]

        # Writes land in the caller's app only.
        before = api.get(f"{API}/imports").json()
        theirs_upload = other.post(
            f"{API}/imports",
            files={"file": ("u.csv", b"user_id,phone_number,nickname\nalex,+14155550199,G\n")},
        )
        assert theirs_upload.status_code == 202, theirs_upload.text
        wait_for_import(other, f"{API}/imports/{theirs_upload.json()['id']}")
        assert api.get(f"{API}/imports").json() == before
        assert [i["id"] for i in other.get(f"{API}/imports").json()["items"]] == [
            theirs_upload.json()["id"]
        ]
        eventually_true(lambda: other.get(f"{API}/users/alex").status_code == 200)
        assert api.get(f"{API}/users/alex").json()["nickname"] == "Alex Kim"

        # An event naming another app is refused, even when signed by a real app.
        forged: dict[str, Any] = event(
            "notification.read", "e-forged", "2026-11-02T10:09:00Z", message_id="m1", user_id="alex"
        )
        answer = post_events(deployment, other_secret, [forged], app="globex").json()
        assert answer["accepted"] == 0
        assert [r["index"] for r in answer["rejected"]] == [0]
        assert post_events(deployment, secret, [forged], app="globex").status_code == 401
