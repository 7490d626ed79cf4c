"""The webhook door of `insights dev` as a hostile caller meets it, over a real socket.

A caller who cannot be the app is answered 401 from its headers alone: the test declares a large
body, sends a few bytes of it and never the rest, and still gets its answer. An event the stores
cannot keep is refused in the answer, with its location, and nothing is dead-lettered later.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from source_samples import KNOCK_SECRET, knock_sign

from insights_common.auth import sign
from tests.conftest import Server, cli, start_server, stop_server
from tests.deployments import eventually_true
from tests.security.conftest import InProcess

if TYPE_CHECKING:
    from tests.conftest import Deployment

pytestmark = pytest.mark.e2e

ANSWER_WITHIN = 10.0
"""Seconds to wait for an answer before concluding the server is waiting for the body."""
DECLARED = 50 * 1024 * 1024  # far beyond INGEST_MAX_BODY_BYTES; never sent
FIRST_BYTES = b'[{"event_id": "e1", ' + b" " * 4000


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def post_unfinished(
    port: int,
    headers: dict[str, str],
    *,
    chunked: bool = False,
    sent: bytes = FIRST_BYTES,
    path: str = "/api/v1/events",
) -> Answer:
    """POST /api/v1/events declaring a body of DECLARED bytes (or a chunked one), send only
    `sent` of it, and read the answer while the rest never comes."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {DECLARED}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    payload = b"%x\r\n%s\r\n" % (len(sent), sent) if chunked else sent
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        try:
            answer = read_answer(sock)
        except TimeoutError:
            pytest.fail(f"no answer in {ANSWER_WITHIN} s: the server is waiting for the body")
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        assert closed, "the server kept the connection to read the rest of the body"
        return answer


def post_whole(port: int, headers: dict[str, str], body: bytes) -> Answer:
    lines = [
        "POST /api/v1/events HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            pytest.fail(f"the connection closed without an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body[:length])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass
class Door:
    server: Server
    secret: str
    strict_secret: str

    @property
    def port(self) -> int:
        return port_of(self.server.url)


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    """`insights dev` with app 'acme' (both forms) and app 'strict' (timestamped only)."""
    data_dir = tmp_path_factory.mktemp("webhook-door")
    secret = cli("webhooks", "secret", "--app", "acme", data_dir=data_dir)
    strict = cli("webhooks", "secret", "--app", "strict", data_dir=data_dir)
    cli("webhooks", "require-timestamp", "--app", "strict", data_dir=data_dir)
    cli("sources", "add", "knock", "--app", "acme", "--secret", KNOCK_SECRET, data_dir=data_dir)
    server = start_server(data_dir)
    try:
        yield Door(server, secret, strict)
    finally:
        stop_server(server)


def refusals(secret: str, strict_secret: str) -> dict[str, dict[str, str]]:
    """Headers that cannot be the app ('acme' signs with `secret`; 'strict' with
    `strict_secret` and requires timestamps); WHAT_IS_SAID has what each 401 says."""
    now = int(time.time())
    digest = "0" * 64
    return {
        "no app header": {"X-Insights-Signature": f"sha256={digest}"},
        "no signature header": {"X-Insights-App": "acme"},
        "an unknown app": {"X-Insights-App": "initech", "X-Insights-Signature": f"sha256={digest}"},
        "a malformed signature": {"X-Insights-App": "acme", "X-Insights-Signature": "sha256=zz"},
        "a signature in no known form": {
            "X-Insights-App": "acme",
            "X-Insights-Signature": f"hmac={digest}",
        },
        "a timestamp an hour old": {
            "X-Insights-App": "acme",
            "X-Insights-Signature": sign(secret, FIRST_BYTES, timestamp=now - 3600),
        },
        "a timestamp an hour ahead": {
            "X-Insights-App": "acme",
            "X-Insights-Signature": sign(secret, FIRST_BYTES, timestamp=now + 3600),
        },
        "the legacy form from an app that requires timestamps": {
            "X-Insights-App": "strict",
            "X-Insights-Signature": sign(strict_secret, FIRST_BYTES),
        },
    }


