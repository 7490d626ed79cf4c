"""Every API route against every role and key scope, sign-in, CSRF and the audit trail.

RULES is the table: each route of the embedded app and the permission it needs. A route added
without a row fails `test_every_route_has_a_rule`; a row that disagrees with what the route
does fails `test_each_role_and_scope_reaches_exactly_its_routes`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from insights_common.access import ROLES, SCOPES, Permission
from insights_common.accounts import Accounts
from insights_common.audit import verify
from insights_common.http.conventions import _every_route
from tests.security.conftest import InProcess, embedded_in_process

pytestmark = pytest.mark.unit

PUBLIC = "public"
SIGNED_IN = "signed in"
# (method, path) -> what the caller needs: a permission, any signed-in caller, or nothing (the
# sign-in itself, by password or single sign-on; the webhook and the platforms' callbacks,
# which their signatures authenticate).
RULES: dict[tuple[str, str], Permission | str] = {
    ("GET", "/api/v1/users"): Permission.SEARCH_USERS,
    ("GET", "/api/v1/users/{user_id}"): Permission.VIEW_PROFILE,
    ("DELETE", "/api/v1/users/{user_id}"): Permission.ERASE_USERS,
    ("POST", "/api/v1/users/{user_id}/phone"): Permission.REVEAL_PHONE,
    ("GET", "/api/v1/users/{user_id}/messages"): Permission.VIEW_MESSAGES,
    ("GET", "/api/v1/messages/{message_id}"): Permission.VIEW_MESSAGES,
    ("GET", "/api/v1/users/{user_id}/messages/{message_id}"): Permission.VIEW_MESSAGES,
    ("GET", "/api/v1/templates"): Permission.VIEW_TEMPLATES,
    ("GET", "/api/v1/templates/{key}"): Permission.VIEW_TEMPLATES,
    ("POST", "/api/v1/session"): PUBLIC,
    ("GET", "/api/v1/session/options"): PUBLIC,
    ("GET", "/api/v1/session/sso"): PUBLIC,
    ("GET", "/api/v1/session/sso/callback"): PUBLIC,
    ("GET", "/api/v1/me"): SIGNED_IN,
    ("DELETE", "/api/v1/session"): SIGNED_IN,
    ("DELETE", "/api/v1/sessions"): SIGNED_IN,
    ("GET", "/api/v1/members"): Permission.MANAGE_MEMBERS,
    ("POST", "/api/v1/members"): Permission.MANAGE_MEMBERS,
    ("PATCH", "/api/v1/members/{email}"): Permission.MANAGE_MEMBERS,
    ("DELETE", "/api/v1/members/{email}"): Permission.MANAGE_MEMBERS,
    ("GET", "/api/v1/audit"): Permission.READ_AUDIT,
    ("GET", "/api/v1/settings/sources"): Permission.MANAGE_SOURCES,
    ("PUT", "/api/v1/settings/sources/{platform}"): Permission.MANAGE_SOURCES,
    ("DELETE", "/api/v1/settings/sources/{platform}"): Permission.MANAGE_SOURCES,
    ("GET", "/api/v1/settings/retention"): Permission.MANAGE_SETTINGS,
    ("PUT", "/api/v1/settings/retention"): Permission.MANAGE_SETTINGS,
    ("POST", "/api/v1/imports"): Permission.IMPORT,
    ("GET", "/api/v1/imports"): Permission.IMPORT,
    ("GET", "/api/v1/imports/{import_id}"): Permission.IMPORT,
    ("GET", "/api/v1/imports/{import_id}/errors"): Permission.IMPORT,
    ("POST", "/api/v1/events"): PUBLIC,
    ("POST", "/api/v1/sources/{platform}/{app_id}"): PUBLIC,
}
IDS = {
    "user_id": "nobody",
    "message_id": "none",
    "key": "none",
    "email": "nobody@example.com",
    "import_id": "none",
    "platform": "knock",
}
# A body each write route takes (or refuses for its content, never for who sends it).
BODIES: dict[str, Any] = {
    "/api/v1/users/{user_id}/phone": {"reason": "a support call"},
    "/api/v1/members": {"email": "new@example.com", "role": "analyst"},
    "/api/v1/members/{email}": {"role": "agent"},
    "/api/v1/settings/sources/{platform}": {"secret": "a-signing-secret"},
    "/api/v1/settings/retention": {"days": 365},
}


# The API's own descriptions (OpenAPI, AsyncAPI): public, as the reference page that shows them.
DOCUMENTS = frozenset({"/api/v1/openapi.json", "/api/v1/asyncapi.json"})


def api_routes(in_process: InProcess) -> set[tuple[str, str]]:
    app = in_process.client._transport.app  # type: ignore[attr-defined]
    found = set()
    for route in _every_route(app.router.routes):
        path = getattr(route, "path", "")
        if path.startswith("/api/v1/") and path not in DOCUMENTS:
            found.update((method, path) for method in route.methods - {"HEAD"})
    return found


def test_every_route_has_a_rule(in_process: InProcess) -> None:
    missing = api_routes(in_process) - set(RULES)
    assert not missing, f"routes without a rule in RULES: {sorted(missing)}"
    assert not set(RULES) - api_routes(in_process), "rules of routes that are gone"


async def member_client(
    in_process: InProcess, role: str, app_id: str = "acme"
) -> tuple[httpx.AsyncClient, str]:
    """A client signed in as a new member of `role`, and its CSRF token."""
    email = f"{role}@example.com"
    password = await Accounts(in_process.embedded.members).add(app_id, email, role)
    client = httpx.AsyncClient(
        transport=in_process.client._transport, base_url="http://insights.test"
    )
    signed = await client.post(
        "/api/v1/session", json={"app": app_id, "email": email, "password": password}
    )
    assert signed.status_code == 204, signed.text
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    me = await client.get("/api/v1/me")
    assert me.json()["role"] == role and me.json()["email"] == email
    return client, me.json()["csrf_token"]


@asynccontextmanager
async def callers(
    in_process: InProcess,
) -> AsyncIterator[dict[str, tuple[httpx.AsyncClient, dict[str, str], frozenset[Permission]]]]:
    """Each role as a signed-in member and each scope as an API key: (client, headers, granted)."""
    made: dict[str, tuple[httpx.AsyncClient, dict[str, str], frozenset[Permission]]] = {}
    for role, granted in ROLES.items():
        client, csrf = await member_client(in_process, role)
        made[f"member {role}"] = (client, {"X-CSRF-Token": csrf}, granted)
    for scope, granted in SCOPES.items():
        key = await in_process.embedded.keys.create_api_key("acme", scopes=(scope,))
        made[f"key {scope}"] = (in_process.client, {"Authorization": f"Bearer {key}"}, granted)
    try:
        yield made
    finally:
        for client, _, _ in made.values():
            if client is not in_process.client:
                await client.aclose()


async def test_each_role_and_scope_reaches_exactly_its_routes(in_process: InProcess) -> None:
    async with callers(in_process) as made:
        for (method, path), rule in sorted(RULES.items()):
            if rule == PUBLIC or (method, path) in {
                ("DELETE", "/api/v1/session"),
                ("DELETE", "/api/v1/sessions"),
            }:
                continue  # signing out is tried last, below
            url = path.format(**IDS)
            body = BODIES.get(path)
            for name, (client, headers, granted) in made.items():
                answer = await client.request(method, url, headers=headers, json=body)
                allowed = rule == SIGNED_IN or rule in granted
                if allowed:
                    assert answer.status_code not in (401, 403), (name, method, path, answer.text)
                else:
                    assert answer.status_code == 403, (name, method, path, answer.text)
                    assert answer.json()["permission"] == rule
            anonymous = await in_process.client.request(method, url, json=body)
            assert anonymous.status_code == 401, (method, path, anonymous.text)


async def test_a_session_signs_out_and_a_change_needs_the_csrf_token(
    in_process: InProcess,
) -> None:
    client, csrf = await member_client(in_process, "admin")
    async with aclosing(client):
        body = {"email": "b@example.com", "role": "agent"}
        refused = await client.post("/api/v1/members", json=body)
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"].replace(
            "x-csrf-token", "X-CSRF-Token"
        )
        wrong = await client.post(
            "/api/v1/members", json=body, headers={"X-CSRF-Token": "x" + csrf}
        )
        assert wrong.status_code == 403
        made = await client.post("/api/v1/members", json=body, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201 and made.json()["password"]
        assert (
            await client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
        ).status_code == 204
        assert (await client.get("/api/v1/me")).status_code == 401


async def test_sign_out_everywhere_ends_every_session_of_the_member(
    in_process: InProcess,
) -> None:
    accounts = Accounts(in_process.embedded.members)
    password = await accounts.add("acme", "ann@example.com", "agent")
    sign_in = {"app": "acme", "email": "ANN@example.com", "password": password}
    first = httpx.AsyncClient(transport=in_process.client._transport, base_url="http://t.test")
    second = httpx.AsyncClient(transport=in_process.client._transport, base_url="http://t.test")
    async with first, second:
        for client in (first, second):
            assert (await client.post("/api/v1/session", json=sign_in)).status_code == 204
        csrf = (await first.get("/api/v1/me")).json()["csrf_token"]
        assert (
            await first.delete("/api/v1/sessions", headers={"X-CSRF-Token": csrf})
        ).status_code == 204
        assert (await second.get("/api/v1/me")).status_code == 401
    trail = await in_process.client.get(
        "/api/v1/audit", headers=in_process.auth, params={"actor": "member:ann@example.com"}
    )
    actions = [entry["action"] for entry in trail.json()["items"]]
    assert actions == ["session.end_all", "session.password", "session.password"]


async def test_wrong_passwords_are_refused_alike_and_throttled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSIGHTS_RATE_LIMIT_FAILED_AUTH_BURST", "4")
    monkeypatch.setenv("INSIGHTS_RATE_LIMIT_FAILED_AUTH_PER_MINUTE", "0.01")
    async with embedded_in_process(tmp_path) as in_process:
        await Accounts(in_process.embedded.members).add("acme", "ann@example.com", "agent")
        statuses = []
        for email in ["ann@example.com", "nobody@example.com"] * 3:
            answer = await in_process.client.post(
                "/api/v1/session", json={"app": "acme", "email": email, "password": "guess"}
            )
            statuses.append(answer.status_code)
            assert "set-cookie" not in answer.headers
    assert statuses == [401, 401, 401, 401, 429, 429]


async def test_a_removed_member_or_changed_role_applies_to_the_next_request(
    in_process: InProcess,
) -> None:
    client, _ = await member_client(in_process, "agent")
    async with aclosing(client):
        assert (await client.get("/api/v1/users/nobody/messages")).status_code == 404
        await in_process.embedded.members.set_role("acme", "agent@example.com", "analyst")
        assert (await client.get("/api/v1/users/nobody/messages")).status_code == 403
        await in_process.embedded.members.remove_member("acme", "agent@example.com")
        assert (await client.get("/api/v1/users")).status_code == 401


async def test_views_are_recorded_with_who_and_reveals_with_their_reason(
    in_process: InProcess,
) -> None:
    users = "user_id,phone_number,nickname\nalex,+14155550171,Alex Kim\n"
    started = await in_process.client.post(
        "/api/v1/imports", headers=in_process.auth, files={"file": ("u.csv", users, "text/csv")}
    )
    assert started.status_code == 202, started.text
    agent, csrf = await member_client(in_process, "agent")
    analyst, _ = await member_client(in_process, "analyst")
    async with aclosing(agent), aclosing(analyst):
        for _ in range(50):
            profile = await agent.get("/api/v1/users/alex")
            if profile.status_code == 200:
                break
        assert profile.json()["phone_number"] == "+1 415-***-**71"
        assert (await analyst.get("/api/v1/users/alex")).json()["phone_number"] is None
        found = (await analyst.get("/api/v1/users", params={"q": "alex"})).json()["items"]
        assert found and found[0]["phone_number"] is None
        no_reason = await agent.post(
            "/api/v1/users/alex/phone", json={}, headers={"X-CSRF-Token": csrf}
        )
        assert no_reason.status_code == 400 and "reason" in no_reason.text
        nul = await agent.post(
            "/api/v1/users/alex/phone",
            json={"reason": "caller\u0000asked"},
            headers={"X-CSRF-Token": csrf},
        )
        assert nul.status_code == 400 and "reason" in nul.text
        revealed = await agent.post(
            "/api/v1/users/alex/phone",
            json={"reason": "caller asked to confirm"},
            headers={"X-CSRF-Token": csrf},
        )
        assert revealed.json() == {"user_id": "alex", "phone_number": "+14155550171"}
    trail = await in_process.client.get(
        "/api/v1/audit", headers=in_process.auth, params={"user_id": "alex"}
    )
    entries = trail.json()["items"]
    assert entries[0]["action"] == "user.reveal_phone"
    assert entries[0]["actor"] == "member:agent@example.com"
    assert entries[0]["reason"] == "caller asked to confirm"
    assert entries[0]["address"] == "203.0.113.7"
    viewers = {(e["actor"], e["action"]) for e in entries}
    assert ("member:analyst@example.com", "user.view") in viewers
    assert ("member:agent@example.com", "user.view") in viewers
    csv = await in_process.client.get(
        "/api/v1/audit",
        headers=in_process.auth,
        params={"format": "csv", "actor": "member:analyst@example.com"},
    )
    assert csv.text.splitlines()[0].startswith("seq,at,actor,action")
    assert all("analyst@example.com" in line for line in csv.text.splitlines()[1:])
    assert (await verify(in_process.embedded.audit, "acme")).intact
