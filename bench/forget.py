"""What forgetting old event ids costs: the dedup store's pruning, alone and beside ingest.

    uv run --no-sync python -m bench.forget [--ids 1000000] [--old 0.5] [--rate 5000]
        [--backend all] [--json]

For each store (the embedded mode's SQLite file, the distributed mode's PostgreSQL on
POSTGRES_DSN, in a fresh schema removed afterwards) it records `--ids` event ids in batches of
1,000, a share `--old` of them 40 days ago and the rest now, as ingest records them. Then:

- the dedup path alone: batches of 1,000 new ids looked up and recorded, as ingest does for
  each webhook batch, paced at `--rate` ids a second, for 5 seconds: each batch's time;
- forgetting the ids older than 30 days (the default window) while that same path runs beside
  it: how long it takes, how many ids a second it drops, and how the dedup path's batches fared
  meanwhile (p99, and whether it kept its pace).

Wall-clock on whatever else the machine is doing: rerun on a quiet machine to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from bench.ingest import quantile
from insights_common.clock import utc_now
from insights_common.postgres.database import PostgresDatabase
from insights_common.sqlite.database import SqliteDatabase
from notification_ingest.adapters.postgres import PostgresDedupStore
from notification_ingest.adapters.sqlite import SqliteDedupStore
from notification_ingest.ports import DedupStore

BATCH = 1000
WINDOW = timedelta(days=30)
APPS = ("acme", "globex", "initech")


@dataclass
class Figures:
    backend: str
    ids: int
    old: int
    fill_ids_per_s: float
    dedup_ids_per_s_alone: float
    dedup_p99_ms_alone: float
    forget_s: float
    forgotten: int
    forgotten_per_s: float
    dedup_ids_per_s_while_forgetting: float
    dedup_p99_ms_while_forgetting: float
    left: int
    size_mib_before: float
    size_mib_after: float


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


def batch_ids(tag: str, start: int, count: int) -> list[str]:
    # A platform's ids are random, so old and new ids interleave in key order.
    return [uuid.uuid5(uuid.NAMESPACE_OID, f"{tag}-{n}").hex for n in range(start, start + count)]


async def fill(store: DedupStore, clock: Clock, ids: int, old: int) -> float:
    started = time.perf_counter()
    now = clock.now
    for start in range(0, ids, BATCH):
        clock.now = now - timedelta(days=40) if start < old else now
        await store.record(APPS[start // BATCH % len(APPS)], batch_ids("fill", start, BATCH))
    clock.now = now
    return ids / (time.perf_counter() - started)


async def dedup_path(
    store: DedupStore, until: Callable[[], bool], tag: str, rate: int
) -> list[float]:
    """Look up and record a batch of new ids every BATCH / rate seconds until told to stop (or
    as fast as it can, if that is slower); each batch's seconds."""
    took: list[float] = []
    n = 0
    start = time.perf_counter()
    while not until():
        ids = batch_ids(tag, n * BATCH, BATCH)
        began = time.perf_counter()
        seen = await store.seen("acme", ids)
        await store.record("acme", [i for i in ids if i not in seen])
        took.append(time.perf_counter() - began)
        n += 1
        await asyncio.sleep(max(0.0, start + n * BATCH / rate - time.perf_counter()))
    return took


