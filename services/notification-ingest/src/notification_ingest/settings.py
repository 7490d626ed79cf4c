"""Settings of notification-ingest, read from INGEST_* environment variables.

`insights serve ingest` also reads where Kafka and PostgreSQL are (KAFKA_*, POSTGRES_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from insights_common.settings import KafkaSettings, PostgresSettings

MIB = 1024 * 1024


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    max_batch: int = Field(default=1000, ge=1, description="Most events one request may carry.")
    max_body_bytes: int = Field(
        default=10 * MIB, ge=1, description="Largest webhook body taken, in bytes."
    )
    host: str = "127.0.0.1"
    port: int = 8002
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
