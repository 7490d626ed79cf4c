from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from ingest_support import RecordingBus

from insights_common.auth import SecretBox
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "insights.sqlite3"


@pytest.fixture
def db(db_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(db_path)
    yield database
    database.close()


@pytest.fixture
def keys(db: SqliteDatabase) -> SqliteKeyStore:
    return SqliteKeyStore(db, SecretBox(Fernet.generate_key()))


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def acme_secret(keys: SqliteKeyStore) -> str:
    return await keys.rotate_webhook_secret("acme")
