"""The template catalog and one template's versions, with the counts the API gives."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import cell, channel_name, count, exactly, row_with_link

pytestmark = pytest.mark.e2e


def catalog(api: httpx.Client) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/templates", params={"limit": 200})
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_the_catalog_lists_every_template_with_its_counts(
    signed_in: Page, api: httpx.Client
) -> None:
    page = signed_in
    page.get_by_role("navigation").get_by_role("link", name="Templates", exact=True).click()
    expect(page.get_by_role("heading", name="Templates", exact=True)).to_be_visible()
    table = page.get_by_role("table", name="Templates")
    templates = catalog(api)
    assert len(templates) >= 8
    expect(table.get_by_role("row")).to_have_count(len(templates) + 1)
    for template in templates:
        row = row_with_link(table, template["key"])
        expect(cell(table, row, "Name")).to_have_text(exactly(template["name"]))
        expect(cell(table, row, "Latest version")).to_have_text(
            exactly(str(template["latest_version"]))
        )
        for column in ("Sent", "Read", "Clicked"):
            expect(cell(table, row, column)).to_have_text(count(template[column.lower()]))


def test_a_template_shows_each_version_with_its_counts(signed_in: Page, api: httpx.Client) -> None:
    page = signed_in
    key = max(catalog(api), key=lambda template: template["latest_version"])["key"]
    template = api.get(f"/api/v1/templates/{key}").json()
    assert len(template["versions"]) > 1

    page.goto("/templates")
    row_with_link(page.get_by_role("table", name="Templates"), key).get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"/templates/{key}$"))
    expect(page.get_by_role("heading", name=template["name"], exact=True)).to_be_visible()
    for version in template["versions"]:
        number = version["version"]
        section = page.get_by_role("region", name=re.compile(rf"^Version {number}\b"))
        for label in ("Sent", "Read", "Clicked"):
            shown = count(version[label.lower()]).pattern
            expect(section).to_contain_text(re.compile(rf"{label}\s*{shown}"))
        channels = section.get_by_role("heading", level=4)
        expect(channels).to_have_count(len(version["channels"]))
        for channel, content in version["channels"].items():
            expect(section).to_contain_text(content["body"])
            expect(channels.filter(has_text=channel_name(channel))).to_have_count(1)
        variables = section.get_by_role("table", name=f"Variables of version {number}")
        for spec in version["variable_schema"]:
            expect(variables.get_by_role("row").filter(has_text=spec["key"])).to_have_count(1)
