"""Settings of notification-ingest, read from INGEST_* environment variables.

`insights serve ingest` also reads where Kafka and PostgreSQL are (KAFKA_*, POSTGRES_*)."""

from __future__ import annotations

from datetime import timedelta

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
    dedup_days: int = Field(
        default=30,
        ge=0,
        description=(
            "Days an event id is remembered, so that the same event sent again is counted as a "
            "duplicate; older ids are dropped every hour. 0 remembers them for ever."
        ),
    )
    signature_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        le=3600,
        description=(
            "How far the t= of a timestamped signature may be from this server's clock, in "
            "seconds, either way; a request signed longer ago is refused (replay protection)."
        ),
    )
    visible_wait_seconds: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description=(
            "The longest a `POST /events?wait=visible` waits for its events to be visible before"
            " it answers with `visible: false` (they are taken all the same)."
        ),
    )
    raw_group: str = "insights-ingest-raw"
    """The consumer group reading the platform's raw topic; replicas share its partitions."""
    phone_group: str = "insights-ingest-phones"
    """The consumer group keeping, from the users topic, whose phone number is whose."""
    raw_batch: int = Field(default=200, ge=1, le=5000)
    """Most raw-topic records taken in one batch (each may hold up to max_batch events)."""
    host: str = "127.0.0.1"
    port: int = 8002
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)

    @property
    def signature_tolerance(self) -> timedelta:
        return timedelta(seconds=self.signature_tolerance_seconds)

    @property
    def dedup_window(self) -> timedelta | None:
        return timedelta(days=self.dedup_days) if self.dedup_days else None
