"""Where the distributed mode's Kafka, OpenSearch and PostgreSQL are, from the environment.

Each service's settings class holds the ones it uses, so `insights serve <service>` reads
KAFKA_*, OPENSEARCH_* and POSTGRES_* the same way everywhere.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from insights_common.audit_ship import EVERY


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    """Prepended to every topic name, consumer group and transactional id, so several
    deployments can share one cluster."""
    partitions: int = Field(default=6, ge=1)
    """Partitions of the topics this deployment creates; the most consumers a group can use."""
    replication_factor: int = Field(default=1, ge=1)
    """Copies of each partition of the topics this deployment creates: 3 on a cluster of three
    brokers or more, so one can be lost; 1 (the default) works on a single broker."""
    min_insync_replicas: int | None = Field(default=None, ge=1)
    """`min.insync.replicas` of those topics: with acks=all, a write is acknowledged once this
    many copies hold it (2 with a replication factor of 3). Unset, the broker's default."""
    publish_timeout: float = Field(default=5.0, gt=0)
    """Seconds a door waits for Kafka to take its events before it answers 503 (Retry-After)."""
    projector_group: str = "insights-projector"
    """The projector's consumer group (its replicas share the partitions). Its committed
    positions are the watermark of what reads can see: imports and `wait=visible` wait on it."""


class PostgresSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTGRES_", extra="ignore")

    dsn: SecretStr = SecretStr("postgresql://insights@127.0.0.1:5432/insights")
    db_schema: str | None = Field(default=None, validation_alias="POSTGRES_SCHEMA")
    """A schema to keep the tables in (search_path); the server's default when unset."""
    pool_size: int = Field(default=10, ge=1)
    timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a connection before answering 503 (Retry-After)."""


class OpenSearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPENSEARCH_", extra="ignore")

    url: str = "http://127.0.0.1:9200"
    """One node's URL, or several separated by commas: the client moves to another node when
    one stops answering."""
    index_prefix: str = "insights"
    """Indices and aliases are named `<prefix>-users`, `<prefix>-messages`, ..."""
    replicas: int | None = Field(default=None, ge=0)
    """`number_of_replicas` of the index templates: 1 on a cluster of two nodes or more, so a
    node can be lost. Unset, `auto_expand_replicas: 0-1` (none on one node, one on more)."""
    refresh_seconds: float = Field(default=0.5, ge=0.1, le=30)
    """How often the indices make what was written searchable (`refresh_interval`), and the
    shortest time between two of the projector's own refreshes: it commits a batch's offsets
    only once a refresh made it searchable (while it folds the next batches), so this bounds how
    soon an event shows; each refresh costs OpenSearch CPU while events come in. Applied to the
    index templates and, at start, to the live indices."""


class KeyCacheSettings(BaseSettings):
    """How long a service of the distributed mode keeps a resolved API key (`key_cache.py`)."""

    model_config = SettingsConfigDict(env_prefix="API_KEY_CACHE_", extra="ignore")

    seconds: float = Field(default=5.0, ge=0)
    """A revoked key is refused at most this long after `insights keys revoke`; 0 asks the key
    store on every request."""
    size: int = Field(default=10_000, ge=1)
    """Most keys kept (known or not), the least recently used going first."""


class AuditSettings(BaseSettings):
    """Where a service of the distributed mode keeps the audit entries of reads until the trail's
    store (PostgreSQL) takes them (`insights_common.audit_spool`)."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore")

    spool: bool = True
    """False: a read answers only once its entry is in PostgreSQL (a round trip shared with the
    reads of the same moment), instead of once it is in the process's spool file."""
    spool_dir: Path | None = None
    """A directory on a local disk, shared by this deployment's processes on the machine (or
    the pod) alone, that outlives a restart of the process. Unset, one under the system's
    temporary directory named after the deployment's database and schema."""
    ship_every_seconds: float = Field(default=EVERY, gt=0, le=60)
    """How often the shipper takes the spool's entries into PostgreSQL: what a pod lost
    without its SIGTERM (a lost node) loses at most, while PostgreSQL answers. A reader of the
    trail asks its process's shipper for a pass at once, so this is not how stale it reads."""

    def directory(self, postgres: PostgresSettings) -> Path:
        if self.spool_dir is not None:
            return self.spool_dir
        dsn = urlsplit(postgres.dsn.get_secret_value())
        deployment = f"{dsn.hostname}:{dsn.port}{dsn.path}/{postgres.db_schema or ''}"
        key = hashlib.sha256(deployment.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "insights-audit-spool" / key
