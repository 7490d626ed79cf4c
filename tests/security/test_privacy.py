"""A masked phone number cannot be read back through search, and the embedded data stays its
owner's."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from insights_contracts import UserUpserted
from tests.security.conftest import InProcess

pytestmark = pytest.mark.unit


async def add_user(env: InProcess, user_id: str, phone: str) -> None:
    await env.embedded.bus.publish(
        [
            UserUpserted(
                event_id=f"e-{user_id}",
                app_id="acme",
                occurred_at=datetime.now(UTC),
                user_id=user_id,
                phone_number=phone,
                source="platform",
            )
        ]
    )


async def found(env: InProcess, q: str) -> list[str]:
    answer = await env.client.get("/api/v1/users", params={"q": q}, headers=env.auth)
    assert answer.status_code == 200, answer.text
    return [item["user_id"] for item in answer.json()["items"]]


async def test_a_masked_number_cannot_be_recovered_digit_by_digit(in_process: InProcess) -> None:
    await add_user(in_process, "target", "+14155550171")
    profile = await in_process.client.get("/api/v1/users/target", headers=in_process.auth)
    assert profile.json()["phone_number"] == "+1 415-***-**71"
    # The attack: extend the visible prefix one digit at a time, keeping the digit that finds
    # the user. With prefix matching it read the number back in at most 10 tries a digit.
    known = "+1415"
    for digit in "0123456789":
        assert await found(in_process, known + digit) == []
    for partial in ("+1", "1415", "+1 415-555", "1415555017", "55501", "0171"):
        assert await found(in_process, partial) == [], partial


@pytest.mark.parametrize(
    "whole",
    ["+14155550171", "14155550171", "+1 (415) 555-0171", "1-415-555-0171", "+1.415.555.0171"],
)
async def test_the_whole_number_is_found_in_any_formatting(
    in_process: InProcess, whole: str
) -> None:
    await add_user(in_process, "target", "+14155550171")
    await add_user(in_process, "other", "+14155550172")
    assert await found(in_process, whole) == ["target"]


async def test_id_and_nickname_prefixes_still_match(in_process: InProcess) -> None:
    await add_user(in_process, "target", "+14155550171")
    assert await found(in_process, "tar") == ["target"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_dir_and_sqlite_files_are_readable_by_their_owner_only(
    in_process: InProcess,
) -> None:
    await add_user(in_process, "target", "+14155550171")
    db = Path(in_process.embedded.db.path)
    assert mode(db.parent) == 0o700
    files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    assert all(path.exists() for path in files)
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}


def test_files_left_readable_by_an_older_version_are_narrowed(tmp_path: Path) -> None:
    from insights_common.sqlite.database import SqliteDatabase  # noqa: PLC0415

    path = tmp_path / "insights.db"
    previous = os.umask(0o022)
    try:
        SqliteDatabase(path).close()
        path.chmod(0o644)
        SqliteDatabase(path).close()
    finally:
        os.umask(previous)
    assert mode(path) == 0o600
