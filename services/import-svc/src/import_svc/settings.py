"""Settings of import-svc, read from IMPORT_* environment variables when built from the env.

`insights serve import` also reads where Kafka and PostgreSQL are (KAFKA_*, POSTGRES_*)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from import_svc.domain.csv_stream import MAX_RECORD_BYTES
from import_svc.domain.validation import MAX_BLANK_LINES, MAX_BYTES, MAX_ROWS
from import_svc.service import BEHIND_AFTER, MAX_RUNNING_PER_APP, STALLED_AFTER, TIME_BUDGET
from insights_common.settings import KafkaSettings, PostgresSettings


class ImportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMPORT_", extra="ignore")

    data_dir: Path = Path(".insights-import")
    """Where uploads wait while their import runs."""
    max_rows: int = Field(default=MAX_ROWS, ge=1)
    max_bytes: int = Field(default=MAX_BYTES, ge=1)
    max_record_bytes: int = Field(default=MAX_RECORD_BYTES, ge=64, le=128 * 1024)
    """The longest row (one CSV record) a file may hold; at most 128 KiB, the csv module's own
    limit for one cell."""
    max_blank_lines: int = Field(default=MAX_BLANK_LINES, ge=0)
    time_budget_seconds: float = Field(default=TIME_BUDGET.total_seconds(), gt=0)
    """How long an import may take to upload and validate its file before it is rejected."""
    max_running_per_app: int = Field(default=MAX_RUNNING_PER_APP, ge=1)
    """Imports one app may have running at once; one more is answered 429 with Retry-After."""
    behind_after_seconds: float = Field(default=BEHIND_AFTER.total_seconds(), gt=0)
    """A published import whose users the projection has not advanced on for this long says so
    (a `projection_behind` warning)."""
    stalled_after_seconds: float = Field(default=STALLED_AFTER.total_seconds(), gt=0)
    """... and for this long, fails with `projection_stalled` (its users are kept)."""
    replica_id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=200)
    """Names this replica: it owns the imports it runs and resumes them after a restart, and
    its Kafka transactions use it. Stable across restarts, unique across replicas."""
    host: str = "127.0.0.1"
    port: int = 8001
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
