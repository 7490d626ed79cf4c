"""What the audit shipper spends on each entry: reading its line back from the spool, chaining
it, and sending it to PostgreSQL with the others of its pass.

    uv run --no-sync python -m bench.audit_ship [--entries 20000] [--per-pass 200]
        [--tries 3] [--json]

A spool in a directory of its own gets `--per-pass` entries of reads (one app, one key, users
and messages of their own, written as the query process writes them), then the shipper makes one
pass over it (`SpoolShipper.ship`, into `PostgresAuditLog`), until `--entries` are shipped. Only
the passes are timed: the shipper's process CPU (`time.process_time`), so neither PostgreSQL's
work nor the wait for its answer counts. PostgreSQL's CPU is counted apart: every process of
the server (its backends, WAL writer and the rest, from /proc) over the run, so run it with
nothing else using that server. At 400 reads a second, a pass every 0.5 s takes 200. Prints
the CPU a pass and an entry for each of `--tries` runs, and checks that the trail holds every
entry, chained.

On POSTGRES_DSN, in a fresh schema removed afterwards. Compare figures of one run, or runs on the
same quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.ingest import CpuMeter
from insights_common.audit import AuditEntry, verify
from insights_common.audit_ship import SpoolShipper
from insights_common.audit_spool import AuditSpool
from insights_common.postgres.audit import PostgresAuditLog
from insights_common.postgres.database import PostgresDatabase

APP = "bench"
START = datetime(2026, 11, 2, 10, tzinfo=UTC)


@dataclass
class Figures:
    entries: int
    per_pass: int
    ms_a_pass: float
    us_an_entry: float
    postgres_us_an_entry: float
    chain_intact: bool


def read_entry(number: int) -> AuditEntry:
    """The entry of a read of a message, 2.5 ms after the read before it."""
    return AuditEntry(
        START + timedelta(microseconds=2500 * number),
        APP,
        "key:0123456789abcdef",
        "message.view",
        f"user-{number % 20000:06d}",
        "127.0.0.1",
        None,
        f"message-{number:08d}",
    )


async def measure(dsn: str, *, entries: int, per_pass: int) -> Figures:
    schema = f"bench_audit_ship_{uuid.uuid4().hex[:8]}"
    db = await PostgresDatabase.connect(dsn, schema=schema, max_size=2)
    directory = Path(tempfile.mkdtemp(prefix="bench-audit-ship-"))
    try:
        log = PostgresAuditLog(db)
        await log.migrate()
        spool = AuditSpool(directory)
        spool.open()
        shipper = SpoolShipper(log, directory)
        if not shipper.try_lock():
            raise SystemExit(f"another shipper holds {directory}")
        spent = 0.0
        passes = entries // per_pass
        server = CpuMeter({})
        for number in range(passes):
            for offset in range(per_pass):
                spool.write(read_entry(number * per_pass + offset))
            started = time.process_time()
            shipped = await shipper.ship()
            spent += time.process_time() - started
            if shipped != per_pass:
                raise SystemExit(f"a pass shipped {shipped} entries of {per_pass}")
        postgres = server.spent()["postgres"]
        spool.close()
        await shipper.ship()
        shipper.close()
        checked = await verify(log, APP)
        return Figures(
            entries=passes * per_pass,
            per_pass=per_pass,
            ms_a_pass=round(spent / passes * 1e3, 3),
            us_an_entry=round(spent / (passes * per_pass) * 1e6, 2),
            postgres_us_an_entry=round(postgres / (passes * per_pass) * 1e6, 2),
            chain_intact=checked.intact and checked.entries == passes * per_pass,
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        async with db.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--per-pass", type=int, default=200)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.per_pass < 1 or args.entries < args.per_pass:
        raise SystemExit("--per-pass must be at least 1, and --entries at least --per-pass")
    dsn = os.environ.get("POSTGRES_DSN", "postgresql://insights@127.0.0.1:5432/insights")
    tries = [
        asyncio.run(measure(dsn, entries=args.entries, per_pass=args.per_pass))
        for _ in range(args.tries)
    ]
    if args.json:
        print(json.dumps([asdict(figures) for figures in tries]))
        return
    for figures in tries:
        print(
            f"{figures.entries} entries, {figures.per_pass} a pass: {figures.ms_a_pass} ms of"
            f" the shipper's CPU a pass, {figures.us_an_entry} µs an entry;"
            f" PostgreSQL {figures.postgres_us_an_entry} µs an entry;"
            f" chain intact: {figures.chain_intact}"
        )


if __name__ == "__main__":
    main()
