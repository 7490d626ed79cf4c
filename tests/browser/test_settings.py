"""An admin sets how long the app keeps its messages on the Settings page, and turns it off."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


def test_an_admin_sets_retention_sees_a_refusal_and_turns_it_off(
    signed_in: Page, api: httpx.Client
) -> None:
    page = signed_in
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    current = page.get_by_test_id("retention-current")
    expect(current).to_have_text("Every message is kept.")
    days = page.get_by_label("Keep messages for (days)")

    days.fill("0")
    # The browser's own check of the field comes first; past it, the API's words show.
    page.evaluate("document.getElementById('retention-days').removeAttribute('min')")
    page.get_by_role("button", name="Save retention").click()
    expect(page.get_by_role("alert")).to_contain_text("from 1 to 36500")
    expect(current).to_have_text("Every message is kept.")

    # A hundred years: the demo app's messages, which other tests read, all stay.
    days.fill("36500")
    page.get_by_role("button", name="Save retention").click()
    expect(page.get_by_role("status").filter(has_text="more than 36500 days ago")).to_be_visible()
    expect(current).to_contain_text("36500 days")

    page.get_by_role("button", name="Keep every message").click()
    expect(current).to_have_text("Every message is kept.")
    trail = api.get("/api/v1/audit", params={"action": "retention.set"}).json()["items"]
    assert [entry["detail"] for entry in trail[:2]] == ["off", "36500 days"]
