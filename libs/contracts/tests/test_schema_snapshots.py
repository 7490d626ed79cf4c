"""The JSON schema of every event is checked in; a change must be made on purpose."""

import json

import pytest

from insights_contracts.events import EVENT_TYPES
from insights_contracts.schema import SNAPSHOT_DIR, current_schemas, render

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_schema_matches_snapshot(event_type: str) -> None:
    path = SNAPSHOT_DIR / f"{event_type}.v1.json"
    assert path.exists(), f"no snapshot for {event_type}: run python -m insights_contracts.schema"
    expected = path.read_text(encoding="utf-8")
    actual = render(current_schemas()[event_type])
    assert actual == expected, (
        f"The JSON schema of {event_type} changed. Within v1 only optional fields may be added; "
        "if the change is deliberate, run `uv run python -m insights_contracts.schema` and commit "
        "the new snapshot."
    )


def test_every_snapshot_names_a_known_event() -> None:
    names = {path.name.removesuffix(".v1.json") for path in SNAPSHOT_DIR.glob("*.v1.json")}
    assert names == set(EVENT_TYPES)


def test_snapshots_pin_the_discriminator_and_version() -> None:
    for event_type in EVENT_TYPES:
        schema = json.loads((SNAPSHOT_DIR / f"{event_type}.v1.json").read_text(encoding="utf-8"))
        props = schema["properties"]
        assert props["event_type"]["const"] == event_type
        assert props["schema_version"]["const"] == 1
        for field in ("event_id", "app_id", "occurred_at"):
            assert field in schema["required"], (event_type, field)
