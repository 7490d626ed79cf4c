"""A process killed in the middle of an import leaves none of its users half visible, and the
import is resumed when the process comes back: never stuck in `importing`, never a duplicate."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.deployments import eventually_true

if TYPE_CHECKING:
    from tests.conftest import Deployment

pytestmark = pytest.mark.e2e

ROWS = 100_000  # the most one file may have: the longest import there is to kill


def users_csv() -> bytes:
    lines = ["user_id,phone_number,nickname"]
    lines += [f"crash{n:06d},+8210{n:08d},Crash {n}" for n in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


def visible(api: httpx.Client, user_ids: list[str]) -> int:
    return sum(findable(api, user_ids))


def findable(api: httpx.Client, user_ids: list[str]) -> list[bool]:
    """Whether each user can be read, asked one after the other."""
    return [api.get(f"/api/v1/users/{uid}").status_code == 200 for uid in user_ids]


def test_killing_the_importer_mid_import_leaves_all_or_nothing_then_resumes(
    deployment: Deployment,
) -> None:
    key = deployment.cli("keys", "create", "--app", "acme")
    sample = [f"crash{n:06d}" for n in (0, ROWS - 1, *random.Random(3).sample(range(ROWS), 60))]
    with deployment.client(key) as api:
        answer = api.post("/api/v1/imports", files={"file": ("users.csv", users_csv(), "text/csv")})
        assert answer.status_code == 202, answer.text
        import_id = answer.json()["id"]

        # Kill it while its users are being published: after the plan, before it is completed.
        seen: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = api.get(f"/api/v1/imports/{import_id}").json()
            if seen["status"] != "validating":
                break
        assert seen["status"] == "importing", seen
    deployment.crash_and_restart("import")

    with deployment.client(key) as api:
        # Whatever the projection shows is all of the sample or none of it at any moment: the
        # resumed run may commit while the sample is read (the users asked before are not
        # found, those after are), but never some of them, then others (the sample is in
        # random order, so users published in parts would interleave).
        seen_now = findable(api, sample)
        assert seen_now == sorted(seen_now), seen_now

        def completed() -> dict[str, Any] | None:
            record = api.get(f"/api/v1/imports/{import_id}").json()
            assert record["status"] in ("validating", "importing", "completed"), record
            return record if record["status"] == "completed" else None

        eventually_true(completed, limit=120)
        record = completed()
        assert record is not None
        assert (record["total_rows"], record["created"], record["rejected"]) == (ROWS, ROWS, 0)
        eventually_true(lambda: visible(api, sample) == len(sample), limit=60)
        profile = api.get(f"/api/v1/users/{sample[1]}").json()
        assert profile["nickname"] == f"Crash {ROWS - 1}"

        # The same file again: every row unchanged, nothing published twice.
        again = api.post("/api/v1/imports", files={"file": ("users.csv", users_csv(), "text/csv")})
        again_id = again.json()["id"]

        def done_again() -> dict[str, Any] | None:
            body = api.get(f"/api/v1/imports/{again_id}").json()
            return body if body["status"] == "completed" else None

        eventually_true(done_again, limit=120)
        second = done_again()
        assert second is not None
        assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, ROWS)
        found = api.get("/api/v1/users", params={"q": sample[1]}).json()["items"]
        assert [u["user_id"] for u in found] == [sample[1]]
