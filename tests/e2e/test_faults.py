"""Kafka, OpenSearch and PostgreSQL killed mid-stream (SIGKILL) and started again.

The test starts its OWN three servers (own ports, own data directory, with
deploy/local/services.py) and kills only those: other tests use the shared ones meanwhile. Each
round streams signed webhook batches, uploads a 100,000-row import and, as soon as it is
answered 202 (while it is published and projected), kills one server, starts it again, and checks
that:

- every refusal was a 503 with Retry-After naming the server, answered within the bound;
  nothing else failed (no 500, no request without an answer);
- every event answered 202 is in the API exactly once, and every user of the import;
- the dead-letter topics are empty, and none of our processes was restarted.

INSIGHTS_FAULT_ROUNDS sets the rounds per server: 1 by default, which keeps the suite within
CI's hour. More rounds find rarer faults (a PostgreSQL connection's failed reset showed only in
a second round). With `-s` each round prints its figures: events acknowledged, refused, the
longest answer, the dead letters.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from insights_common.auth import sign
from tests.deployments import DistributedDeployment
from tests.own_servers import OwnServers

pytestmark = pytest.mark.e2e

ROUNDS = int(os.environ.get("INSIGHTS_FAULT_ROUNDS", "1"))
BOUND = 3.0  # KAFKA_PUBLISH_TIMEOUT and POSTGRES_TIMEOUT of the deployment under test
# A refusal comes within the bound; the slack is for a 2-core machine shared with the servers
# that are starting again.
ANSWER_LIMIT = BOUND + 5.0
DOWN_FOR = BOUND + 3.0  # long enough for the doors to meet the outage
BATCH = 20
USERS = 10
IMPORT_ROWS = 100_000
APP = "acme"
SERVERS = ("kafka", "opensearch", "postgres")


@pytest.fixture(scope="module")
def servers() -> Iterator[OwnServers]:
    own = OwnServers()
    try:
        own.up()
        yield own
    finally:
        own.down()


@pytest.fixture(scope="module")
def deployment(servers: OwnServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tag = uuid.uuid4().hex[:8]
    running = DistributedDeployment(
        work_dir=tmp_path_factory.mktemp("faults"),
        kafka=servers.endpoint("kafka"),
        opensearch=servers.endpoint("opensearch"),
        postgres=servers.endpoint("postgres"),
        topic_prefix=f"faults-{tag}.",
        index_prefix=f"faults-{tag}",
        schema=f"faults_{tag}",
        extra_env={"KAFKA_PUBLISH_TIMEOUT": str(BOUND), "POSTGRES_TIMEOUT": str(BOUND)},
        # Five processes start at once beside three servers: on 2 busy cores that takes a while.
        ready_limit=300,
    )
    try:
        yield running
    finally:
        running.stop()


@dataclasses.dataclass
class Answer:
    status: int  # 0: no answer (a transport error)
    seconds: float
    began: float  # time.monotonic() when it was sent
    retry_after: str | None = None
    dependency: str | None = None
    text: str = ""


class WebhookStream(threading.Thread):
    """Posts signed batches of new messages one after another; a refused batch is sent again
    (after its Retry-After, at most a second here) until it is taken."""

    def __init__(self, url: str, secret: str, tag: str) -> None:
        super().__init__(name=f"webhooks {tag}", daemon=True)
        self.url = url
        self.secret = secret
        self.tag = tag
        self.answers: list[Answer] = []
        self.acked: dict[str, set[str]] = {user(tag, k): set() for k in range(USERS)}
        self.acknowledged = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(timeout=30) as http:
                number = 0
                while not self.stopping.is_set():
                    batch = [self.event(number * BATCH + i) for i in range(BATCH)]
                    self.deliver(http, batch)
                    number += 1
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def event(self, n: int) -> dict[str, Any]:
        occurred = datetime.now(UTC) - timedelta(minutes=1)
        return {
            "event_id": f"{self.tag}-sent-{n}",
            "event_type": "notification.sent",
            "schema_version": 1,
            "app_id": APP,
            "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "message_id": f"{self.tag}-m{n:06d}",
            "user_id": user(self.tag, n % USERS),
            "channel": "push",
            "template": {"key": "faults", "name": "Faults", "version": 1},
            "content": {"title": "Hello", "body": f"Message {n}"},
        }

    def deliver(self, http: httpx.Client, batch: list[dict[str, Any]]) -> None:
        body = json.dumps(batch).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Insights-App": APP,
            "X-Insights-Signature": sign(self.secret, body),
        }
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            began = time.monotonic()
            try:
                answer = http.post(f"{self.url}/api/v1/events", content=body, headers=headers)
            except httpx.TransportError as error:
                self.answers.append(Answer(0, time.monotonic() - began, began, text=repr(error)))
                time.sleep(0.5)
                continue
            took = time.monotonic() - began
            if answer.status_code == 202:
                assert answer.json()["rejected"] == [], answer.text
                self.answers.append(Answer(202, took, began))
                for event in batch:
                    self.acked[event["user_id"]].add(event["message_id"])
                self.acknowledged += len(batch)
                return
            problem = (
                answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
            )
            retry_after = answer.headers.get("retry-after")
            self.answers.append(
                Answer(
                    answer.status_code,
                    took,
                    began,
                    retry_after,
                    problem.get("dependency"),
                    answer.text[:300],
                )
            )
            time.sleep(min(float(retry_after or 0.5), 1.0))
        raise AssertionError(f"a batch was not taken in 300 s: {self.answers[-3:]}")


def user(tag: str, k: int) -> str:
    return f"{tag}-u{k}"


def listed_messages(api: httpx.Client, user_id: str) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = api.get(f"/api/v1/users/{user_id}/messages", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        ids += [m["message_id"] for m in body["items"]]
        cursor = body.get("next_cursor")
        if not cursor:
            return ids


def imported_users(opensearch: str, index_prefix: str, tag: str) -> int:
    query = {
        "query": {
            "bool": {"filter": [{"term": {"app_id": APP}}, {"prefix": {"user_id": f"{tag}."}}]}
        }
    }
    answer = httpx.post(f"{opensearch}/{index_prefix}-users/_count", json=query, timeout=30)
    answer.raise_for_status()
    return int(answer.json()["count"])


def upload(api: httpx.Client, body: bytes) -> tuple[str, list[Answer]]:
    """Upload the CSV until it is taken; answer its Location and every answer."""
    answers: list[Answer] = []
    for _ in range(60):
        began = time.monotonic()
        response = api.post(
            "/api/v1/imports", files={"file": ("users.csv", body, "text/csv")}, timeout=120
        )
        took = time.monotonic() - began
        if response.status_code == 202:
            answers.append(Answer(202, took, began))
            # The path only: absolute URLs are built from PUBLIC_BASE_URL, not this deployment.
            return urlsplit(response.headers["location"]).path, answers
        answers.append(
            Answer(
                response.status_code,
                took,
                began,
                response.headers.get("retry-after"),
                response.json().get("dependency"),
                response.text[:300],
            )
        )
        time.sleep(min(float(response.headers.get("retry-after") or 1), 2.0))
    raise AssertionError(f"the upload was never taken: {answers[-3:]}")


def people(tag: str) -> bytes:
    """IMPORT_ROWS valid rows of new users, their ids prefixed with the round's tag."""
    rows = [f"{tag}.{n:06d},+8210{20_000_000 + n:08d}" for n in range(IMPORT_ROWS)]
    return ("user_id,phone_number\n" + "\n".join(rows) + "\n").encode()


