"""A source set up through the settings API in each mode (in the distributed one the query
service keeps it in PostgreSQL and notification-ingest reads it): a Customer.io callback then
names its user by the configured field, and shows under that user through the query API."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from source_samples import cio_event, cio_headers, json_body

from tests.deployments import eventually_true

if TYPE_CHECKING:
    from tests.conftest import Deployment

pytestmark = pytest.mark.e2e

CIO_KEY = "cio-key-set-through-the-api"
DELIVERY = "RPILAgABcRhIBqSp7kiPekGBIeVh"  # source_samples.cio_event's delivery


def test_a_user_field_set_through_the_api_names_the_user_of_a_callback(
    deployment: Deployment,
) -> None:
    key = deployment.cli("keys", "create", "--app", "acme")
    with deployment.client(key) as api:
        body = {"secret": CIO_KEY, "user_field": "data.identifiers.cio_id"}
        made = api.put("/api/v1/settings/sources/customerio", json=body)
        assert made.status_code == 200, made.text
        assert made.json()["user_field"] == "data.identifiers.cio_id"
        assert "data.identifiers.cio_id" in deployment.cli("sources", "list", "--app", "acme")

        now = int(time.time())
        event = json_body(cio_event("delivered", event_id="01HSETTINGSAPI0000000001", at=now))
        taken = httpx.post(
            f"{deployment.url}/api/v1/sources/customerio/acme",
            content=event,
            headers={"Content-Type": "application/json", **cio_headers(event, at=now, key=CIO_KEY)},
            timeout=30,
        )
        assert taken.status_code == 202, taken.text
        assert (taken.json()["accepted"], taken.json()["refused"]) == (2, [])

        def message() -> dict[str, Any]:
            answer = api.get(f"/api/v1/messages/{DELIVERY}")
            return answer.json() if answer.status_code == 200 else {}

        eventually_true(lambda: message().get("user_id") == "a1b2c3")

        assert api.delete("/api/v1/settings/sources/customerio").status_code == 204
        refused = httpx.post(
            f"{deployment.url}/api/v1/sources/customerio/acme",
            content=event,
            headers={"Content-Type": "application/json", **cio_headers(event, at=now, key=CIO_KEY)},
            timeout=30,
        )
        assert refused.status_code == 401
