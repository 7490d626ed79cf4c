"""/api/v1/settings/sources on `insights dev` in this process: an admin lists the platforms, sets
one up with its secret and user field (never answered back), makes Braze's token, removes one;
agents and analysts are refused; every change is audited without the secret; and a callback
then names its user by the configured field."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from pathlib import Path

import pytest
from source_samples import json_body, knock_message, knock_sign

from insights_common.sources import PLATFORMS
from tests.security.conftest import InProcess, embedded_in_process
from tests.security.test_roles import member_client

pytestmark = pytest.mark.unit

SETTINGS = "/api/v1/settings/sources"
KNOCK_SECRET = "whsec_knock-from-the-dashboard"
KNOCK_MESSAGE = "2FVHPWxRqNuXQ9krvNP5A6Z4qXe"  # source_samples.knock_message's id


async def test_an_admin_sets_up_lists_and_removes_a_source(in_process: InProcess) -> None:
    admin, csrf = await member_client(in_process, "admin")
    headers = {"X-CSRF-Token": csrf}
    async with aclosing(admin):
        listed = (await admin.get(SETTINGS)).json()
        assert [s["platform"] for s in listed] == [p.name for p in PLATFORMS]
        assert not any(s["configured"] for s in listed)
        knock = next(s for s in listed if s["platform"] == "knock")
        # Without PUBLIC_BASE_URL the URL is the path: no origin is guessed.
        assert knock["callback_url"] == "/api/v1/sources/knock/acme"
        assert (knock["title"], knock["credential"]) == ("Knock", "signing secret")

        body = {"secret": KNOCK_SECRET, "user_field": "data.recipient.external"}
        made = await admin.put(f"{SETTINGS}/knock", json=body, headers=headers)
        assert made.status_code == 200, made.text
        assert made.json()["configured"] and made.json()["token"] is None
        assert made.json()["user_field"] == "data.recipient.external"
        assert KNOCK_SECRET not in made.text
        listed_text = (await admin.get(SETTINGS)).text
        assert KNOCK_SECRET not in listed_text and "data.recipient.external" in listed_text

        braze = await admin.put(f"{SETTINGS}/braze", json={}, headers=headers)
        token = braze.json()["token"]
        assert braze.status_code == 200 and len(token) >= 40
        assert token not in (await admin.get(SETTINGS)).text
        stored = await in_process.embedded.keys.source("acme", "braze")
        assert stored is not None and stored.secret == token

        removed = await admin.delete(f"{SETTINGS}/knock", headers=headers)
        assert removed.status_code == 204
        again = await admin.delete(f"{SETTINGS}/knock", headers=headers)
        assert again.status_code == 404 and "takes no Knock callbacks" in again.json()["detail"]
        assert await in_process.embedded.keys.source("acme", "knock") is None

    trail = await in_process.client.get(
        "/api/v1/audit", headers=in_process.auth, params={"actor": "member:admin@example.com"}
    )
    entries = [
        (e["action"], e["detail"])
        for e in reversed(trail.json()["items"])
        if not e["action"].startswith("session.")
    ]
    assert entries == [
        ("source.add", "knock user field data.recipient.external"),
        ("source.add", "braze user field (default), bearer token made"),
        ("source.remove", "knock"),
    ]
    assert all(e["address"] == "203.0.113.7" for e in trail.json()["items"])
    assert KNOCK_SECRET not in trail.text and token not in trail.text


async def test_refusals_say_what_is_wrong(in_process: InProcess) -> None:
    admin, csrf = await member_client(in_process, "admin")
    headers = {"X-CSRF-Token": csrf}
    async with aclosing(admin):
        unknown = await admin.put(f"{SETTINGS}/mailchimp", json={"secret": "s"}, headers=headers)
        assert unknown.status_code == 404
        assert "twilio, knock, customerio, braze, sendbird" in unknown.json()["detail"]
        for body, field, words in (
            ({"secret": "  "}, "secret", "1-512 characters"),
            ({}, "secret", "signing secret"),
            ({"secret": "s", "user_field": "data..id"}, "user_field", "dotted path"),
            ({"secret": "s", "user_field": "data.recipient email"}, "user_field", "e.g."),
        ):
            refused = await admin.put(f"{SETTINGS}/knock", json=body, headers=headers)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["errors"][0]["loc"] == ["body", field]
            assert words in refused.json()["detail"], refused.text
        twilio = await admin.put(
            f"{SETTINGS}/twilio", json={"secret": "s", "user_field": "a.b"}, headers=headers
        )
        assert twilio.status_code == 200  # a parameter name may hold a dot
        slash = await admin.put(
            f"{SETTINGS}/twilio", json={"secret": "s", "user_field": "a/b"}, headers=headers
        )
        assert slash.status_code == 422 and "parameter" in slash.json()["detail"]
        too_long = await admin.put(f"{SETTINGS}/knock", json={"secret": "x" * 513}, headers=headers)
        assert too_long.status_code == 422
        assert too_long.headers["content-type"].startswith("application/problem+json")
    assert await in_process.embedded.keys.source("acme", "knock") is None


@pytest.mark.parametrize("role", ["agent", "analyst"])
async def test_agents_and_analysts_cannot_see_or_change_sources(
    in_process: InProcess, role: str
) -> None:
    client, csrf = await member_client(in_process, role)
    headers = {"X-CSRF-Token": csrf}
    async with aclosing(client):
        for method, path, body in (
            ("GET", SETTINGS, None),
            ("PUT", f"{SETTINGS}/knock", {"secret": "s"}),
            ("DELETE", f"{SETTINGS}/knock", None),
        ):
            answer = await client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 403, (method, answer.text)
            assert answer.json()["permission"] == "manage_sources"
    assert await in_process.embedded.keys.source("acme", "knock") is None


async def test_a_callback_names_its_user_by_the_field_set_on_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://insights.example.com")
    async with embedded_in_process(tmp_path) as in_process:
        admin, csrf = await member_client(in_process, "admin")
        async with aclosing(admin):
            body = {"secret": KNOCK_SECRET, "user_field": "data.recipient.external"}
            made = await admin.put(f"{SETTINGS}/knock", json=body, headers={"X-CSRF-Token": csrf})
        assert made.json()["callback_url"] == (
            "http://insights.example.com/api/v1/sources/knock/acme"
        )
        payload = knock_message("message.delivered", at="2026-11-02T09:59:30Z")
        payload["data"]["recipient"] = {"id": "knock-7", "collection": "users", "external": "kim"}
        callback = json_body(payload)
        signature = knock_sign(callback, at_ms=int(time.time() * 1000), secret=KNOCK_SECRET)
        taken = await in_process.client.post(
            "/api/v1/sources/knock/acme",
            content=callback,
            headers={"x-knock-signature": signature},
        )
        assert taken.status_code == 202, taken.text
        assert (taken.json()["accepted"], taken.json()["refused"]) == (2, [])
        payload["data"] = {**payload["data"], "id": "m-2", "recipient": None}
        nobody = json_body(payload)
        signature = knock_sign(nobody, at_ms=int(time.time() * 1000), secret=KNOCK_SECRET)
        refused = await in_process.client.post(
            "/api/v1/sources/knock/acme", content=nobody, headers={"x-knock-signature": signature}
        )
        assert "It has no data.recipient.external" in refused.json()["refused"][0]["reason"]
        for _ in range(100):  # the embedded projector follows the bus within moments
            messages = await in_process.client.get(
                "/api/v1/users/kim/messages", headers=in_process.auth
            )
            if messages.status_code == 200 and messages.json()["items"]:
                break
            await asyncio.sleep(0.02)
        assert [m["message_id"] for m in messages.json()["items"]] == [KNOCK_MESSAGE]
