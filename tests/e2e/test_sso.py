"""Single sign-on end to end, in both modes: a person signs in through a real Keycloak's login
page (tests/sso/realm.json) and uses the dashboard's API with the session cookie it leaves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.conftest import Server, _distributed
from tests.deployments import EmbeddedDeployment
from tests.sso.keycloak import UNVERIFIED, VERIFIED, sign_in_at_provider

if TYPE_CHECKING:
    from tests.conftest import Deployment
    from tests.sso.keycloak import Realm

pytestmark = pytest.mark.e2e
SESSION_COOKIE = "insights_session"
START = "/api/v1/session/sso"


@pytest.fixture(params=["embedded", "distributed"])
def sso_deployment(
    request: pytest.FixtureRequest, tmp_path: Path, sso_realm: Realm
) -> Iterator[Deployment]:
    """The product in each mode, signing people in at the test realm."""
    env = sso_realm.settings_env(name="Keycloak")
    running: Deployment
    if request.param == "embedded":
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        running = EmbeddedDeployment(data_dir, env=env)
    else:
        running = _distributed(request, tmp_path, **env)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def embedded_sso(tmp_path: Path, sso_realm: Realm) -> Iterator[EmbeddedDeployment]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    running = EmbeddedDeployment(data_dir, env=sso_realm.settings_env(name="Keycloak"))
    try:
        yield running
    finally:
        running.stop()


def to_provider(browser: httpx.Client, app: str) -> str:
    started = browser.get(START, params={"app": app})
    assert started.status_code == 303, started.text
    return started.headers["location"]


def back_from_provider(browser: httpx.Client, deployment: Deployment, app: str, email: str) -> str:
    """The callback URL Keycloak sends the browser to once `email` signed in there."""
    back = sign_in_at_provider(browser, to_provider(browser, app), email)
    assert back.startswith(f"{deployment.url}{START}/callback?"), back
    return back


def refusal(answer: httpx.Response) -> str:
    """Why the sign-in page is told the callback was refused; no session was made."""
    assert answer.status_code == 303, answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    target = urlsplit(answer.headers["location"])
    assert target.path == "/signin"
    return parse_qs(target.query)["sso_error"][0]


def signed_in(answer: httpx.Response) -> None:
    """The callback made a session and sends the browser to the dashboard."""
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"
    assert f"{SESSION_COOKIE}=" in answer.headers.get("set-cookie", "")


def test_a_member_signs_in_through_the_organizations_provider(sso_deployment: Deployment) -> None:
    deployment = sso_deployment
    key = deployment.cli("keys", "create", "--app", "acme")
    # Keycloak sends the email in lower case; the member was written otherwise.
    deployment.cli(
        "members", "add", "--app", "acme", "--email", "Ann@ACME.example", "--role", "agent"
    )

    with deployment.client() as anyone:
        options = anyone.get("/api/v1/session/options").json()
    assert options == {"password": True, "sso": {"label": "Sign in with Keycloak", "start": START}}

    with deployment.client() as browser:
        back = back_from_provider(browser, deployment, "acme", VERIFIED)
        landed = browser.get(back)
        signed_in(landed)
        me = browser.get("/api/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["email"] == VERIFIED and me.json()["role"] == "agent"
        assert me.json()["app"] == "acme"
        csrf = me.json()["csrf_token"]
        assert browser.get("/api/v1/users").status_code == 200

        # The same callback again is refused: its sign-in cookie is gone.
        assert refusal(browser.get(back)) == "expired"

        assert browser.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert browser.get("/api/v1/me").status_code == 401

    with deployment.client(key) as admin:
        trail = admin.get("/api/v1/audit", params={"action": "session.sso"}).json()["items"]
    assert [(e["actor"], e["action"]) for e in trail] == [(f"member:{VERIFIED}", "session.sso")]


def test_people_the_app_does_not_know_or_whose_email_is_unverified_get_no_session(
    sso_deployment: Deployment,
) -> None:
    deployment = sso_deployment
    deployment.cli("members", "add", "--app", "acme", "--email", UNVERIFIED, "--role", "admin")
    deployment.cli("members", "add", "--app", "globex", "--email", VERIFIED, "--role", "admin")

    for email, why in ((VERIFIED, "not_member"), (UNVERIFIED, "unverified")):
        with deployment.client() as browser:
            back = back_from_provider(browser, deployment, "acme", email)
            assert refusal(browser.get(back)) == why
            assert browser.get("/api/v1/me").status_code == 401


def test_a_tampered_or_foreign_callback_is_refused(embedded_sso: EmbeddedDeployment) -> None:
    deployment = embedded_sso
    deployment.cli("members", "add", "--app", "acme", "--email", VERIFIED, "--role", "admin")
    with deployment.client() as browser:
        back = back_from_provider(browser, deployment, "acme", VERIFIED)
        query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
        tampered = {**query, "state": "x" + query["state"][1:]}
        assert refusal(browser.get(f"{START}/callback?{urlencode(tampered)}")) == "expired"

    # A callback taken to another browser (one that did not start this sign-in).
    with deployment.client() as browser:
        back = back_from_provider(browser, deployment, "acme", VERIFIED)
    with deployment.client() as victim:
        assert refusal(victim.get(back)) == "expired"
        assert victim.get("/api/v1/me").status_code == 401

    # The provider's own refusal comes back as one too.
    with deployment.client() as browser:
        provider = urlsplit(to_provider(browser, "acme"))
        state = parse_qs(provider.query)["state"][0]
        denied = browser.get(f"{START}/callback", params={"state": state, "error": "access_denied"})
        assert refusal(denied) == "denied"


def test_a_sign_in_started_on_one_query_replica_finishes_on_another(
    request: pytest.FixtureRequest, tmp_path: Path, sso_realm: Realm
) -> None:
    deployment = _distributed(request, tmp_path, **sso_realm.settings_env())
    try:
        deployment.cli("members", "add", "--app", "acme", "--email", VERIFIED, "--role", "analyst")
        other = deployment.add_replica("query", "query-2")
        with deployment.client() as browser:
            back = back_from_provider(browser, deployment, "acme", VERIFIED)
            # The edge sends every request to the first replica: this one goes to the other.
            direct = back.replace(deployment.url, f"http://127.0.0.1:{other.port}")
            landed = browser.get(direct)
            signed_in(landed)
            me = browser.get("/api/v1/me")
            assert me.status_code == 200 and me.json()["role"] == "analyst"
    finally:
        deployment.stop()


def test_without_its_settings_a_deployment_has_no_single_sign_on(server: Server) -> None:
    with server.client() as anyone:
        assert anyone.get("/api/v1/session/options").json() == {"password": True, "sso": None}
        for path in (START, f"{START}/callback"):
            answer = anyone.get(path, params={"app": "acme", "state": "s", "code": "c"})
            assert answer.status_code == 404, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
