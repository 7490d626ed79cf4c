"""The whole API's reference in the distributed mode, served by the query service.

Each service process knows only its own routes; the edge (nginx) sends /api/v1/openapi.json and
/api/docs to the query service, which answers one document: its own and the import and ingest
services' side by side, read from them when asked (each answer of theirs is kept a minute).
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from insights_common.http.conventions import Problem, problem_responses

API_PREFIX = "/api/v1"

# What the edge itself answers on any route of the API (deploy/nginx/insights.conf.template).
EDGE_PROBLEMS = problem_responses(
    {
        502: "The service that owns the path is not answering (the edge cannot reach it).",
        504: "The service that owns the path did not answer within the edge's timeout.",
    }
)


class ReferenceSettings(BaseSettings):
    """QUERY_IMPORT_URL and QUERY_INGEST_URL: where the query service reads the others'
    reference."""

    model_config = SettingsConfigDict(env_prefix="QUERY_", extra="ignore")

    import_url: str = "http://127.0.0.1:8001"
    ingest_url: str = "http://127.0.0.1:8002"
    cache_seconds: float = Field(default=60.0, ge=0)


def merge_openapi(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One OpenAPI document from the services' own: their paths and schemas side by side."""
    merged: dict[str, Any] = {
        "openapi": documents[0].get("openapi", "3.1.0"),
        "info": {"title": "User Insights", "version": "1.0"},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    for document in documents:
        merged["paths"].update(document.get("paths", {}))
        components = document.get("components", {})
        for section in ("schemas", "securitySchemes"):
            merged["components"][section].update(components.get(section, {}))
    for operations in merged["paths"].values():
        for operation in operations.values():
            for status, answer in EDGE_PROBLEMS.items():
                operation.setdefault("responses", {}).setdefault(str(status), answer)
    return merged


class PeerReferences:
    """The import and ingest services' OpenAPI documents, read over HTTP and kept a while."""

    def __init__(self, settings: ReferenceSettings) -> None:
        self._settings = settings
        self._kept: dict[str, tuple[float, dict[str, Any]]] = {}

    async def documents(self) -> list[dict[str, Any]]:
        peers = (("import", self._settings.import_url), ("ingest", self._settings.ingest_url))
        return [await self._document(name, base) for name, base in peers]

    async def _document(self, name: str, base: str) -> dict[str, Any]:
        kept = self._kept.get(name)
        if kept is not None and time.monotonic() - kept[0] < self._settings.cache_seconds:
            return kept[1]
        timeout = aiohttp.ClientTimeout(total=5.0)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(f"{base}{API_PREFIX}/openapi.json") as answer,
            ):
                if answer.status != 200:
                    raise ValueError(f"it answered {answer.status}")
                document: dict[str, Any] = orjson.loads(await answer.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise Problem(
                502,
                "Upstream unavailable",
                f"The {name} service at {base} did not give its API reference ({error!r}); "
                f"QUERY_{name.upper()}_URL names it.",
            ) from error
        self._kept[name] = (time.monotonic(), document)
        return document
