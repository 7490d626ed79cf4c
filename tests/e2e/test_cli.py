"""The `insights` command from a terminal: keys, secrets and the CSV import's exit codes."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import INSIGHTS, start_server, stop_server
from tests.deployments import eventually_true

if TYPE_CHECKING:
    from tests.deployments import DistributedDeployment

pytestmark = pytest.mark.e2e


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INSIGHTS, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_import_exit_codes_and_report(tmp_path: Path, data_dir: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("user_id,phone_number,nickname\nalex,+14155550171,Alex Kim\n")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "user_id,phone_number\nkim.minji,+821012345678\nsam,1 415 555 0173\nbad id,+14155550172\n"
    )
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")

    taken = run("import", str(good), "--app", "acme", data_dir=data_dir)
    assert taken.returncode == 0, taken.stderr
    assert "completed" in taken.stdout

    partly = run("import", str(mixed), "--app", "acme", data_dir=data_dir)
    assert partly.returncode == 1, partly.stderr
    assert "Rejected rows" in partly.stdout
    assert "+1 415-***-**73" in partly.stdout  # the E.164 hint for line 3, masked
    assert "5550173" not in partly.stdout

    refused = run("import", str(empty), "--app", "acme", data_dir=data_dir)
    assert refused.returncode == 2
    assert "file rejected" in refused.stdout

    missing = run("import", str(tmp_path / "nope.csv"), "--app", "acme", data_dir=data_dir)
    assert missing.returncode == 2
    assert "not a file" in missing.stderr

    again = run("import", str(good), "--app", "acme", data_dir=data_dir)
    assert again.returncode == 0
    # rows, created, updated, unchanged, rejected
    assert re.search(r"1\W+0\W+0\W+1\W+0", again.stdout), again.stdout

    key = run("keys", "create", "--app", "acme", data_dir=data_dir).stdout.strip()
    server = start_server(data_dir)
    try:
        with server.client(key) as api:
            users = api.get("/api/v1/users", params={"limit": 10}).json()["items"]
            assert sorted(u["user_id"] for u in users) == ["alex", "kim.minji"]
            history = api.get("/api/v1/imports").json()["items"]
            assert [h["status"] for h in history] == [
                "completed",
                "rejected",
                "completed",
                "completed",
            ]
    finally:
        stop_server(server)


def test_bad_app_id_is_refused(data_dir: Path) -> None:
    result = run("keys", "create", "--app", "no spaces", data_dir=data_dir)
    assert result.returncode == 2
    assert "app id" in result.stderr


def test_keys_are_listed_and_a_revoked_key_is_refused(data_dir: Path) -> None:
    keep = run("keys", "create", "--app", "acme", data_dir=data_dir).stdout.strip()
    drop = run("keys", "create", "--app", "acme", data_dir=data_dir).stdout.strip()
    listed = run("keys", "list", "--app", "acme", data_dir=data_dir).stdout
    assert keep[:12] in listed and drop[:12] in listed
    assert keep not in listed and drop not in listed

    assert run("keys", "revoke", drop[:12], "--app", "acme", data_dir=data_dir).returncode == 0
    again = run("keys", "revoke", drop[:12], "--app", "acme", data_dir=data_dir)
    assert again.returncode == 2 and "no key" in again.stderr

    server = start_server(data_dir)
    try:
        with server.client(keep) as api:
            assert api.get("/api/v1/imports").status_code == 200
        with server.client(drop) as api:
            assert api.get("/api/v1/imports").status_code == 401
    finally:
        stop_server(server)


def test_dev_refuses_a_busy_port_before_starting(data_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("dev", "--port", str(port), data_dir=data_dir)
    assert result.returncode == 2
    assert "--port" in result.stderr
    assert "serving" not in result.stdout


def test_import_into_the_distributed_deployment(
    tmp_path: Path, distributed: DistributedDeployment
) -> None:
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("user_id,phone_number,nickname\nalex,+14155550171,Alex\nbad id,+1415,\n")

    def run_distributed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*INSIGHTS, *args, "--distributed"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**distributed.env, "COLUMNS": "200"},
        )

    partly = run_distributed("import", str(mixed), "--app", "acme")
    assert partly.returncode == 1, partly.stderr
    assert "Rejected rows" in partly.stdout and "completed" in partly.stdout
    again = run_distributed("import", str(mixed), "--app", "acme")
    assert again.returncode == 1, again.stderr
    assert re.search(r"2\W+0\W+0\W+1\W+1", again.stdout), again.stdout  # alex is unchanged

    key = distributed.cli("keys", "create", "--app", "acme")
    with distributed.client(key) as api:
        eventually_true(lambda: api.get("/api/v1/users/alex").status_code == 200)
        assert api.get("/api/v1/users/alex").json()["nickname"] == "Alex"
        history = api.get("/api/v1/imports").json()["items"]
        assert [(h["status"], h["created"], h["unchanged"]) for h in history] == [
            ("completed", 0, 1),
            ("completed", 1, 0),
        ]


def test_members_and_key_changes_are_recorded_and_verify_finds_an_edit(data_dir: Path) -> None:
    added = run(
        "members",
        "add",
        "--app",
        "acme",
        "--email",
        "Ann@Example.com",
        "--role",
        "admin",
        data_dir=data_dir,
    )
    assert added.returncode == 0, added.stderr
    password = added.stdout.split()[-1]
    assert len(password) >= 16 and "ann@example.com" in added.stdout
    again = run(
        "members",
        "add",
        "--app",
        "acme",
        "--email",
        "ann@example.com",
        "--role",
        "agent",
        data_dir=data_dir,
    )
    assert again.returncode == 2 and "already a member" in again.stderr
    last_admin = run(
        "members", "remove", "--app", "acme", "--email", "ann@example.com", data_dir=data_dir
    )
    assert last_admin.returncode == 2 and "last admin" in last_admin.stderr
    assert (
        run("keys", "create", "--app", "acme", "--scope", "read", data_dir=data_dir).returncode == 0
    )
    listed = run("members", "list", "--app", "acme", data_dir=data_dir).stdout
    assert "ann@example.com" in listed and "admin" in listed

    intact = run("audit", "verify", "--app", "acme", data_dir=data_dir)
    assert intact.returncode == 0 and "intact: 2 entries" in intact.stdout, intact.stdout
    with sqlite3.connect(data_dir / "insights.db") as db:
        db.execute("DROP TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET detail = 'bo@example.com as admin' WHERE seq = 1")
    tampered = run("audit", "verify", "--app", "acme", data_dir=data_dir)
    assert tampered.returncode == 1
    assert "entry 1 was changed" in tampered.stderr


def test_the_embedded_master_key_is_rotated_without_losing_a_secret(data_dir: Path) -> None:
    secret = run("webhooks", "secret", "--app", "acme", data_dir=data_dir).stdout.strip()
    added = run(
        "sources", "add", "twilio", "--app", "acme", "--secret", "tw-token", data_dir=data_dir
    )
    assert added.returncode == 0, added.stderr
    key_file = data_dir / "master.key"
    old = key_file.read_text().strip()

    server = start_server(data_dir)
    try:
        beside = run("keys", "rotate-master-key", data_dir=data_dir)
        assert beside.returncode == 2 and "stop `insights dev` first" in beside.stderr
        assert f"pid {server.process.pid}" in beside.stderr
        second = run("dev", "--port", "0", data_dir=data_dir)
        assert second.returncode == 2 and "held by another process" in second.stderr
    finally:
        stop_server(server)
    assert key_file.read_text().strip() == old

    rotated = run("keys", "rotate-master-key", data_dir=data_dir)
    assert rotated.returncode == 0, rotated.stderr
    assert "sealed 2 secret(s) of 1 app(s) again" in rotated.stdout
    new = key_file.read_text().strip()
    assert new != old and "," not in new and key_file.stat().st_mode & 0o777 == 0o600
    assert run("webhooks", "secret", "--app", "acme", data_dir=data_dir).stdout.strip() == secret
    intact = run("audit", "verify", "--app", "acme", data_dir=data_dir)
    assert intact.returncode == 0, intact.stdout

    with sqlite3.connect(data_dir / "insights.db") as db:
        actions = [row[0] for row in db.execute("SELECT action FROM audit_log ORDER BY seq")]
    assert actions[-1] == "secrets.reseal"

    from_env = subprocess.run(
        [*INSIGHTS, "keys", "rotate-master-key", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200", "INSIGHTS_MASTER_KEY": new},
    )
    assert from_env.returncode == 2 and "insights keys reseal" in from_env.stderr
    assert key_file.read_text().strip() == new
