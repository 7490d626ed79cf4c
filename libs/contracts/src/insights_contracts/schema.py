"""JSON-schema snapshots of the events, checked in under libs/contracts/schemas/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from insights_contracts.events import EVENT_TYPES

SNAPSHOT_DIR = Path(__file__).resolve().parents[2] / "schemas"


def current_schemas() -> dict[str, dict[str, Any]]:
    return {name: model.model_json_schema() for name, model in EVENT_TYPES.items()}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_snapshots(directory: Path = SNAPSHOT_DIR) -> list[Path]:
    """Regenerate the snapshots: `python -m insights_contracts.schema` after a deliberate change."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in current_schemas().items():
        path = directory / f"{name}.v1.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_snapshots():
        print(path)  # noqa: T201
