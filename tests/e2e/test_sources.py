"""The platforms' callbacks, signed as each platform signs them, through the product's public door
in both modes, ending visible through the query API: a Twilio sent, delivered and read as one
message with its timeline; a Knock message; a Braze batch whose failure shows its readable reason;
a callback sent twice counted once.

PUBLIC_BASE_URL names a host this server is not reached at, as behind a proxy: Twilio's
signature must be checked against it, never against the request's Host.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from source_samples import (
    BRAZE_TOKEN,
    KNOCK_SECRET,
    PUBLIC_URL,
    TWILIO_TOKEN,
    braze_event,
    json_body,
    knock_message,
    knock_sign,
    twilio_request,
    twilio_status,
)

from tests.conftest import _distributed
from tests.deployments import EmbeddedDeployment, eventually_true

if TYPE_CHECKING:
    from tests.conftest import Deployment

pytestmark = pytest.mark.e2e

SID = "SM9f8e7d6c5b4a39281706f5e4d3c2b1a0"
BY_PHONE = "SM00000000000000000000000000000042"
USERS_CSV = "user_id,phone_number,nickname\r\nkim.minji,+821012345678,Minji\r\n"
KNOCK_ID = "2Gk4xQbYtWzJ8mN3pR6sV1uE0cA"


@pytest.fixture(params=["embedded", "distributed"])
def behind_proxy(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    """The product in each mode, told its public URL is PUBLIC_URL."""
    running: Deployment
    if request.param == "embedded":
        monkeypatch.setenv("PUBLIC_BASE_URL", PUBLIC_URL)
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        running = EmbeddedDeployment(data_dir)
    else:
        running = _distributed(request, tmp_path, PUBLIC_BASE_URL=PUBLIC_URL)
    try:
        yield running
    finally:
        running.stop()


def twilio_post(
    deployment: Deployment,
    status: str,
    *,
    sid: str = SID,
    query: str = "user_id=alex",
    **extra: str,
) -> httpx.Response:
    body, headers, target = twilio_request(
        twilio_status(status, sid=sid, **extra), path="/api/v1/sources/twilio/acme", query=query
    )
    return httpx.post(f"{deployment.url}{target}", content=body, headers=headers, timeout=30)


def knock_post(deployment: Deployment, kind: str) -> httpx.Response:
    now = datetime.now(UTC)
    body = json_body(
        knock_message(kind, message_id=KNOCK_ID, at=now.isoformat().replace("+00:00", "Z"))
    )
    signature = knock_sign(body, at_ms=int(now.timestamp() * 1000))
    return httpx.post(
        f"{deployment.url}/api/v1/sources/knock/acme",
        content=body,
        headers={"Content-Type": "application/json", "x-knock-signature": signature},
        timeout=30,
    )


def test_platform_callbacks_end_visible_through_the_query_api(behind_proxy: Deployment) -> None:
    deployment = behind_proxy
    key = deployment.cli("keys", "create", "--app", "acme")
    deployment.cli("sources", "add", "twilio", "--app", "acme", "--auth-token", TWILIO_TOKEN)
    deployment.cli("sources", "add", "knock", "--app", "acme", "--secret", KNOCK_SECRET)
    deployment.cli("sources", "add", "braze", "--app", "acme", "--secret", BRAZE_TOKEN)
    assert "twilio" in deployment.cli("sources", "list", "--app", "acme")

    # A status none of ours (Twilio's "queued") is on the timeline in Twilio's word.
    queued = twilio_post(deployment, "queued")
    assert (queued.status_code, queued.json()["accepted"]) == (202, 1), queued.text
    time.sleep(0.01)
    sent = twilio_post(deployment, "sent")
    assert sent.status_code == 202, sent.text
    time.sleep(0.01)  # Twilio's callbacks carry no time: each is dated when it arrives
    delivered = twilio_post(deployment, "delivered", RawDlrDoneDate="2611021000")
    assert delivered.json()["accepted"] == 1
    again = twilio_post(deployment, "delivered", RawDlrDoneDate="2611021000")
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 2)
    time.sleep(0.01)
    assert twilio_post(deployment, "read", EventType="READ").status_code == 202
    body, headers, target = twilio_request(
        twilio_status("failed", sid=SID, ErrorCode="30003"),
        path="/api/v1/sources/twilio/acme",
        token="not-the-auth-token",
    )
    forged = httpx.post(f"{deployment.url}{target}", content=body, headers=headers, timeout=30)
    assert forged.status_code == 401
    assert forged.json()["title"] == "Unauthorized"

    assert knock_post(deployment, "message.sent").status_code == 202
    assert knock_post(deployment, "message.read").status_code == 202

    now = int(time.time())
    batch = {
        "events": [
            braze_event("sms.Send", event_id="bz-1", at=now - 5, dispatch_id="dsp-9"),
            braze_event(
                "sms.DeliveryFailure",
                event_id="bz-2",
                at=now - 4,
                dispatch_id="dsp-9",
                error="Carrier rejected the message",
                provider_error_code="30007",
            ),
        ]
    }
    braze = httpx.post(
        f"{deployment.url}/api/v1/sources/braze/acme",
        content=json_body(batch),
        headers={"Authorization": f"Bearer {BRAZE_TOKEN}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert braze.status_code == 202, braze.text

    with deployment.client(key) as api:
        # A callback for a number nobody has yet is kept, and taken once its user is imported.
        early = twilio_post(deployment, "sent", sid=BY_PHONE, query="", To="+821012345678")
        assert early.json()["accepted"] == 0
        assert "Kept" in early.json()["refused"][0]["reason"]
        kept = orjson.loads(deployment.cli("dlq", "list", "--topic", "sources", "--json"))
        [letter] = kept["items"]
        assert (kept["total"], letter["topic"]) == (1, "sources")
        assert "+821012345678" in letter["error"] and letter["id"].startswith("kept:")
        # Replayed before anyone has the number, it stays kept.
        replay = deployment.cli("dlq", "replay", "--id", letter["id"])
        assert "1 kept callbacks still name a number no user has" in replay
        imported = api.post(
            "/api/v1/imports", files={"file": ("users.csv", USERS_CSV.encode(), "text/csv")}
        )
        assert imported.status_code == 202, imported.text

        def message(message_id: str) -> dict[str, Any]:
            answer = api.get(f"/api/v1/messages/{message_id}")
            assert answer.status_code == 200, answer.text
            detail: dict[str, Any] = answer.json()
            return detail

        # The forged "failed" never landed; the retried "delivered" shows once.
        eventually_true(lambda: message(SID)["status"] == "read")
        twilio = message(SID)
        assert [t["status"] for t in twilio["timeline"]] == [
            "reported",
            "sent",
            "delivered",
            "read",
        ]
        assert twilio["timeline"][0]["detail"] == "Twilio: queued"
        assert (twilio["user_id"], twilio["channel"]) == ("alex", "sms")
        assert twilio["template"]["key"] == "twilio"

        eventually_true(lambda: message(BY_PHONE)["user_id"] == "kim.minji")
        left = orjson.loads(deployment.cli("dlq", "list", "--topic", "sources", "--json"))
        assert left["total"] == 0
        # Now that the number names her, Twilio's later callbacks (only `To`) are hers at once.
        for status in ("delivered", "read"):
            time.sleep(0.01)
            later = twilio_post(deployment, status, sid=BY_PHONE, query="", To="+821012345678")
            assert (later.json()["accepted"], later.json()["refused"]) == (1, []), later.text
        eventually_true(lambda: message(BY_PHONE)["status"] == "read")
        by_phone = message(BY_PHONE)
        assert [t["status"] for t in by_phone["timeline"]] == ["sent", "delivered", "read"]
        assert by_phone["user_id"] == "kim.minji"

        eventually_true(lambda: message(KNOCK_ID)["status"] == "read")
        assert message(KNOCK_ID)["template"]["key"] == "order-shipped"

        eventually_true(lambda: message("dsp-9:alex")["status"] == "failed")
        failure = message("dsp-9:alex")["failure"]
        assert failure["code"] == "30007"
        # Braze's SMS providers are its own: their code is shown with Braze's words for it.
        assert failure["reason"] == "Carrier rejected the message"
