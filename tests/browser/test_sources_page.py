"""The Sources page: an admin sets a platform up with its secret (never shown back) and a user
field, copies its callback URL, gets Braze's token once, and removes a source after confirming."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

SECRET = "knock-secret-typed-in-the-browser"


def test_an_admin_sets_up_knock_with_a_user_field_and_removes_it(
    signed_in: Page, api: httpx.Client
) -> None:
    page = signed_in
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sources").click()
    knock = page.get_by_role("region", name="Knock")
    expect(knock).to_contain_text("Not configured")
    expect(knock.locator("code").first).to_have_text(re.compile(r"/api/v1/sources/knock/demo$"))
    secret = knock.get_by_label("Signing secret")
    expect(secret).to_have_attribute("type", "password")
    secret.fill(SECRET)
    knock.get_by_label("User field (optional)").fill("data recipient")
    knock.get_by_role("button", name="Set up Knock").click()
    expect(knock.get_by_role("alert")).to_contain_text("not a user field of Knock")
    expect(knock).to_contain_text("Not configured")

    knock.get_by_label("User field (optional)").fill("data.recipient.external")
    knock.get_by_role("button", name="Set up Knock").click()
    expect(knock).to_contain_text("Configured since")
    expect(knock).to_contain_text("data.recipient.external")
    expect(knock.get_by_label("Signing secret")).to_have_value("")
    expect(knock.get_by_label("User field (optional)")).to_have_value("data.recipient.external")
    assert SECRET not in page.content()
    page.reload()
    assert SECRET not in page.content()
    audit = api.get("/api/v1/audit", params={"action": "source.add"}).json()["items"]
    assert audit[0]["detail"] == "knock user field data.recipient.external"

    knock = page.get_by_role("region", name="Knock")
    knock.get_by_role("button", name="Remove Knock").click()
    knock.get_by_role("button", name="Cancel").click()
    expect(knock).to_contain_text("Configured since")
    knock.get_by_role("button", name="Remove Knock").click()
    knock.get_by_role("group", name="Remove Knock?").get_by_role(
        "button", name="Yes, remove Knock"
    ).click()
    expect(knock).to_contain_text("Not configured")
    assert not any(
        s["configured"]
        for s in api.get("/api/v1/settings/sources").json()
        if s["platform"] == "knock"
    )


def test_braze_token_is_made_and_shown_only_once(signed_in: Page, api: httpx.Client) -> None:
    page = signed_in
    page.goto("/sources")
    braze = page.get_by_role("region", name="Braze")
    braze.get_by_role("button", name="Set up Braze").click()
    shown = braze.get_by_role("status").filter(has_text="shown only this once")
    expect(shown).to_be_visible()
    token = shown.locator("code").inner_text()
    assert len(token) >= 40
    # The token authenticates Braze's callbacks from now on.
    answer = api.post(
        "/api/v1/sources/braze/demo",
        headers={"Authorization": f"Bearer {token}"},
        json={"events": []},
    )
    assert answer.status_code == 422, answer.text  # authenticated; an empty batch is no batch
    page.reload()
    expect(page.get_by_role("region", name="Braze")).to_contain_text("Configured since")
    assert token not in page.content()
    page.get_by_role("region", name="Braze").get_by_role("button", name="Remove Braze").click()
    page.get_by_role("button", name="Yes, remove Braze").click()
    expect(page.get_by_role("region", name="Braze")).to_contain_text("Not configured")
