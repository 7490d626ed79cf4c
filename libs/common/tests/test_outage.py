"""Outages: bounded waits, the 503 a door answers, waiting out accepted work; and a PostgreSQL
of the test's own killed and started again under a pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from insights_common.http.conventions import PROBLEM_JSON, install_problem_handlers
from insights_common.outage import (
    DependencyUnavailable,
    RefusalLog,
    bounded,
    patiently,
    waiting_out,
)
from insights_common.postgres.database import PostgresDatabase, lost
from tests.own_servers import OwnServers

unit = pytest.mark.unit


class Refused(Exception):
    """Stands for a client library's 'connection refused'."""


@unit
async def test_a_bound_passed_is_an_outage_with_retry_after() -> None:
    with pytest.raises(DependencyUnavailable) as raised:
        async with bounded("Kafka", 0.05):
            await asyncio.sleep(5)
    assert raised.value.dependency == "Kafka"
    assert raised.value.retry_after == 1
    assert "no answer within 0.05 s" in str(raised.value)


@unit
async def test_the_errors_of_a_dependency_going_away_are_an_outage_and_others_are_not() -> None:
    with pytest.raises(DependencyUnavailable) as raised:
        async with bounded("PostgreSQL", 4.2, passing=(Refused,)):
            raise Refused("connection refused")
    assert raised.value.retry_after == 5
    assert isinstance(raised.value.__cause__, Refused)
    with pytest.raises(KeyError):
        async with bounded("PostgreSQL", 4.2, passing=(Refused,)):
            raise KeyError("a bug is a bug")


@unit
async def test_accepted_work_waits_out_an_outage() -> None:
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise DependencyUnavailable("Kafka", "restarting")
        return "done"

    assert await waiting_out("import", attempt, limit=5, delays=(0.01,)) == "done"
    assert calls == 3


class Raising:
    """An attempt that raises `error` each time, counting its calls."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        raise self.error


@unit
async def test_an_outage_longer_than_the_limit_and_any_other_error_are_raised() -> None:
    async def down() -> None:
        raise DependencyUnavailable("Kafka", "down")

    with pytest.raises(DependencyUnavailable):
        await waiting_out("import", down, limit=0.05, delays=(0.01,))
    broken = Raising(ValueError("not an outage"))
    with pytest.raises(ValueError, match="not an outage"):
        await waiting_out("import", broken, limit=5, delays=(0.01,))
    assert broken.calls == 1


class Incompatible(Exception):
    """Stands for a store that cannot take this version's schema."""


@unit
async def test_a_dependency_starting_is_waited_for_and_what_no_wait_mends_is_not() -> None:
    answers: list[Exception | str] = [Refused("starting"), Refused("starting"), "up"]

    async def starting() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await patiently("OpenSearch", starting, limit=5, final=(Incompatible,)) == "up"
    incompatible = Raising(Incompatible("the field activity_us cannot change type"))
    with pytest.raises(Incompatible, match="activity_us"):
        await patiently("OpenSearch", incompatible, limit=5, final=(Incompatible,))
    assert incompatible.calls == 1
    with pytest.raises(RuntimeError, match=r"OpenSearch did not answer in 0.1 s: .*activity_us"):
        await patiently("OpenSearch", incompatible, limit=0.1)  # without `final`: waited on


@unit
async def test_a_door_answers_503_with_retry_after_and_the_dependency(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/events")
    async def events() -> None:
        raise DependencyUnavailable("PostgreSQL", "connection refused", retry_after=3)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/events")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "3"
    assert answer.headers["content-type"] == PROBLEM_JSON
    problem = answer.json()
    assert problem["status"] == 503
    assert problem["dependency"] == "PostgreSQL"
    assert problem["instance"] == "/events"
    assert "connection refused" in problem["detail"]
    assert "again after 3 s" in problem["detail"]
    # ...and the operator reads why in the service's log.
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        "refused 1 request(s) with 503, the last POST /events: PostgreSQL is unavailable:"
        " connection refused"
    ]


