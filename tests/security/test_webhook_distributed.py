"""The webhook door of the distributed ingest service (`insights serve ingest`) on the real
PostgreSQL and Kafka: secrets, rotation and the timestamped-only switch set with the CLI."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson
import pytest
from cryptography.fernet import Fernet

from insights_common.auth import sign
from tests.conftest import INSIGHTS, free_port
from tests.deployments import run_cli
from tests.security.test_webhook_door import (
    WHAT_IS_SAID,
    post_unfinished,
    post_whole,
    read_event,
    refusals,
)

if TYPE_CHECKING:
    from conftest import PgSchema

pytestmark = pytest.mark.integration


@dataclass
class Ingest:
    port: int
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        return run_cli(*args, "--distributed", env=self.env)


@pytest.fixture
def ingest(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, pg_schema: PgSchema
) -> Iterator[Ingest]:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "POSTGRES_DSN": pg_schema.dsn,
        "POSTGRES_SCHEMA": pg_schema.schema,
        "INSIGHTS_MASTER_KEY": Fernet.generate_key().decode(),
    }
    log = tmp_path / "ingest.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own command
            [*INSIGHTS, "serve", "ingest", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"ingest exited:\n{log.read_text(errors='replace')}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"ingest not ready in 90 s:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield Ingest(port, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def post(ingest: Ingest, app: str, secret: str, *, timestamp: int | None, tag: str) -> int:
    body = orjson.dumps([read_event(app, f"{app}-{tag}")])
    header = sign(secret, body, timestamp=timestamp)
    return post_whole(
        ingest.port, {"X-Insights-App": app, "X-Insights-Signature": header}, body
    ).status


def test_the_distributed_door_refuses_from_headers_and_takes_both_forms(ingest: Ingest) -> None:
    secret = ingest.cli("webhooks", "secret", "--app", "acme")
    strict = ingest.cli("webhooks", "secret", "--app", "strict")
    assert "only timestamped" in ingest.cli("webhooks", "require-timestamp", "--app", "strict")
    for case, headers in refusals(secret, strict).items():
        answer = post_unfinished(ingest.port, headers)
        assert answer.status == 401, (case, answer.body)
        assert WHAT_IS_SAID[case] in answer.json()["detail"], case
    now = int(time.time())
    assert post(ingest, "acme", secret, timestamp=None, tag="legacy") == 202
    assert post(ingest, "acme", secret, timestamp=now, tag="stamped") == 202
    assert post(ingest, "strict", strict, timestamp=now, tag="stamped") == 202
    assert post(ingest, "strict", strict, timestamp=None, tag="legacy") == 401
    ingest.cli("webhooks", "require-timestamp", "--app", "strict", "--off")
    assert post(ingest, "strict", strict, timestamp=None, tag="legacy-again") == 202


def test_an_event_id_postgresql_cannot_keep_is_refused_alone(ingest: Ingest) -> None:
    secret = ingest.cli("webhooks", "secret", "--app", "acme")
    body = orjson.dumps([read_event("acme", "kept"), read_event("acme", "nul\x00inside")])
    header = sign(secret, body, timestamp=int(time.time()))
    answer = post_whole(
        ingest.port, {"X-Insights-App": "acme", "X-Insights-Signature": header}, body
    )
    assert answer.status == 202, answer.body
    assert answer.json()["accepted"] == 1
    assert [(r["index"], r["errors"][0]["loc"]) for r in answer.json()["rejected"]] == [
        (1, "event_id")
    ]


def test_a_rotated_secret_signs_through_its_overlap_in_postgresql(ingest: Ingest) -> None:
    first = ingest.cli("webhooks", "secret", "--app", "acme")
    second = ingest.cli("webhooks", "secret", "--app", "acme", "--rotate", "--overlap", "2h")
    assert second != first
    now = int(time.time())
    assert post(ingest, "acme", first, timestamp=now, tag="old-in-overlap") == 202
    assert post(ingest, "acme", second, timestamp=now, tag="new") == 202
    third = ingest.cli("webhooks", "secret", "--app", "acme", "--rotate", "--overlap", "0")
    assert post(ingest, "acme", second, timestamp=now, tag="ended") == 401
    assert post(ingest, "acme", first, timestamp=now, tag="long-gone") == 401
    assert post(ingest, "acme", third, timestamp=now, tag="current") == 202
