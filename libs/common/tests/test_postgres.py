"""PostgresDatabase: the pool, its schema, numbered migrations per component, and its
statements as spans when the process traces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from insights_common.outage import DependencyUnavailable
from insights_common.postgres.database import MigrationError, PostgresDatabase, quote_ident

if TYPE_CHECKING:
    from conftest import PgSchema

integration = pytest.mark.integration


@pytest.fixture
async def db(pg_schema: PgSchema) -> AsyncIterator[PostgresDatabase]:
    database = await PostgresDatabase.connect(pg_schema.dsn, schema=pg_schema.schema, max_size=2)
    yield database
    await database.close()


async def migration_rows(db: PostgresDatabase) -> list[tuple[str, int]]:
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT component, version, applied_at FROM schema_migrations"
            " ORDER BY component, version"
        )
    assert all(row["applied_at"] is not None for row in rows)
    return [(row["component"], row["version"]) for row in rows]


STEPS = (
    "CREATE TABLE things (id integer PRIMARY KEY)",
    "ALTER TABLE things ADD COLUMN name text NOT NULL DEFAULT 'unnamed'",
    "INSERT INTO things (id) VALUES (1); INSERT INTO things (id, name) VALUES (2, 'two')",
)


@integration
async def test_steps_apply_in_order_once(db: PostgresDatabase) -> None:
    await db.migrate("widgets", STEPS)
    # Applying the same (non-idempotent) steps again must be a no-op, not a duplicate table.
    await db.migrate("widgets", STEPS)
    assert await migration_rows(db) == [("widgets", 1), ("widgets", 2), ("widgets", 3)]
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT id, name FROM things ORDER BY id")
    assert [tuple(row) for row in rows] == [(1, "unnamed"), (2, "two")]


@integration
async def test_a_new_step_is_applied_alone(db: PostgresDatabase) -> None:
    await db.migrate("widgets", STEPS[:2])
    assert await db.applied_versions("widgets") == [1, 2]
    await db.migrate("widgets", STEPS)
    assert await db.applied_versions("widgets") == [1, 2, 3]
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM things") == 2


@integration
async def test_components_keep_their_own_versions(db: PostgresDatabase) -> None:
    await db.migrate("widgets", STEPS[:1])
    await db.migrate("gadgets", ["CREATE TABLE gadgets (id integer)"])
    await db.migrate("widgets", STEPS)
    assert await migration_rows(db) == [
        ("gadgets", 1),
        ("widgets", 1),
        ("widgets", 2),
        ("widgets", 3),
    ]
    assert await db.applied_versions("nothing") == []


@integration
async def test_a_failing_step_leaves_nothing_applied(db: PostgresDatabase) -> None:
    broken = (*STEPS[:2], "ALTER TABLE things ADD COLUMN name text")  # the column exists
    with pytest.raises(MigrationError, match=r"widgets #3 failed.*already exists") as info:
        await db.migrate("widgets", broken)
    assert (info.value.component, info.value.version) == ("widgets", 3)
    assert await db.applied_versions("widgets") == []
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT to_regclass('things')") is None
    await db.migrate("widgets", STEPS)
    assert await db.applied_versions("widgets") == [1, 2, 3]


@integration
async def test_processes_starting_together_apply_each_step_once(pg_schema: PgSchema) -> None:
    # Separate pools stand for separate replicas; the sleep keeps the first one inside its
    # transaction while the others arrive, including before schema_migrations exists.
    steps = (
        "CREATE TABLE applied (n integer); SELECT pg_sleep(0.3)",
        "INSERT INTO applied VALUES (2)",
    )
    replicas = [
        await PostgresDatabase.connect(pg_schema.dsn, schema=pg_schema.schema, max_size=1)
        for _ in range(5)
    ]
    try:
        await asyncio.gather(*(replica.migrate("race", steps) for replica in replicas))
        assert await migration_rows(replicas[0]) == [("race", 1), ("race", 2)]
        async with replicas[0].acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM applied") == 1
    finally:
        for replica in replicas:
            await replica.close()


@integration
async def test_tables_live_in_the_given_schema_on_every_pooled_connection(
    db: PostgresDatabase, pg_schema: PgSchema
) -> None:
    await db.migrate("widgets", STEPS[:1])
    for _ in range(4):
        # The pool resets each connection on release (RESET ALL); the schema must survive it.
        async with db.acquire() as conn:
            await conn.execute("SET search_path TO public")
        async with db.acquire() as conn:
            assert await conn.fetchval("SELECT current_schema()") == pg_schema.schema
    async with db.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
            " ORDER BY table_name",
            pg_schema.schema,
        )
    assert [row["table_name"] for row in tables] == ["schema_migrations", "things"]


BATCH_LOOKUP = "SELECT t.id FROM things AS t JOIN unnest($1::integer[]) AS k(id) ON t.id = k.id"


@integration
async def test_each_execution_of_a_statement_is_planned_for_its_own_values(
    pg_schema: PgSchema,
) -> None:
    """PostgreSQL may keep one generic plan for a statement prepared five times, costed on the
    table as it was then: a lookup of a batch's keys in a table that was nearly empty would go on
    scanning it whole as it grows. Every connection the process opens plans each execution."""
    db = await PostgresDatabase.connect(pg_schema.dsn, schema=pg_schema.schema, max_size=1)
    own = db.dedicated()
    plans = "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1"
    try:
        await db.migrate("widgets", STEPS[:1])
        for batch in range(8):
            keys = list(range(batch * 100, batch * 100 + 100))
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO things (id) SELECT unnest($1::integer[])", keys)
                assert len(await conn.fetch(BATCH_LOOKUP, keys)) == 100
            async with own.use() as dedicated:
                assert len(await dedicated.fetch(BATCH_LOOKUP, keys)) == 100
        async with db.acquire() as conn:
            pooled = await conn.fetch(plans, BATCH_LOOKUP)
        async with own.use() as dedicated:
            alone = await dedicated.fetch(plans, BATCH_LOOKUP)
        assert [tuple(row) for row in pooled] == [tuple(row) for row in alone] == [(0, 8)]
    finally:
        await db.close()


@integration
async def test_migrate_creates_a_missing_schema(pg_schema: PgSchema) -> None:
    schema = f"{pg_schema.schema}_new"
    db = await PostgresDatabase.connect(pg_schema.dsn, schema=schema, max_size=1)
    try:
        await db.migrate("widgets", STEPS)
        async with db.transaction() as conn:
            assert await conn.fetchval("SELECT count(*) FROM things") == 2
    finally:
        async with db.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        await db.close()


@integration
async def test_a_transaction_rolls_back_when_its_body_raises(db: PostgresDatabase) -> None:
    await db.migrate("widgets", STEPS[:1])
    with pytest.raises(asyncpg.UniqueViolationError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO things (id) VALUES (7)")
            await conn.execute("INSERT INTO things (id) VALUES (7)")
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM things") == 0


@integration
async def test_ping_answers_true_while_the_server_answers(db: PostgresDatabase) -> None:
    assert await db.ping()


@pytest.mark.unit
async def test_ping_answers_false_when_nothing_listens() -> None:
    # min_size=0: the pool opens no connection until asked, so only ping meets the refusal.
    db = await PostgresDatabase.connect("postgresql://insights@127.0.0.1:1/none", min_size=0)
    try:
        assert not await db.ping()
    finally:
        await db.close()


@pytest.mark.unit
def test_identifiers_are_quoted() -> None:
    assert quote_ident('we"ird') == '"we""ird"'


@integration
async def test_a_dedicated_connection_is_reused_and_replaced_after_a_failure(
    db: PostgresDatabase,
) -> None:
    own = db.dedicated()
    await db.migrate("widgets", STEPS[:1])
    async with own.use() as conn:
        first = await conn.fetchval("SELECT pg_backend_pid()")
        # The schema is the database's, as on the pool's connections.
        assert await conn.fetchval("SELECT count(*) FROM things") == 0
    async with own.use() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") == first
    with pytest.raises(asyncpg.UndefinedTableError):
        async with own.use() as conn:
            await conn.execute("SELECT * FROM nothing_here")
    async with own.use() as conn:  # what a failed statement may have left is not seen again
        assert await conn.fetchval("SELECT pg_backend_pid()") != first


@integration
async def test_a_dedicated_connection_lost_to_the_server_is_one_outage(
    db: PostgresDatabase,
) -> None:
    own = db.dedicated()
    async with own.use() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")

    async def terminate_while_it_works() -> None:
        busy = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
        async with db.acquire() as other:
            for _ in range(1000):
                if await other.fetchval(busy, pid):
                    break
                await asyncio.sleep(0.01)
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)

    # The server ends the connection in the middle of a statement: one outage, not a crash.
    terminating = asyncio.create_task(terminate_while_it_works())
    with pytest.raises(DependencyUnavailable):
        async with own.use() as conn:
            await conn.fetchval("SELECT pg_sleep(30)")
    await terminating
    async with own.use() as conn:
        assert await conn.fetchval("SELECT 1") == 1
    await db.close()
    with pytest.raises(asyncpg.InterfaceError):
        async with own.use() as conn:  # closed with the database, not opened again
            await conn.fetchval("SELECT 1")


@integration
async def test_statements_within_a_trace_are_its_spans_when_the_process_traces(
    pg_schema: PgSchema,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = await PostgresDatabase.connect(
        pg_schema.dsn, schema=pg_schema.schema, max_size=1, tracer_provider=provider
    )
    untraced = await PostgresDatabase.connect(pg_schema.dsn, schema=pg_schema.schema, max_size=1)
    try:
        async with traced.acquire() as conn:
            await conn.fetchval("SELECT 'outside any trace'")
        with provider.get_tracer("test").start_as_current_span("request") as request:
            async with traced.acquire() as conn:
                await conn.execute("SELECT $1::int", 1)
            async with traced.dedicated().use() as own:
                await own.fetchval("SELECT 'own connection'")
            with pytest.raises(asyncpg.UndefinedTableError):
                async with traced.acquire() as conn:
                    await conn.fetch("SELECT * FROM nothing_here")
            async with untraced.acquire() as conn:
                await conn.fetchval("SELECT 'untraced process'")
        await asyncio.sleep(0.05)  # asyncpg calls the loggers at the loop's next turns
    finally:
        await traced.close()
        await untraced.close()
        provider.shutdown()
    spans = {
        span.attributes["db.query.text"]: span
        for span in exporter.get_finished_spans()
        if span.attributes and "db.query.text" in span.attributes
    }
    assert {"SELECT $1::int", "SELECT 'own connection'", "SELECT * FROM nothing_here"} <= set(spans)
    assert not {"SELECT 'outside any trace'", "SELECT 'untraced process'"} & set(spans)
    request_id = request.get_span_context().span_id
    assert {span.parent.span_id for span in spans.values() if span.parent} == {request_id}
    one = spans["SELECT $1::int"]
    assert (one.name, one.kind) == ("postgresql SELECT", SpanKind.CLIENT)
    assert one.attributes is not None and one.attributes["db.system.name"] == "postgresql"
    failed = spans["SELECT * FROM nothing_here"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "UndefinedTableError"