@unit
def test_refusals_are_logged_first_then_counted_once_in_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    refusals = RefusalLog(every=10.0, clock=lambda: now[0])
    try:
        raise DependencyUnavailable("OpenSearch", "no answer within 5 s") from TimeoutError("read")
    except DependencyUnavailable as outage:
        opensearch = outage
    kafka = DependencyUnavailable("Kafka", "KafkaConnectionError: refused")
    for _ in range(5):
        refusals.refused(opensearch, "GET /api/v1/users")
        now[0] += 1.0
    refusals.refused(kafka, "POST /api/v1/events")  # another dependency: its own first line
    now[0] += 6.0  # 11 s after the first line
    refusals.refused(opensearch, "GET /api/v1/stats")
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert lines == [
        "refused 1 request(s) with 503, the last GET /api/v1/users: OpenSearch is unavailable:"
        " no answer within 5 s (TimeoutError: read)",
        "refused 1 request(s) with 503, the last POST /api/v1/events: Kafka is unavailable:"
        " KafkaConnectionError: refused",
        "refused 5 request(s) with 503, the last GET /api/v1/stats: OpenSearch is unavailable:"
        " no answer within 5 s (TimeoutError: read)",
    ]


@unit
def test_a_refused_path_cannot_start_a_line_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog()
    outage = DependencyUnavailable("PostgreSQL", "connection refused")
    refusals.refused(outage, "GET /api/v1/users/a\nWARNING forged\x7f")
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "\n" not in line
    assert "/api/v1/users/a\\x0aWARNING forged\\x7f:" in line


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnServers]:
    servers = OwnServers(("postgres",))
    try:
        servers.up()
        yield servers
    finally:
        servers.down()


@pytest.fixture
async def pool(own_postgres: OwnServers) -> AsyncIterator[PostgresDatabase]:
    db = await PostgresDatabase.connect(
        own_postgres.endpoint("postgres"), max_size=4, acquire_timeout=2
    )
    yield db
    await db.close()


async def answer(db: PostgresDatabase) -> int:
    async with db.acquire() as conn:
        return int(await conn.fetchval("SELECT 1"))


@pytest.mark.integration
async def test_a_killed_postgres_is_an_outage_and_the_pool_recovers(
    own_postgres: OwnServers, pool: PostgresDatabase
) -> None:
    assert await asyncio.gather(*(answer(pool) for _ in range(4))) == [1] * 4
    await asyncio.to_thread(own_postgres.kill, "postgres")
    for _ in range(3):  # the pooled connections died, then no new one can be had
        with pytest.raises(DependencyUnavailable) as raised:
            await answer(pool)
        assert raised.value.dependency == "PostgreSQL"
    await asyncio.to_thread(own_postgres.up, "postgres")
    refused = 0
    for _ in range(6):
        try:
            assert await answer(pool) == 1
        except DependencyUnavailable:
            refused += 1  # a connection lost during the restart, found on its first use
    # The pool replaces every connection once one is found dead: at most one refusal.
    assert refused <= 1
    assert await asyncio.gather(*(answer(pool) for _ in range(4))) == [1] * 4


@pytest.mark.integration
async def test_a_connection_closed_between_two_statements_is_an_outage(
    pool: PostgresDatabase,
) -> None:
    """asyncpg answers an InterfaceError (not a connection error) to a statement on a connection
    the server dropped after the previous one: that is the loss of PostgreSQL, a 503, never a
    500."""
    with pytest.raises(DependencyUnavailable) as raised:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            async with pool.acquire() as other:
                assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
            for _ in range(100):  # until the event loop has read the server's goodbye
                if lost(conn):
                    break
                await asyncio.sleep(0.05)
            assert lost(conn)
            await conn.fetchval("SELECT 1")
    assert raised.value.dependency == "PostgreSQL"
    assert "connection lost" in str(raised.value)
    assert await answer(pool) == 1  # the pool hands out a live connection again
