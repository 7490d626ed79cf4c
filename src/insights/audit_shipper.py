"""The audit spool's shipper beside a query process: `python -m insights.audit_shipper
--spool-dir DIR --parent PID`, which each query process of the distributed mode starts (and
`insights audit ship --distributed` runs). It loads only what shipping needs: the PostgreSQL
adapter and its settings, from the environment the query process passed on."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from insights_common.audit_ship import EVERY, SpoolShipper, ship_until_stopped
from insights_common.outage import patiently
from insights_common.postgres.audit import PostgresAuditLog
from insights_common.postgres.database import PostgresDatabase
from insights_common.settings import AuditSettings, PostgresSettings


def command(spool: Path, *, every: float = EVERY) -> Callable[[int], list[str]]:
    """This module's command line on the spool directory, passing every `every` seconds, for
    a parent process's id, run by this interpreter."""

    def for_parent(parent: int) -> list[str]:
        return [
            sys.executable,
            *("-m", __name__, "--spool-dir", str(spool), "--parent", str(parent)),
            *("--every", str(every)),
        ]

    return for_parent


async def ship(
    spool: Path | None,
    *,
    parent: int | None,
    every: float | None = None,
    startup_limit: float = 30.0,
) -> None:
    """Ship `spool` (the query processes' default directory when None) into the deployment's
    PostgreSQL (POSTGRES_DSN, POSTGRES_SCHEMA) every `every` seconds (AUDIT_SHIP_EVERY_SECONDS
    when None) until stopped, or until `parent` ends. Started by `parent`, its stdin is a pipe
    from it: each byte asks for a pass at once."""
    settings = PostgresSettings()
    audit = AuditSettings()
    directory = spool if spool is not None else audit.directory(settings)
    db = await patiently(
        "PostgreSQL",
        lambda: PostgresDatabase.connect(
            settings.dsn.get_secret_value(),
            schema=settings.db_schema,
            max_size=2,
            acquire_timeout=settings.timeout,
        ),
        limit=startup_limit,
    )
    try:
        log = PostgresAuditLog(db)
        await log.migrate()
        shipper = SpoolShipper(log, directory, every=every or audit.ship_every_seconds)
        await ship_until_stopped(shipper, parent=parent, wakes=_pipe_from(parent))
    finally:
        await db.close()


def _pipe_from(parent: int | None) -> int | None:
    """This process's stdin when `parent` started it with a pipe there (`ShipperProcess`)."""
    stdin = sys.stdin.fileno() if sys.stdin is not None else None
    if parent is None or stdin is None or not stat.S_ISFIFO(os.fstat(stdin).st_mode):
        return None
    return stdin


def main() -> None:
    from insights import logs  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spool-dir", type=Path)
    parser.add_argument("--parent", type=int)
    parser.add_argument("--every", type=float)
    args = parser.parse_args()
    logs.configure("audit-shipper", chosen=logs.log_format())
    asyncio.run(ship(args.spool_dir, parent=args.parent, every=args.every))


if __name__ == "__main__":
    main()
