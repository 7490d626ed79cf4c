"""Settings of notification-ingest, read from INGEST_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_")

    max_batch: int = Field(default=1000, ge=1, description="Most events one request may carry.")
    max_body_bytes: int = Field(
        default=10 * MIB, ge=1, description="Largest webhook body taken, in bytes."
    )
