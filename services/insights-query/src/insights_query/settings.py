"""Settings of insights-query, from QUERY_* environment variables.

`insights serve query` and `insights serve projector` also read where OpenSearch, Kafka and
PostgreSQL are (OPENSEARCH_*, KAFKA_*, POSTGRES_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from insights_common.settings import KafkaSettings, OpenSearchSettings, PostgresSettings
from insights_common.sso import SsoSettings


class QuerySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUERY_", extra="ignore")

    default_window_days: int = Field(default=30, ge=1, le=366)
    """User statistics cover this many UTC days up to now when no since/until is given."""
    max_window_days: int = Field(default=366, ge=1)
    preview_length: int = Field(default=160, ge=16)
    """Characters of the body shown in a message list item."""
    export_page_size: int = Field(default=500, ge=1, le=5000)
    """Messages read per store query while a CSV export streams."""
    host: str = "127.0.0.1"
    port: int = 8003
    """The API's port; the projector serves its health and metrics on port + 1."""
    projector_batch: int = Field(default=5000, ge=1, le=20000)
    """Most events the projector folds in one batch (written in bulk requests of up to 1 MB)."""
    projector_consumers: int = Field(default=2, ge=1)
    """Kafka consumers of the projector process, each with its share of the partitions."""
    opensearch_pool: int = Field(default=32, ge=1)
    """Connections the query API (and the projector) keep to OpenSearch. Each API request uses
    one at a time, so fewer than the requests served at once make them queue in the process."""
    retention_every_seconds: int = Field(default=3600, ge=0)
    """How often the query API's process runs a retention pass over every app with a setting
    (the first at its start); 0 runs passes only when asked (a changed setting, the CLI)."""
    retention_chunk: int = Field(default=2000, ge=100, le=10000)
    """Messages removed per step of a pass: one write transaction (SQLite) or one bulk request
    and refresh (OpenSearch) each, so readers and the projector wait for one step at most."""
    erase_wait_seconds: float = Field(default=10, ge=0, le=60)
    """How long erasing a user waits for the projection to have taken the erase before it
    answers (`complete: false` past it; the erase goes on)."""
    opensearch: OpenSearchSettings = Field(default_factory=OpenSearchSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    sso: SsoSettings = Field(default_factory=SsoSettings)
    """Single sign-on for members (INSIGHTS_SSO_*): the query service owns the sessions."""