WHAT_IS_SAID = {
    "no app header": "Missing header X-Insights-App",
    "no signature header": "Missing header X-Insights-Signature",
    "an unknown app": "does not match",
    "a malformed signature": "malformed",
    "a signature in no known form": "malformed",
    "a timestamp an hour old": "s old",
    "a timestamp an hour ahead": "s ahead",
    "the legacy form from an app that requires timestamps": "only timestamped",
}


@pytest.mark.parametrize("case", sorted(WHAT_IS_SAID))
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_caller_who_cannot_be_the_app_is_refused_before_its_body(
    door: Door, case: str, chunked: bool
) -> None:
    headers = refusals(door.secret, door.strict_secret)[case]
    answer = post_unfinished(door.port, headers, chunked=chunked)
    assert answer.status == 401, answer.body
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "application/problem+json"
    assert WHAT_IS_SAID[case] in answer.json()["detail"]


def test_a_signed_body_is_read_whole_and_taken(door: Door) -> None:
    now = int(time.time())
    for app, secret, timestamp in (
        ("acme", door.secret, None),
        ("acme", door.secret, now),
        ("strict", door.strict_secret, now),
    ):
        events = [read_event(app, f"{app}-{timestamp}-{n}") for n in range(2)]
        body = orjson.dumps(events)
        header = sign(secret, body, timestamp=timestamp)
        answer = post_whole(
            door.port, {"X-Insights-App": app, "X-Insights-Signature": header}, body
        )
        assert answer.status == 202, answer.body
        assert answer.json() == {"accepted": 2, "duplicates": 0, "rejected": [], "visible": None}


def test_good_headers_with_a_wrong_signature_are_refused_after_the_body(door: Door) -> None:
    body = orjson.dumps([read_event("acme", "door-3")])
    forged = sign(door.secret, body + b" ", timestamp=int(time.time()))
    answer = post_whole(door.port, {"X-Insights-App": "acme", "X-Insights-Signature": forged}, body)
    assert answer.status == 401, answer.body
    assert "does not match" in answer.json()["detail"]


def read_event(app_id: str, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "notification.read",
        "app_id": app_id,
        "occurred_at": "2026-11-02T10:00:00Z",
        "message_id": f"m-{event_id}",
        "user_id": "alex",
    }


def sent_event(event_id: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id,
        "event_type": "notification.sent",
        "app_id": "acme",
        "occurred_at": "2026-11-02T10:00:00Z",
        "message_id": f"m-{event_id}",
        "user_id": "alex",
        "channel": "push",
        "template": {"key": "order_shipped", "name": "Order shipped", "version": 3},
        "content": {"title": "Shipped", "body": "On its way"},
    }
    template_changes = changes.pop("template", {})
    event["template"] = {**event["template"], **template_changes}
    return {**event, **changes}


