"""The distributed query process's audit shipper: a process of its own beside the query process,
which takes the spooled entries of reads into PostgreSQL, is started again when it dies, and
ships what is left when the query process is killed."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from bench.audit_read import children
from insights import audit_shipper
from insights_common.audit import AuditEntry, AuditFilter, GroupedAuditLog
from insights_common.audit_ship import ShipperProcess
from insights_common.audit_spool import AuditSpool, SpooledTrail
from insights_common.postgres.audit import PostgresAuditLog
from insights_common.postgres.database import PostgresDatabase
from tests.deployments import DistributedDeployment

if TYPE_CHECKING:
    from conftest import PgSchema

pytestmark = pytest.mark.e2e

API = "/api/v1"
AT = datetime(2026, 11, 2, 10, tzinfo=UTC)


def shipper_of(deployment: DistributedDeployment, name: str = "query") -> int:
    """The pid of the query process's shipper, once it runs."""
    query = deployment.processes[name].process.pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = children(query)
        if found:
            (pid,) = found
            return pid
        time.sleep(0.05)
    raise AssertionError(f"the {name} process started no shipper in 30 s")


def gone(pid: int, limit: float = 30) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # ended, not yet reaped by its parent
            return True
        time.sleep(0.05)
    return False


def viewed(api: httpx.Client, user_id: str) -> list[str]:
    answer = api.get(f"{API}/audit", params={"user_id": user_id})
    assert answer.status_code == 200, answer.text
    return [entry["action"] for entry in answer.json()["items"]]


def test_reads_are_shipped_by_a_process_of_their_own_through_either_crash(
    distributed: DistributedDeployment,
) -> None:
    key = distributed.cli("keys", "create", "--app", "acme")
    with distributed.client(key) as api:
        # a user nobody imported: the read is recorded as asked, and answers 404
        assert api.get(f"{API}/users/alex").status_code == 404
        assert viewed(api, "alex") == ["user.view"]  # the audit waits for the shipper

        first = shipper_of(distributed)
        os.kill(first, signal.SIGKILL)
        assert gone(first)
        assert api.get(f"{API}/users/bo").status_code == 404  # spooled while none ships
        again = shipper_of(distributed)
        assert again != first  # started again by the query process
        assert viewed(api, "bo") == ["user.view"]

    # The query process dies: its shipper ships what it left, removes its file, and ends.
    with distributed.client(key) as api:
        assert api.get(f"{API}/users/cy").status_code == 404
    distributed.kill("query")
    assert gone(again)
    distributed.start("query")
    distributed.wait_ready("query")
    with distributed.client(key) as api:
        assert viewed(api, "cy") == ["user.view"]
    assert "is intact" in distributed.cli("audit", "verify", "--app", "acme")


async def test_the_shipper_process_passes_at_once_when_its_query_process_reads_the_trail(
    pg_schema: PgSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It passes once an hour here: only the byte its parent writes to its stdin can have it
    pass within the reader's 10 s."""
    monkeypatch.setenv("POSTGRES_DSN", pg_schema.dsn)
    monkeypatch.setenv("POSTGRES_SCHEMA", pg_schema.schema)
    db = await PostgresDatabase.connect(pg_schema.dsn, schema=pg_schema.schema, max_size=2)
    log = PostgresAuditLog(db)
    await log.migrate()
    shipper = ShipperProcess(audit_shipper.command(tmp_path, every=3600))
    trail = SpooledTrail(GroupedAuditLog(log), AuditSpool(tmp_path), shipper)
    await trail.start()
    try:
        for user_id in ("alex", "bo"):
            trail.beside(AuditEntry(AT, "acme", "key:k", "user.view", user_id))
            (last, *_) = await trail.search("acme", AuditFilter(), before_seq=None, limit=10)
            assert last.user_id == user_id
    finally:
        await trail.stop()
        await db.close()