async def measure(
    backend: str,
    store: DedupStore,
    clock: Clock,
    ids: int,
    old: int,
    size: Callable[[], Awaitable[float]],
    count: Callable[[], Awaitable[int]],
    rate: int,
) -> Figures:
    fill_rate = await fill(store, clock, ids, old)
    size_before = await size()

    started = time.perf_counter()
    alone = await dedup_path(store, lambda: time.perf_counter() > started + 5, "alone", rate)
    alone_s = time.perf_counter() - started

    done = asyncio.Event()
    started = time.perf_counter()
    beside = asyncio.create_task(dedup_path(store, done.is_set, "beside", rate))
    forgotten = await store.forget(before=clock.now - WINDOW)
    forget_s = time.perf_counter() - started
    done.set()
    during = await beside
    beside_s = time.perf_counter() - started
    return Figures(
        backend=backend,
        ids=ids,
        old=old,
        fill_ids_per_s=fill_rate,
        dedup_ids_per_s_alone=len(alone) * BATCH / alone_s,
        dedup_p99_ms_alone=1000 * quantile(sorted(alone), 0.99),
        forget_s=forget_s,
        forgotten=forgotten,
        forgotten_per_s=forgotten / forget_s,
        dedup_ids_per_s_while_forgetting=len(during) * BATCH / beside_s,
        dedup_p99_ms_while_forgetting=1000 * quantile(sorted(during), 0.99),
        left=await count(),
        size_mib_before=size_before,
        size_mib_after=await size(),
    )


async def on_sqlite(ids: int, old: int, rate: int) -> Figures:
    with tempfile.TemporaryDirectory(prefix="bench-forget-") as tmp:
        path = Path(tmp) / "insights.db"
        db = SqliteDatabase(path)
        clock = Clock()
        store = SqliteDedupStore(db, clock=clock)

        async def size() -> float:
            # The database's pages, wherever they are yet (some may still be in the log).
            query = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            return int(await db.read(lambda conn: conn.execute(query).fetchone()[0])) / 2**20

        async def count() -> int:
            query = "SELECT count(*) FROM ing_seen_events"
            return int(db.read_sync(lambda conn: conn.execute(query).fetchone()[0]))

        try:
            return await measure("sqlite", store, clock, ids, old, size, count, rate)
        finally:
            db.close()


async def on_postgres(ids: int, old: int, rate: int) -> Figures:
    dsn = os.environ["POSTGRES_DSN"]
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    db = await PostgresDatabase.connect(dsn, schema=schema, max_size=4)
    try:
        clock = Clock()
        store = PostgresDedupStore(db, clock=clock)
        await store.migrate()

        table = f'"{schema}".ing_seen_events'

        async def size() -> float:
            bytes_ = await admin.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
            return float(bytes_) / 2**20

        async def count() -> int:
            return int(await db_count(admin, table))

        return await measure("postgres", store, clock, ids, old, size, count, rate)
    finally:
        await db.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def db_count(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608 - our own name


def show(figures: Figures) -> None:
    f = figures
    print(  # noqa: T201
        f"{f.backend}: {f.ids:,} ids ({f.old:,} older than the window), filled at "
        f"{f.fill_ids_per_s:,.0f} ids/s\n"
        f"  dedup path alone: {f.dedup_ids_per_s_alone:,.0f} ids/s, "
        f"p99 {f.dedup_p99_ms_alone:.1f} ms a batch of {BATCH}\n"
        f"  forgot {f.forgotten:,} ids in {f.forget_s:.1f} s ({f.forgotten_per_s:,.0f} ids/s), "
        f"{f.left:,} left\n"
        f"  dedup path meanwhile: {f.dedup_ids_per_s_while_forgetting:,.0f} ids/s, "
        f"p99 {f.dedup_p99_ms_while_forgetting:.1f} ms\n"
        f"  store on disk: {f.size_mib_before:.0f} MiB before, {f.size_mib_after:.0f} MiB after"
    )


async def run(backends: list[str], ids: int, old: int, rate: int, as_json: bool) -> None:
    for backend in backends:
        figures = await (on_sqlite if backend == "sqlite" else on_postgres)(ids, old, rate)
        if as_json:
            print(json.dumps(asdict(figures)))  # noqa: T201
        else:
            show(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--old", type=float, default=0.5, help="share recorded 40 days ago")
    parser.add_argument("--rate", type=int, default=5000, help="dedup path's ids a second")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--json", action="store_true", help="print one JSON object per store")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    old = round(args.ids * args.old) // BATCH * BATCH
    asyncio.run(run(backends, args.ids, old, args.rate, args.json))


if __name__ == "__main__":
    main()
