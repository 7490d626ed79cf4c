"""`insights dev --demo`: the README's first command serves a demo that curl can explore."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from insights.demo_data import build_demo
from tests.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e


def printed_key(data_dir: Path) -> str:
    keys = re.findall(r"uik_[A-Za-z0-9_-]+", (data_dir / "server.log").read_text())
    assert keys, "the demo printed no key"
    return keys[-1]


def signs_in_as_the_printed_admin(server: Server, data_dir: Path) -> bool:
    printed = re.findall(
        r"as (\S+) with the password \(shown once\):\s+(\S+)",
        (data_dir / "server.log").read_text(),
    )
    assert printed, "the demo printed no admin password"
    email, password = printed[-1]
    with server.client() as browser:
        signed = browser.post(
            "/api/v1/session", json={"app": "demo", "email": email, "password": password}
        )
        return signed.status_code == 204 and browser.get("/api/v1/me").json()["role"] == "admin"


def test_demo_app_is_loaded_once_and_explorable(data_dir: Path) -> None:
    server = start_server(data_dir, "--demo")
    try:
        with server.client(printed_key(data_dir)) as api:
            found = api.get("/api/v1/users", params={"q": "alex"}).json()["items"]
            assert found[0]["user_id"] == "alex"
            profile = api.get("/api/v1/users/alex").json()
            assert profile["stats"]["sent"] > 0
            assert {row["channel"] for row in profile["stats"]["by_channel"]} == {
                "in_app",
                "push",
                "sms",
                "alimtalk",
                "whatsapp",
                "email",
            }
            messages = api.get("/api/v1/users/alex/messages", params={"limit": 200}).json()
            statuses = {m["status"] for m in messages["items"]}
            assert {"delivered", "read", "clicked", "failed"} <= statuses
            detail = api.get(f"/api/v1/messages/{messages['items'][0]['message_id']}").json()
            assert detail["template"]["key"] and detail["timeline"][0]["status"] == "sent"
            templates = api.get("/api/v1/templates", params={"limit": 200}).json()["items"]
            assert len(templates) >= 8
            everyone = api.get("/api/v1/users", params={"limit": 200}).json()
            assert everyone["next_cursor"] is not None

            # The platform's profile edits land after the import and win over its nicknames.
            edits = build_demo(now=datetime.now(UTC))
            edit = edits.platform_user_events[0]
            user = api.get(f"/api/v1/users/{edit['user_id']}").json()
            assert user["nickname"] == edit["nickname"]
            imports = api.get("/api/v1/imports").json()["items"]
            assert len(imports) == 1
        assert signs_in_as_the_printed_admin(server, data_dir)
    finally:
        stop_server(server)

    # A second start keeps the data and loads nothing twice, but prints a fresh key.
    again = start_server(data_dir, "--demo")
    try:
        with again.client(printed_key(data_dir)) as api:
            assert len(api.get("/api/v1/imports").json()["items"]) == 1
            assert api.get("/api/v1/users/alex").status_code == 200
        assert signs_in_as_the_printed_admin(again, data_dir)
    finally:
        stop_server(again)
