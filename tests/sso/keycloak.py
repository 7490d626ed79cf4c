"""A real Keycloak for the single sign-on tests: its realm imported from realm.json beside this
file (under a name of the test session's own), and a person signing in on its login page.

Keycloak runs from deploy/local/services.py (`up keycloak`), or at KEYCLOAK_URL with
KEYCLOAK_ADMIN_USER and KEYCLOAK_ADMIN_PASSWORD when those are set.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path

import httpx

REALM_FILE = Path(__file__).with_name("realm.json")
_REALM = json.loads(REALM_FILE.read_text())
CLIENT = _REALM["clients"][0]
CLIENT_ID: str = CLIENT["clientId"]
CLIENT_SECRET: str = CLIENT["secret"]
PASSWORDS = {user["email"]: user["credentials"][0]["value"] for user in _REALM["users"]}
USERNAMES = {user["email"]: user["username"] for user in _REALM["users"]}
VERIFIED = "ann@acme.example"
UNVERIFIED = "uma@acme.example"
_FORM_ACTION = re.compile(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', re.S)


@dataclass(frozen=True)
class Realm:
    url: str
    name: str

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{self.name}"

    def settings_env(self, *, name: str = "Keycloak") -> dict[str, str]:
        """The product's settings for signing in at this realm."""
        return {
            "INSIGHTS_SSO_ISSUER": self.issuer,
            "INSIGHTS_SSO_CLIENT_ID": CLIENT_ID,
            "INSIGHTS_SSO_CLIENT_SECRET": CLIENT_SECRET,
            "INSIGHTS_SSO_NAME": name,
        }


class Keycloak:
    def __init__(self, url: str, admin_user: str, admin_password: str) -> None:
        self.url = url.rstrip("/")
        self._admin = (admin_user, admin_password)

    def _admin_client(self) -> httpx.Client:
        token = httpx.post(
            f"{self.url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self._admin[0],
                "password": self._admin[1],
            },
            timeout=30,
        )
        token.raise_for_status()
        return httpx.Client(
            base_url=f"{self.url}/admin",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=60,
        )

    def import_realm(self) -> Realm:
        """realm.json as a new realm of its own."""
        name = f"insights-{uuid.uuid4().hex[:8]}"
        with self._admin_client() as admin:
            answer = admin.post("/realms", json={**_REALM, "realm": name})
            assert answer.status_code == 201, answer.text
        return Realm(self.url, name)

    def remove_realm(self, realm: Realm) -> None:
        with self._admin_client() as admin:
            admin.delete(f"/realms/{realm.name}")


def sign_in_at_provider(browser: httpx.Client, authorize_url: str, email: str) -> str:
    """Sign in on Keycloak's login page as a person would (its form, their password); answers
    where Keycloak then sends the browser (our callback, with the code and state)."""
    page = browser.get(authorize_url)
    assert page.status_code == 200, page.text[:2000]
    match = _FORM_ACTION.search(page.text)
    assert match, f"no login form on Keycloak's page:\n{page.text[:2000]}"
    # Keycloak marks its cookies Secure (SameSite=None) even over http. Browsers send them to
    # loopback, a secure context; httpx sends Secure cookies only over https, so they are sent
    # here as a browser would.
    keycloak_cookies = SimpleCookie()
    for header in page.headers.get_list("set-cookie"):
        keycloak_cookies.load(header)
    answer = browser.post(
        html.unescape(match.group(1)),
        data={"username": USERNAMES[email], "password": PASSWORDS[email], "credentialId": ""},
        headers={"Cookie": "; ".join(f"{k}={m.value}" for k, m in keycloak_cookies.items())},
    )
    assert answer.status_code == 302, answer.text[:2000]
    return answer.headers["location"]
