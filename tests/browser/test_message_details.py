"""Message details: what the user received, with which template, when each status came, and why
it failed; every part as the API tells it."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from source_samples import CIO_KEY, cio_event, cio_headers, json_body

from insights.demo_data import ALEX_USER_ID, CHANNELS
from tests.browser.dashboard import cell, exactly, message_links
from tests.conftest import Server, cli

pytestmark = pytest.mark.e2e

# WhatsApp shows *bold*, _italic_ and ~struck~ text without the marks.
WHATSAPP_MARKS = re.compile(r"\*([^*\n]+)\*|_([^_\n]+)_|~([^~\n]+)~")


def as_shown(channel: str, text: str) -> str:
    if channel != "whatsapp":
        return text
    return WHATSAPP_MARKS.sub(lambda match: next(part for part in match.groups() if part), text)


def value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def alex_messages(api: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    answer = api.get(f"/api/v1/users/{ALEX_USER_ID}/messages", params={**filters, "limit": 200})
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def expect_message(page: Page, message: dict[str, Any]) -> None:
    """Every section of the page shows what the API says about the message."""
    expect(page.get_by_role("heading", name="Message details", exact=True)).to_be_visible()
    content = page.get_by_role("region", name="Content")
    channel = message["channel"]
    if message["content"]["title"]:
        expect(content).to_contain_text(as_shown(channel, message["content"]["title"]))
    expect(content).to_contain_text(as_shown(channel, message["content"]["body"]))
    for button in message["content"]["buttons"]:
        expect(content).to_contain_text(button["label"])

    template = page.get_by_role("region", name="Template")
    expect(template.get_by_role("link", name=exactly(message["template"]["key"]))).to_be_visible()
    expect(template).to_contain_text(message["template"]["name"])
    expect(template).to_contain_text(str(message["template"]["version"]))
    variables = template.get_by_role("table", name="Variables")
    for name, value in message["template"]["variables"].items():
        row = variables.get_by_role("row").filter(has_text=name)
        expect(cell(variables, row.first, "Value")).to_have_text(exactly(value_text(value)))

    steps = page.get_by_role("region", name="Timeline").get_by_role("listitem")
    expect(steps).to_have_count(len(message["timeline"]))
    for index, step in enumerate(message["timeline"]):
        expect(steps.nth(index)).to_contain_text(re.compile(step["status"], re.IGNORECASE))
        if step["detail"]:
            expect(steps.nth(index)).to_contain_text(step["detail"])

    failure = page.get_by_role("region", name="Failure")
    if message["failure"]:
        for part in ("code", "reason", "explanation", "explained_by"):
            if message["failure"][part]:
                expect(failure).to_contain_text(message["failure"][part])
    else:
        expect(failure).to_have_count(0)

    responses = page.get_by_role("region", name="Responses")
    expect(responses).to_be_visible()
    for response in message["responses"]:
        for shown in response_texts(response):
            expect(responses).to_contain_text(shown)


def response_texts(response: dict[str, Any]) -> list[str]:
    """What a response shows: its label, and its value (a form's value field by field)."""
    value = response["value"]
    if isinstance(value, dict):
        shown = [text for pair in value.items() for text in (pair[0], value_text(pair[1]))]
    else:
        shown = [] if value is None else [value_text(value)]
    return ([response["label"]] if response["label"] else []) + shown


def test_open_a_failed_message_from_the_users_list(signed_in: Page, api: httpx.Client) -> None:
    page = signed_in
    failed_push = alex_messages(api, status="failed", channel="push")
    assert len(failed_push) == 1
    listed = failed_push[0]
    page.goto(f"/users/{ALEX_USER_ID}")
    page.get_by_label("Status", exact=True).select_option("failed")
    page.get_by_label("Channel", exact=True).select_option("push")
    name = listed["title"] or listed["template"]["name"]
    link = message_links(page).filter(has_text=exactly(name))
    expect(link).to_have_count(1)
    link.click()

    expect(page).to_have_url(re.compile(rf"/users/{ALEX_USER_ID}/messages/{listed['message_id']}$"))
    message = api.get(f"/api/v1/messages/{listed['message_id']}").json()
    assert message["failure"] is not None
    expect_message(page, message)

    # back to the list as it was left: the same filters, the same message in it
    page.get_by_role("link", name=f"Back to {ALEX_USER_ID}").click()
    expect(page).to_have_url(re.compile(rf"/users/{ALEX_USER_ID}\?.*status=failed"))
    expect(page.get_by_label("Status", exact=True)).to_have_value("failed")
    expect(page.get_by_label("Channel", exact=True)).to_have_value("push")
    expect(message_links(page).filter(has_text=exactly(name))).to_have_count(1)


@pytest.mark.parametrize("channel", CHANNELS)
def test_each_channel_shows_its_content(signed_in: Page, api: httpx.Client, channel: str) -> None:
    listed = alex_messages(api, channel=channel)[0]
    message = api.get(f"/api/v1/messages/{listed['message_id']}").json()
    signed_in.goto(f"/messages/{listed['message_id']}")
    expect_message(signed_in, message)


def test_the_users_responses_are_listed(signed_in: Page, api: httpx.Client) -> None:
    answered = [
        detail
        for item in alex_messages(api, status="read") + alex_messages(api, status="clicked")
        if (detail := api.get(f"/api/v1/messages/{item['message_id']}").json())["responses"]
    ]
    assert {r["type"] for m in answered for r in m["responses"]} == {"button", "reply", "form"}
    for message in answered:
        signed_in.goto(f"/messages/{message['message_id']}")
        expect_message(signed_in, message)
        items = signed_in.get_by_role("region", name="Responses").get_by_role("listitem")
        expect(items).to_have_count(len(message["responses"]))


def test_a_platforms_failure_shows_its_words_and_what_the_code_means(
    signed_in: Page, api: httpx.Client, demo: Server
) -> None:
    """A Customer.io email: a status none of ours on the timeline in Customer.io's word, and a
    bounce whose SMTP code the failure box explains, naming where the text comes from."""
    cli(
        "sources", "add", "customerio", "--app", "demo", "--secret", CIO_KEY, data_dir=demo.data_dir
    )
    delivery = "browser-cio-delivery-1"
    at = 1_790_000_000  # a fixed instant: the signature's own time is the request's
    for metric, extra in (
        ("sent", {}),
        ("attempted", {}),
        ("bounced", {"failure_message": "550 5.1.1 The email account does not exist"}),
    ):
        body = json_body(
            cio_event(
                metric,
                event_id=f"{delivery}-{metric}",
                at=at + len(metric),
                customer_id=ALEX_USER_ID,
                delivery_id=delivery,
                **extra,
            )
        )
        answer = httpx.post(
            f"{demo.url}/api/v1/sources/customerio/demo",
            content=body,
            headers=cio_headers(body, at=int(time.time())),
            timeout=30,
        )
        assert answer.status_code == 202, answer.text

    message = api.get(f"/api/v1/messages/{delivery}").json()
    assert message["failure"]["explanation"] and "RFC 5321" in message["failure"]["explained_by"]
    page = signed_in
    page.goto(f"/messages/{delivery}")
    expect_message(page, message)
    steps = page.get_by_role("region", name="Timeline").get_by_role("listitem")
    expect(steps.filter(has_text="Customer.io: attempted")).to_contain_text("Reported")
    failure = page.get_by_role("region", name="Failure")
    expect(failure).to_contain_text("Meaning")
    expect(failure).to_contain_text("Source: ")