DEPENDENCY = dict(zip(SERVERS, ("Kafka", "OpenSearch", "PostgreSQL"), strict=True))


@dataclasses.dataclass
class Round:
    fault: str
    tag: str
    down: float
    killed_at: float
    stream: WebhookStream
    upload: list[Answer]
    location: str

    @property
    def answers(self) -> list[Answer]:
        return self.stream.answers + self.upload


def crash(
    fault: str, servers: OwnServers, deployment: DistributedDeployment, *, key: str, secret: str
) -> Round:
    """Stream webhooks, upload an import, kill `fault`, start it again, stop the stream."""
    tag = f"{fault}-{uuid.uuid4().hex[:6]}"
    with deployment.client(key) as api:
        stream = WebhookStream(deployment.url, secret, tag)
        stream.start()
        time.sleep(2)
        location, upload_answers = upload(api, people(tag))
        servers.kill(fault)
        killed_at = time.monotonic()
        time.sleep(DOWN_FOR)
        servers.up(fault)
        down = time.monotonic() - killed_at
        time.sleep(3)
        stream.stopping.set()
        stream.join(timeout=330)
    assert not stream.is_alive() and stream.error is None, stream.error
    return Round(fault, tag, down, killed_at, stream, upload_answers, location)


@dataclasses.dataclass
class Outcome:
    """What a round ended with, once the projection caught up (or SETTLE_LIMIT passed)."""

    done: Round
    visible: int
    doubled: int
    import_status: str
    imported: int
    dead_letters: int

    def figures(self) -> str:
        answers = self.done.answers
        refused = [a for a in answers if a.status == 503]
        longest = max(answers, key=lambda a: a.seconds)
        longest_refusal = max((a.seconds for a in refused), default=0.0)
        slowest = sorted(answers, key=lambda a: -a.seconds)[:3]
        shown = ", ".join(
            f"{a.status} in {a.seconds:.1f} s at {a.began - self.done.killed_at:+.1f} s"
            for a in slowest
        )
        return (
            f"{self.done.fault}: down {self.done.down:.1f} s; webhook events acknowledged"
            f" {self.done.stream.acknowledged}, visible {self.visible}, doubled {self.doubled};"
            f" requests {len(answers)}, refused (503) {len(refused)}, other failures"
            f" {len(answers) - len(refused) - sum(a.status == 202 for a in answers)};"
            f" longest answer {longest.seconds:.2f} s ({longest.status}), longest refusal"
            f" {longest_refusal:.2f} s; import"
            f" {self.import_status}, users visible {self.imported:,} of {IMPORT_ROWS:,};"
            f" dead letters {self.dead_letters}; slowest (from the kill): {shown}"
        )

    def problems(self) -> list[str]:
        """What is wrong with the round: empty when it is as it must be."""
        found = []
        answers = self.done.answers
        failed = [a for a in answers if a.status not in (202, 503)]
        if failed:
            found.append(f"answers other than 202 and 503: {failed[:3]}")
        for answer in answers:
            if answer.status == 503 and not (answer.retry_after and int(answer.retry_after) >= 1):
                found.append(f"a 503 without Retry-After: {answer}")
            if answer.status == 503 and answer.dependency != DEPENDENCY[self.done.fault]:
                found.append(f"a 503 naming another dependency: {answer}")
        # The bound is the refusals': an answer taken is as slow as the machine (2 busy cores
        # here, with servers starting), and the figures show it.
        slow = [a for a in answers if a.status == 503 and a.seconds > ANSWER_LIMIT]
        if slow:
            found.append(f"a refusal took {slow[0].seconds:.1f} s: {slow[0]}")
        if self.visible != self.done.stream.acknowledged or self.doubled:
            found.append(
                f"{self.done.stream.acknowledged} events acknowledged, {self.visible} visible,"
                f" {self.doubled} twice"
            )
        if self.import_status != "completed" or self.imported != IMPORT_ROWS:
            found.append(f"import {self.import_status}, {self.imported:,} users visible")
        if self.dead_letters:
            found.append(f"{self.dead_letters} dead letters")
        return found


