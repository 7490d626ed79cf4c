import base64
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import Depends, FastAPI

from insights_common.auth import (
    MissingMasterKey,
    SecretBox,
    sign,
    verify_signature,
    write_master_keys,
)
from insights_common.bus import InProcessBus
from insights_common.http.access import Access
from insights_common.http.conventions import (
    Problem,
    cursor_integer,
    cursor_text,
    decode_cursor,
    encode_cursor,
    install_problem_handlers,
    problem_responses,
)
from insights_common.http.observability import install_observability
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from insights_contracts import AnyEvent, NotificationDelivered, UserUpserted
from insights_contracts.topics import NOTIFICATIONS, USERS

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> SqliteDatabase:
    database = SqliteDatabase(tmp_path / "insights.db")
    yield database  # type: ignore[misc]
    database.close()


async def test_bus_routes_each_event_to_its_topic_in_order() -> None:
    bus = InProcessBus()
    seen: dict[str, list[str]] = {USERS: [], NOTIFICATIONS: []}

    def collector(topic: str):  # type: ignore[no-untyped-def]
        async def handle(batch: Sequence[AnyEvent]) -> None:
            seen[topic].extend(e.event_id for e in batch)

        return handle

    bus.subscribe([USERS], collector(USERS), group="users")
    bus.subscribe([NOTIFICATIONS], collector(NOTIFICATIONS), group="notifications")
    await bus.publish(
        [
            UserUpserted(event_id="u1", app_id="a", occurred_at=NOW, user_id="x"),
            NotificationDelivered(
                event_id="n1", app_id="a", occurred_at=NOW, message_id="m", user_id="x"
            ),
            UserUpserted(event_id="u2", app_id="a", occurred_at=NOW, user_id="y"),
        ]
    )
    assert seen == {USERS: ["u1", "u2"], NOTIFICATIONS: ["n1"]}


async def test_write_rolls_back_the_whole_transaction(db: SqliteDatabase) -> None:
    db.migrate("CREATE TABLE IF NOT EXISTS t (v INTEGER PRIMARY KEY)")

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("INSERT INTO t VALUES (1)")

    with pytest.raises(sqlite3.IntegrityError):
        await db.write(insert_then_fail)
    count = await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
    assert count == 0


def test_master_key_file_is_private_and_stable(tmp_path: Path) -> None:
    box = SecretBox.from_data_dir(tmp_path)
    token = box.encrypt("s3cret")
    assert (tmp_path / "master.key").stat().st_mode & 0o077 == 0
    assert SecretBox.from_data_dir(tmp_path).decrypt(token) == "s3cret"


def test_a_master_key_of_several_encrypts_with_the_first_and_decrypts_with_each() -> None:
    new, old = Fernet.generate_key(), Fernet.generate_key()
    by_old = SecretBox(old).encrypt("whsec_old")
    ring = SecretBox.parse(f" {new.decode()},\n{old.decode()} ", source="INSIGHTS_MASTER_KEY")
    assert ring.key_count == 2
    assert ring.decrypt(by_old) == "whsec_old"
    by_ring = ring.encrypt("whsec_new")
    assert SecretBox(new).decrypt(by_ring) == "whsec_new"
    assert SecretBox(old).decrypt(by_ring) is None
    resealed = ring.reseal(by_old)
    assert resealed is not None and SecretBox(new).decrypt(resealed) == "whsec_old"
    assert ring.reseal(SecretBox(Fernet.generate_key()).encrypt("x")) is None
    # a purpose's keys: sealed under the first, opened by a box that still holds only the old
    assert ring.derived_keys("sso")[1] == SecretBox(old).derived_keys("sso")[0]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "holds no key"),
        (" , ", "holds no key"),
        ("not-a-key", "the key is not a Fernet key"),
        (f"{Fernet.generate_key().decode()},short", "key 2 of 2 is not a Fernet key"),
    ],
)
def test_a_master_key_that_is_not_one_is_refused_saying_which(text: str, said: str) -> None:
    with pytest.raises(MissingMasterKey, match=said):
        SecretBox.parse(text, source="INSIGHTS_MASTER_KEY")


def test_the_key_file_is_replaced_whole_and_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = SecretBox.from_data_dir(tmp_path)
    token = first.encrypt("s3cret")
    new = Fernet.generate_key()
    write_master_keys(path, [new, path.read_bytes().strip()])
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]
    both = SecretBox.from_data_dir(tmp_path)
    assert both.key_count == 2 and both.decrypt(token) == "s3cret"
    assert SecretBox(new).decrypt(both.encrypt("x")) == "x"


