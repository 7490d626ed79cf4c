"""The whole product through its doors: in one `insights dev` process, and as the distributed
mode's separate processes on real Kafka, OpenSearch and PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from insights_common.auth import sign
from tests.dates import at, day
from tests.deployments import eventually_true

if TYPE_CHECKING:
    from tests.conftest import Deployment
    from tests.deployments import DistributedDeployment

pytestmark = pytest.mark.e2e

USERS_CSV = (
    "\ufeffuser_id,phone_number,nickname,plan\r\n"
    "alex,+14155550171,Alex Kim,pro\r\n"
    "kim.minji,+821012345678,김민지,free\r\n"
    'jose_r,+34612345678,"José Ramos, Jr.",free\r\n'
    "bad id,+14155550172,Space,free\r\n"
    "sam,1 415 555 0173,Sam,free\r\n"
    "alex,+14155550174,Alex Again,free\r\n"
)


def wait_for_import(client: httpx.Client, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(location).json()
        if body["status"] in ("completed", "rejected", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"import did not finish: {body}")


def event(event_type: str, event_id: str, at: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "app_id": "acme",
        "occurred_at": at,
        **fields,
    }


def post_events(
    deployment: Deployment, secret: str, payload: Any, app: str = "acme"
) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        f"{deployment.url}/api/v1/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Insights-App": app,
            "X-Insights-Signature": sign(secret, body),
        },
        timeout=30,
    )


SENT = event(
    "notification.sent",
    "e-sent",
    at("10:00:00"),
    message_id="m1",
    user_id="alex",
    channel="push",
    template={
        "key": "order_shipped",
        "name": "Order shipped",
        "version": 3,
        "variables": {"order": "A-1001"},
    },
    content={
        "title": "Your order shipped",
        "body": "Order A-1001 is on its way",
        "buttons": [{"id": "track", "label": "Track", "url": "https://example.com/t"}],
    },
)
LIFECYCLE = [
    event("notification.read", "e-read", at("10:05:00"), message_id="m1", user_id="alex"),
    event("notification.delivered", "e-dlv", at("10:00:02"), message_id="m1", user_id="alex"),
    SENT,
    event(
        "notification.clicked",
        "e-click",
        at("10:06:00"),
        message_id="m1",
        user_id="alex",
        button_id="track",
        url="https://example.com/t",
    ),
    event(
        "notification.responded",
        "e-resp",
        at("10:07:00"),
        message_id="m1",
        user_id="alex",
        response={"type": "button", "value": "track", "label": "Track"},
    ),
    event(
        "notification.sent",
        "e-sent2",
        at("09:00:00", 1),
        message_id="m2",
        user_id="alex",
        channel="sms",
        template={"key": "password_reset", "name": "Password reset", "version": 1},
        content={"body": "Your code is 123456"},
    ),
    event(
        "notification.failed",
        "e-fail",
        at("09:00:05", 1),
        message_id="m2",
        user_id="alex",
        code="invalid_number",
        reason="The carrier rejected the number",
    ),
]


def test_import_ingest_and_insights_end_to_end(deployment: Deployment) -> None:
    key = deployment.cli("keys", "create", "--app", "acme")
    secret = deployment.cli("webhooks", "secret", "--app", "acme")
    other_key = deployment.cli("keys", "create", "--app", "globex")
    assert key.startswith("uik_") and secret.startswith("whsec_")
    assert deployment.cli("webhooks", "secret", "--app", "acme") == secret

    with deployment.client(key) as api, deployment.client(other_key) as other:
        # Import: good rows land, bad rows are reported with line, column and a fix.
        upload = api.post(
            "/api/v1/imports", files={"file": ("users.csv", USERS_CSV.encode(), "text/csv")}
        )
        assert upload.status_code == 202, upload.text
        done = wait_for_import(api, f"/api/v1/imports/{upload.json()['id']}")
        assert done["status"] == "completed"
        assert (done["total_rows"], done["created"], done["rejected"]) == (6, 3, 3)
        assert done["progress"] == 1
        errors = api.get(f"/api/v1/imports/{done['id']}/errors").json()["items"]
        by_line = {e["line"]: e for e in errors}
        assert by_line[5]["column"] == "user_id"
        assert by_line[6]["column"] == "phone_number"
        assert "(+1 415-***-**73)" in by_line[6]["message"]  # its E.164 form, masked
        assert by_line[7]["user_id"] == "alex" and "2" in by_line[7]["message"]

        def search(q: str) -> list[dict[str, Any]]:
            response = api.get("/api/v1/users", params={"q": q})
            if response.status_code != 200:  # not a lag to wait out: fail with the answer
                raise RuntimeError(f"{response.status_code} {response.text}")
            items: list[dict[str, Any]] = response.json()["items"]
            return items

        # Search by ID and by nickname (the distributed projection may take a moment).
        eventually_true(lambda: [u["user_id"] for u in search("김")] == ["kim.minji"])
        found = search("alex")
        assert found[0]["user_id"] == "alex"
        assert found[0]["phone_number"] == "+1 415-***-**71"
        assert "jose_r" in [u["user_id"] for u in search("ramos")]

        # Signed events, out of order and one twice.
        first = post_events(deployment, secret, LIFECYCLE[:4])
        assert first.status_code == 202, first.text
        assert first.json() == {"accepted": 4, "duplicates": 0, "rejected": [], "visible": None}
        second = post_events(deployment, secret, [*LIFECYCLE[3:], {"event_type": "nope"}])
        assert second.status_code == 202
        body = second.json()
        assert (body["accepted"], body["duplicates"]) == (3, 1)
        assert [r["index"] for r in body["rejected"]] == [4]
        assert post_events(deployment, "whsec_wrong", LIFECYCLE[:1]).status_code == 401

        def profile() -> dict[str, Any]:
            answer: dict[str, Any] = api.get(
                "/api/v1/users/alex", params={"since": str(day(-1)), "until": str(day(2))}
            ).json()
            return answer

        eventually_true(lambda: profile()["stats"]["responded"] == 1)
        eventually_true(lambda: profile()["stats"]["failed"] == 1)
        stats = profile()["stats"]
        assert profile()["nickname"] == "Alex Kim"
        assert profile()["phone_country"] == "US"
        assert {k: stats[k] for k in ("sent", "delivered", "read", "clicked", "failed")} == {
            "sent": 2,
            "delivered": 1,
            "read": 1,
            "clicked": 1,
            "failed": 1,
        }
        assert stats["responded"] == 1
        assert stats["delivery_rate"] == 0.5
        assert stats["last_sent_at"].startswith(at("09:00:00", 1).removesuffix("Z"))

        messages = api.get("/api/v1/users/alex/messages").json()
        assert [m["message_id"] for m in messages["items"]] == ["m2", "m1"]
        assert [m["status"] for m in messages["items"]] == ["failed", "clicked"]
        failed_only = api.get("/api/v1/users/alex/messages", params={"status": "failed"}).json()
        assert [m["message_id"] for m in failed_only["items"]] == ["m2"]

        detail = api.get("/api/v1/messages/m1").json()
        assert detail["template"] == SENT["template"]
        assert detail["content"]["buttons"][0]["id"] == "track"
        assert [t["status"] for t in detail["timeline"]] == [
            "sent",
            "delivered",
            "read",
            "clicked",
            "responded",
        ]
        assert detail["responses"][0]["value"] == "track"
        failure = api.get("/api/v1/messages/m2").json()["failure"]
        assert failure["code"] == "invalid_number"

        def template_keys() -> set[str]:
            return {t["key"] for t in api.get("/api/v1/templates").json()["items"]}

        # Each index refreshes on its own; the templates may show a moment after the messages.
        eventually_true(lambda: template_keys() == {"order_shipped", "password_reset"})

        # Another app sees none of it.
        assert other.get("/api/v1/users", params={"q": "alex"}).json()["items"] == []
        assert other.get("/api/v1/users/alex").status_code == 404
        assert other.get("/api/v1/messages/m1").status_code == 404
        assert other.get("/api/v1/templates").json()["items"] == []
        assert other.get(f"/api/v1/imports/{done['id']}").status_code == 404
        assert post_events(deployment, secret, LIFECYCLE[:1], app="globex").status_code == 401

        # The API reference covers every service, on the same origin.
        assert api.get("/api/docs").status_code == 200
        paths = api.get("/api/v1/openapi.json").json()["paths"]
        assert {"/api/v1/imports", "/api/v1/events", "/api/v1/users/{user_id}"} <= set(paths)
        # and beside it the events' AsyncAPI document: every topic
        channels = api.get("/api/v1/asyncapi.json").json()["channels"].values()
        assert {"insights.users.v1", "insights.notifications.v1", "platform.events.raw"} <= {
            channel["address"] for channel in channels
        }

    # Data survives a restart of every process.
    deployment.restart()
    with deployment.client(key) as api:
        assert api.get("/api/v1/users/alex").json()["stats"]["sent"] >= 1
        assert api.get("/api/v1/messages/m2").json()["status"] == "failed"
        assert api.get(f"/api/v1/imports/{done['id']}").json()["created"] == 3


def test_every_distributed_process_serves_on_uvloop(distributed: DistributedDeployment) -> None:
    """`insights serve` runs its process on uvloop, as `insights dev` does through uvicorn, and
    logs JSON lines naming the service (uvicorn's own lines too)."""
    for name, service in distributed.processes.items():
        log = service.log.read_text(errors="replace")
        assert f"{name} is serving on" in log, log[-2000:]
        assert "(event loop: uvloop)" in log, log[-2000:]
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        (serving,) = [line for line in lines if "is serving on" in line["message"]]
        assert (serving["service"], serving["level"], serving["logger"]) == (
            name,
            "INFO",
            "insights.serve",
        )
        assert "time" in serving
        assert any(line["logger"].startswith("uvicorn") for line in lines), log[-2000:]