SETTLE_LIMIT = 600.0  # the projection of 100,000 users on 2 cores shared with the servers


def settle(
    done: Round, servers: OwnServers, deployment: DistributedDeployment, *, key: str
) -> Outcome:
    """Wait until the round's events and users are all visible, at most SETTLE_LIMIT."""
    deadline = time.monotonic() + SETTLE_LIMIT
    opensearch = servers.endpoint("opensearch")
    visible = doubled = imported = 0
    status = "unknown"
    with deployment.client(key) as api:
        while True:
            try:
                visible = doubled = 0
                for user_id, ids in done.stream.acked.items():
                    listed = listed_messages(api, user_id)
                    visible += len(ids & set(listed))
                    doubled += len(listed) - len(set(listed))
                status = str(api.get(done.location).json().get("status", "unknown"))
                imported = imported_users(opensearch, deployment.index_prefix, done.tag)
            except (AssertionError, httpx.HTTPError):
                pass  # a server still starting: asked again
            else:
                settled = status in ("failed", "rejected") or (
                    status == "completed" and imported == IMPORT_ROWS
                )
                if visible == done.stream.acknowledged and settled:
                    break
            if time.monotonic() > deadline:
                break
            time.sleep(1)
    letters = json.loads(deployment.cli("dlq", "list", "--json"))
    return Outcome(done, visible, doubled, status, imported, int(letters["total"]))


@pytest.fixture(scope="module")
def key(deployment: DistributedDeployment) -> str:
    return deployment.cli("keys", "create", "--app", APP)


@pytest.mark.parametrize("fault", SERVERS)
def test_a_killed_server_costs_no_event(
    fault: str, servers: OwnServers, deployment: DistributedDeployment, key: str
) -> None:
    secret = deployment.cli("webhooks", "secret", "--app", APP)
    pids = {name: p.process.pid for name, p in deployment.processes.items()}
    problems = []
    for number in range(1, ROUNDS + 1):
        done = crash(fault, servers, deployment, key=key, secret=secret)
        outcome = settle(done, servers, deployment, key=key)
        print(f"\nround {number}/{ROUNDS}, {outcome.figures()}", flush=True)  # noqa: T201
        problems += [f"round {number}: {problem}" for problem in outcome.problems()]
    assert not problems, (problems, deployment.tracebacks())
    # Nothing of ours was restarted, and everything still runs.
    assert {name: p.process.pid for name, p in deployment.processes.items()} == pids
    assert all(p.process.poll() is None for p in deployment.processes.values())