async def test_values_no_store_keeps_are_refused_per_event_and_never_dead_lettered(
    in_process: InProcess,
) -> None:
    secret = await in_process.embedded.keys.rotate_webhook_secret("acme")
    events = [
        sent_event("ok-1"),
        sent_event("big-version", template={"version": 2**31}),
        sent_event("huge-version", template={"version": 2**63}),
        sent_event("wide-variable", template={"variables": {"order": {"n": 2**63}}}),
        sent_event("year-1", occurred_at="0001-01-01T00:00:00Z"),
        sent_event("year-1-offset", occurred_at="0001-01-01T00:30:00+01:00"),
        sent_event("year-9999", occurred_at="9999-12-31T23:59:59Z"),
        sent_event("year-9999-offset", occurred_at="9999-12-31T23:00:00-05:00"),
        sent_event("ok-2"),
    ]
    body = orjson.dumps(events)
    response = await in_process.client.post(
        "/api/v1/events",
        content=body,
        headers={
            "X-Insights-App": "acme",
            "X-Insights-Signature": sign(secret, body, timestamp=int(time.time())),
        },
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    rejected = {r["event_id"]: [e["loc"] for e in r["errors"]] for r in answer["rejected"]}
    assert rejected == {
        "big-version": ["template.version"],
        "huge-version": ["template.version"],
        "wide-variable": ["template.variables.order.n"],
        "year-1": ["occurred_at"],
        "year-1-offset": ["occurred_at"],
        "year-9999": ["occurred_at"],
        "year-9999-offset": ["occurred_at"],
    }
    assert [r["index"] for r in answer["rejected"]] == list(range(1, 8))
    for message_id in ("m-ok-1", "m-ok-2"):
        for _ in range(100):
            found = await in_process.client.get(
                f"/api/v1/messages/{message_id}", headers=in_process.auth
            )
            if found.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert found.status_code == 200, found.text
    listing = await in_process.embedded.dead_letters.listing(topic=None, limit=50)
    assert listing.total == 0, listing.letters


def test_the_edges_the_stores_keep_are_projected_and_nothing_is_dead_lettered(
    deployment: Deployment,
) -> None:
    """In each mode: the extreme values the rule takes are projected and read back (SQLite, or
    OpenSearch's integer and long fields), and the ones it refuses never reach a store."""
    secret = deployment.cli("webhooks", "secret", "--app", "acme")
    key = deployment.cli("keys", "create", "--app", "acme")
    wide = {"n": 2**63 - 1, "m": -(2**63)}
    events = [
        sent_event("edge", template={"version": 2**31 - 1, "variables": wide}),
        sent_event("first", occurred_at="1970-01-01T00:00:00Z"),
        sent_event("last", occurred_at="2199-12-31T23:59:59.999999Z"),
        sent_event("bad-version", template={"version": 2**31}),
        sent_event("bad-time", occurred_at="9999-12-31T23:59:59Z"),
        sent_event("bad-int", template={"variables": {"n": 2**63}}),
    ]
    body = json.dumps(events).encode()  # the standard encoder writes integers of any size
    header = sign(secret, body, timestamp=int(time.time()))
    answer = httpx.post(
        f"{deployment.url}/api/v1/events",
        content=body,
        headers={"X-Insights-App": "acme", "X-Insights-Signature": header},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 3
    assert [r["index"] for r in answer.json()["rejected"]] == [3, 4, 5]
    with deployment.client(key) as api:

        def projected() -> bool:
            return all(
                api.get(f"/api/v1/messages/m-{name}").status_code == 200
                for name in ("edge", "first", "last")
            )

        eventually_true(projected, limit=60)
        edge = api.get("/api/v1/messages/m-edge").json()
        assert edge["template"]["version"] == 2**31 - 1
        assert edge["template"]["variables"] == wide
        assert api.get("/api/v1/messages/m-first").json()["sent_at"].startswith("1970-01-01")
        assert api.get("/api/v1/messages/m-last").json()["sent_at"].startswith("2199-12-31")
        for path in ("/api/v1/users/alex", "/api/v1/users/alex/messages", "/api/v1/templates"):
            assert api.get(path).status_code == 200, path
        for name in ("bad-version", "bad-time", "bad-int"):
            assert api.get(f"/api/v1/messages/m-{name}").status_code == 404
    listing = json.loads(deployment.cli("dlq", "list", "--json"))
    assert listing["total"] == 0, listing


def knock_signed(seconds_ago: float) -> Callable[[], dict[str, str]]:
    """Knock's header as signed `seconds_ago` before the request is made (not before the
    module was read: a test may run long after that)."""
    return lambda: {
        "x-knock-signature": knock_sign(FIRST_BYTES, at_ms=int(time.time() - seconds_ago) * 1000)
    }


def no_headers() -> dict[str, str]:
    return {}


SOURCE_REFUSALS: dict[str, tuple[str, Callable[[], dict[str, str]], str]] = {
    "no Knock signature": ("knock/acme", no_headers, "Missing header x-knock-signature"),
    "a stale Knock signature": ("knock/acme", knock_signed(3600), "s old"),
    "an app without the source": ("knock/initech", knock_signed(0), "not signed by Knock"),
    "no Twilio signature": ("twilio/acme", no_headers, "Missing header X-Twilio-Signature"),
    "an unknown platform": ("mailchimp/acme", no_headers, "takes no callbacks from 'mailchimp'"),
}


@pytest.mark.parametrize("case", sorted(SOURCE_REFUSALS))
def test_a_caller_who_cannot_be_the_platform_is_refused_before_its_body(
    door: Door, case: str
) -> None:
    target, headers, said = SOURCE_REFUSALS[case]
    answer = post_unfinished(door.port, headers(), path=f"/api/v1/sources/{target}")
    assert answer.status in (401, 404), answer.body
    assert answer.headers["connection"] == "close"
    assert said in answer.json()["detail"]
