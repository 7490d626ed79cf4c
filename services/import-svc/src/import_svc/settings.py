"""Settings of import-svc, read from IMPORT_* environment variables when built from the env."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from import_svc.domain.validation import MAX_BYTES, MAX_ROWS


class ImportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMPORT_", extra="ignore")

    data_dir: Path
    max_rows: int = Field(default=MAX_ROWS, ge=1)
    max_bytes: int = Field(default=MAX_BYTES, ge=1)