def test_signature_is_verified_exactly() -> None:
    body = b'{"a":1}'
    header = sign("whsec_x", body)
    assert header.startswith("sha256=")
    assert verify_signature("whsec_x", body, header)
    assert not verify_signature("whsec_x", body + b" ", header)
    assert not verify_signature("whsec_y", body, header)
    assert not verify_signature("whsec_x", body, None)


def test_cursor_round_trip_and_tampering() -> None:
    cursor = encode_cursor({"sent_at": "2026-11-02T10:00:00Z", "id": "m1"})
    assert decode_cursor(cursor) == {"sent_at": "2026-11-02T10:00:00Z", "id": "m1"}
    assert decode_cursor(None) is None
    for bad in ("!!!", "bm90IGpzb24", encode_cursor([1, 2])):  # type: ignore[arg-type]
        with pytest.raises(Problem) as info:
            decode_cursor(bad)
        assert info.value.status == 400
        assert info.value.extra["errors"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize(
    "position",
    [
        '{"after": 9223372036854775808}',  # past SQLite's INTEGER and PostgreSQL's bigint
        '{"after": 18446744073709551615}',
        '{"after": 1e400}',
        '{"after": -9223372036854775809}',
        '{"after": true}',
        '{"after": 1.5}',
        '{"after": "7"}',
        "{}",
    ],
)
def test_a_cursor_integer_the_stores_cannot_compare_is_a_400_naming_cursor(position: str) -> None:
    cursor = base64.urlsafe_b64encode(position.encode()).decode()
    with pytest.raises(Problem) as info:
        cursor_integer(decode_cursor(cursor) or {}, "after")
    assert info.value.status == 400
    assert info.value.extra["errors"][0]["loc"] == ["query", "cursor"]
    assert "without cursor" in str(info.value.detail)


def test_cursor_values_in_range_are_taken() -> None:
    decoded = decode_cursor(encode_cursor({"after": 2**63 - 1, "before": "imp_1"}))
    assert decoded is not None
    assert cursor_integer(decoded, "after") == 2**63 - 1
    assert cursor_text(decoded, "before") == "imp_1"
    with pytest.raises(Problem):
        cursor_text(decoded, "after")


async def test_a_405_lists_every_method_the_path_answers_in_allow() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things")
    async def things() -> list[str]:
        return []

    @app.post("/things")
    async def add_thing() -> dict[str, str]:
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.request("TRACE", "/things")
        assert answer.status_code == 405
        assert answer.headers["content-type"] == "application/problem+json"
        # Starlette alone names only the first route whose path matched.
        assert answer.headers["allow"] == "GET, POST"


def test_the_openapi_declares_the_problems_a_route_gives_and_not_fastapis_422() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things/{thing}", responses=problem_responses({400: "bad", 404: "no such thing"}))
    async def thing(thing: int, limit: int = 20) -> dict[str, int]:
        return {"thing": thing, "limit": limit}

    document = app.openapi()
    responses = document["paths"]["/things/{thing}"]["get"]["responses"]
    assert set(responses) == {"200", "400", "403", "404", "429", "503"}  # 403, 429, 503: any
    assert responses["404"]["description"] == "no such thing"
    assert "application/problem+json" in responses["400"]["content"]
    assert "Retry-After" in responses["503"]["headers"]
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})


async def test_problems_auth_and_metrics_over_http(db: SqliteDatabase) -> None:
    keys = SqliteKeyStore(db, SecretBox(Fernet.generate_key()))
    key = await keys.create_api_key("acme")
    app = FastAPI()
    install_problem_handlers(app)
    install_observability(app, service="test")
    auth = Access(keys).app_id(None)

    @app.get("/api/v1/whoami/{thing}")
    async def whoami(thing: int, app_id: str = Depends(auth)) -> dict[str, str]:  # noqa: B008
        if thing == 0:
            raise Problem(404, "Not found", "No thing 0")
        return {"app_id": app_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        anonymous = await client.get("/api/v1/whoami/1")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        assert "insights keys create" in anonymous.json()["detail"]
        wrong = await client.get("/api/v1/whoami/1", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        headers = {"Authorization": f"Bearer {key}"}
        assert (await client.get("/api/v1/whoami/1", headers=headers)).json() == {"app_id": "acme"}
        missing = await client.get("/api/v1/whoami/0", headers=headers)
        assert missing.status_code == 404
        assert missing.json()["detail"] == "No thing 0"
        invalid = await client.get("/api/v1/whoami/x", headers=headers)
        assert invalid.status_code == 400  # a malformed parameter is a bad request
        assert invalid.json()["errors"][0]["loc"] == ["path", "thing"]
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'route="/api/v1/whoami/{thing}"' in metrics
        assert 'status="401"' in metrics
        assert 'route="unmatched",service="test",status="404"' in metrics  # /nowhere
        assert "/nowhere" not in metrics
