"""What recording a read costs: the audit trail's appends in PostgreSQL, as the query path
makes them.

    uv run --no-sync python -m bench.audit_append [--clients 20] [--seconds 10]
        [--work-us 400] [--replicas 1] [--json]

`--clients` concurrent requests, each appending one entry for the same app through
`GroupedAuditLog` over `PostgresAuditLog` (as every read of a profile, message list or message
does) and then doing `--work-us` of CPU in the same event loop (the rest of the request's
handling, so the appends wait on a busy loop as they do in the query process), one after the
other for `--seconds`. `--replicas 2` splits the clients over two logs on two pools, as two query
replicas of one app write one chain. Prints the appends a second, the latency of an append (p50,
p99, max), the transactions PostgreSQL committed per append, and whether the chain verifies.

On POSTGRES_DSN, in a fresh schema removed afterwards. Wall-clock on whatever else the machine is
doing: compare figures of one run, or runs on the same quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass

import asyncpg

from bench.ingest import quantile
from insights_common.audit import AuditEntry, GroupedAuditLog, verify
from insights_common.clock import utc_now
from insights_common.postgres.audit import PostgresAuditLog
from insights_common.postgres.database import PostgresDatabase

APP = "acme"


@dataclass
class Figures:
    clients: int
    replicas: int
    work_us: int
    seconds: float
    appends: int
    appends_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    commits_per_append: float
    chain_intact: bool


def burn(microseconds: int) -> None:
    """CPU in the event loop, as a request's own handling takes it."""
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


async def commits(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return int(value)


async def measure(
    dsn: str, *, clients: int, seconds: float, work_us: int, replicas: int
) -> Figures:
    schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
    dbs = [await PostgresDatabase.connect(dsn, schema=schema, max_size=4) for _ in range(replicas)]
    try:
        logs = [PostgresAuditLog(db) for db in dbs]
        for log in logs:
            await log.migrate()
        grouped = [GroupedAuditLog(log) for log in logs]
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def client(number: int) -> None:
            log = grouped[number % replicas]
            while time.perf_counter() < deadline:
                entry = AuditEntry(
                    at=utc_now(),
                    app_id=APP,
                    actor=f"key:bench-{number}",
                    action="message.view",
                    user_id=f"user-{number}",
                    address="127.0.0.1",
                )
                started = time.perf_counter()
                await log.append(entry)
                latencies.append(time.perf_counter() - started)
                burn(work_us)

        before = await commits(dsn)
        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
        committed = await commits(dsn) - before
        checked = await verify(logs[0], APP)
        ordered = sorted(latencies)
        return Figures(
            clients=clients,
            replicas=replicas,
            work_us=work_us,
            seconds=round(elapsed, 2),
            appends=len(latencies),
            appends_per_s=round(len(latencies) / elapsed, 1),
            p50_ms=round(quantile(ordered, 0.50) * 1000, 2),
            p99_ms=round(quantile(ordered, 0.99) * 1000, 2),
            max_ms=round(ordered[-1] * 1000, 2),
            commits_per_append=round(committed / max(len(latencies), 1), 3),
            chain_intact=checked.intact and checked.entries == len(latencies),
        )
    finally:
        async with dbs[0].acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        for db in dbs:
            await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--work-us", type=int, default=400)
    parser.add_argument("--replicas", type=int, choices=(1, 2), default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dsn = os.environ.get("POSTGRES_DSN", "postgresql://insights@127.0.0.1:5432/insights")
    figures = asyncio.run(
        measure(
            dsn,
            clients=args.clients,
            seconds=args.seconds,
            work_us=args.work_us,
            replicas=args.replicas,
        )
    )
    if args.json:
        print(json.dumps(asdict(figures)))
        return
    for name, value in asdict(figures).items():
        print(f"{name:>20}: {value}")


if __name__ == "__main__":
    main()
