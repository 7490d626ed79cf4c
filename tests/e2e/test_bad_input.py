"""Every kind of bad input gets a specific error, and nothing stored before changes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from insights_common.auth import sign
from tests.conftest import Server, cli
from tests.dates import day
from tests.e2e.test_flow import LIFECYCLE, post_events, wait_for_import

pytestmark = pytest.mark.e2e

GOOD_CSV = b"user_id,phone_number,nickname\nalex,+14155550171,Alex Kim\n"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body.get("detail") or body.get("errors"), body
    return body


def snapshot(api: httpx.Client) -> dict[str, Any]:
    return {
        "user": api.get("/api/v1/users/alex", params={"since": str(day(-1))}).json(),
        "messages": api.get("/api/v1/users/alex/messages").json(),
        "message": api.get("/api/v1/messages/m1").json(),
        "templates": api.get("/api/v1/templates").json(),
        "imports": api.get("/api/v1/imports").json(),
    }


def upload(api: httpx.Client, content: bytes, name: str = "users.csv", **params: str) -> Any:
    return api.post("/api/v1/imports", params=params, files={"file": (name, content, "text/csv")})


def test_bad_input_is_refused_specifically_and_changes_nothing(
    server: Server, data_dir: Path
) -> None:
    key = cli("keys", "create", "--app", "acme", data_dir=data_dir)
    secret = cli("webhooks", "secret", "--app", "acme", data_dir=data_dir)
    with server.client(key) as api:
        first = upload(api, GOOD_CSV)
        assert wait_for_import(api, f"/api/v1/imports/{first.json()['id']}")["created"] == 1
        assert post_events(server, secret, LIFECYCLE).json()["accepted"] == len(LIFECYCLE)
        before = snapshot(api)

        # Authentication.
        with server.client() as anonymous:
            for path in ("/api/v1/users?q=a", "/api/v1/imports", "/api/v1/templates"):
                problem(anonymous.get(path), 401)
        with server.client("uik_not_a_key") as stranger:
            problem(stranger.get("/api/v1/users/alex"), 401)

        # Import: problems seen at once.
        assert "file" in problem(api.post("/api/v1/imports"), 400)["detail"]
        problem(api.post("/api/v1/imports", files={"other": ("x.csv", GOOD_CSV, "text/csv")}), 400)
        missing = problem(upload(api, b"user_id,nickname\nalex,Alex\n"), 422)
        assert "phone_number" in json.dumps(missing)
        zip_file = upload(api, b"PK\x03\x04" + b"\x00" * 64, name="users.xlsx")
        assert zip_file.status_code in (415, 422), zip_file.text
        assert "mode" in json.dumps(problem(upload(api, GOOD_CSV, mode="merge"), 400))
        problem(upload(api, GOOD_CSV, on_error="ignore"), 400)

        # Import: files refused whole, with the reason.
        for content in (
            b"",
            b"user_id,phone_number\n",
            "user_id,phone_number\nzoë,+33612345678\n".encode("latin-1"),
            b"user_id,phone_number\n"
            + b"".join(f"u{i},+1415555{i % 10000:04d}\n".encode() for i in range(100_001)),
        ):
            response = upload(api, content)
            if response.status_code == 202:
                done = wait_for_import(api, f"/api/v1/imports/{response.json()['id']}")
                assert done["status"] == "rejected", done
                assert done["errors"], done
                assert done["created"] == 0
            else:
                problem(response, response.status_code)
                assert response.status_code in (400, 413, 415, 422)

        # reject_file: one bad row refuses the whole file.
        strict = upload(
            api,
            b"user_id,phone_number\nnew_user,+14155550199\nbad user,+14155550198\n",
            on_error="reject_file",
        )
        done = wait_for_import(api, f"/api/v1/imports/{strict.json()['id']}")
        assert done["status"] == "rejected"
        assert api.get("/api/v1/users/new_user").status_code == 404

        # Webhook.
        body = json.dumps(LIFECYCLE[0]).encode()
        headers = {"X-Insights-App": "acme", "Content-Type": "application/json"}
        problem(httpx.post(f"{server.url}/api/v1/events", content=body, headers=headers), 401)
        bad_sig = {**headers, "X-Insights-Signature": "sha256=" + "0" * 64}
        problem(httpx.post(f"{server.url}/api/v1/events", content=body, headers=bad_sig), 401)
        not_json = b"{not json"
        signed = {**headers, "X-Insights-Signature": sign(secret, not_json)}
        problem(httpx.post(f"{server.url}/api/v1/events", content=not_json, headers=signed), 400)
        problem(post_events(server, secret, []), 400)
        problem(post_events(server, secret, [LIFECYCLE[0]] * 1001), 413)
        tampered = {**LIFECYCLE[2], "content": {"title": "changed", "body": "changed"}}
        invalid = post_events(
            server,
            secret,
            [
                {**tampered, "event_id": "new-id", "channel": "fax"},
                {**LIFECYCLE[0], "event_id": "other", "occurred_at": "yesterday"},
                {**LIFECYCLE[0], "event_id": "x2", "app_id": "globex"},
            ],
        ).json()
        assert invalid["accepted"] == 0
        assert [r["index"] for r in invalid["rejected"]] == [0, 1, 2]
        messages = " ".join(json.dumps(r["errors"]) for r in invalid["rejected"])
        assert "channel" in messages and "occurred_at" in messages and "globex" in messages

        # Query.
        problem(api.get("/api/v1/users/alex/messages", params={"cursor": "garbage"}), 400)
        problem(api.get("/api/v1/users/alex/messages", params={"limit": 201}), 400)
        status = problem(api.get("/api/v1/users/alex/messages", params={"status": "opened"}), 400)
        assert "read" in status["allowed"]
        problem(api.get("/api/v1/users/alex/messages", params={"channel": "fax"}), 400)
        problem(
            api.get("/api/v1/users/alex", params={"since": "2026-11-05", "until": "2026-11-01"}),
            400,
        )
        problem(api.get("/api/v1/users/alex", params={"since": "last week"}), 400)
        problem(api.get("/api/v1/users/nobody"), 404)
        problem(api.get("/api/v1/messages/nothing"), 404)
        problem(api.get("/api/v1/templates/nothing"), 404)
        problem(api.get("/api/v1/imports/imp_nothing"), 404)

        time.sleep(0.2)
        after = snapshot(api)
        # Only the import history grew (with the refused imports); what was stored is unchanged.
        for part in ("user", "messages", "message", "templates"):
            assert after[part] == before[part], part
        first_import = before["imports"]["items"][-1]
        assert first_import in after["imports"]["items"]
