"""The composition root: reads each service's settings once and builds the services of a mode.

Each service has one builder that takes its ports and answers its parts, whatever the mode
(`import_svc.app`, `notification_ingest.app`, `insights_query.app`). What differs between the
modes is only which adapters are made here: SQLite and the in-process bus in `embedded`
(`build_embedded`: `insights dev` and the CLI), PostgreSQL, OpenSearch and Kafka in
`distributed` for each process of `insights serve <service>` (`PROCESSES`: a new process kind
is one entry in that table). Both read the services' settings through `Settings`, once.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from import_svc.settings import ImportSettings
from insights_common.auth import SecretBox
from insights_common.settings import AuditSettings, KeyCacheSettings
from insights_query.settings import QuerySettings
from notification_ingest.settings import IngestSettings

if TYPE_CHECKING:
    from insights.reference import ReferenceSettings


class Settings:
    """Each service's settings, read from the environment once, when first needed: a process of
    the distributed mode reads only those of what it builds. `data_dir` and `import_owner` are
    the embedded mode's and the CLI's: where uploads wait, and who runs the imports."""

    def __init__(self, *, data_dir: Path | None = None, import_owner: str | None = None) -> None:
        self._data_dir = data_dir
        self._import_owner = import_owner

    @cached_property
    def imports(self) -> ImportSettings:
        if self._data_dir is None:
            settings = ImportSettings()
        else:
            settings = ImportSettings(data_dir=self._data_dir)
        if self._import_owner is not None:
            settings = settings.model_copy(update={"replica_id": self._import_owner})
        return settings

    @cached_property
    def ingest(self) -> IngestSettings:
        return IngestSettings()

    @cached_property
    def query(self) -> QuerySettings:
        return QuerySettings()

    @cached_property
    def key_cache(self) -> KeyCacheSettings:
        return KeyCacheSettings()

    @cached_property
    def audit(self) -> AuditSettings:
        return AuditSettings()

    @cached_property
    def reference(self) -> ReferenceSettings:
        from insights.reference import ReferenceSettings  # noqa: PLC0415 - see `distributed.query_process`

        return ReferenceSettings()

    @cached_property
    def master_key(self) -> SecretBox:
        """The distributed mode's (INSIGHTS_MASTER_KEY)."""
        return SecretBox.from_env()
