"""Which event describes a template version: the one rule both stores project by.

A version is described by `template.upserted` events and by the snapshot each `notification.sent`
carries (a send may name a version nobody defined). A definition beats a snapshot, then the later
event, then the greater event_id; `origin` spells that order as a string that sorts the same way,
so a store compares the origin it holds with a newcomer's without reading the events again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from insights_contracts import AnyEvent, NotificationSent, TemplateUpserted
from insights_query.domain.time import ts_key

TemplateSource = TemplateUpserted | NotificationSent


@dataclass(frozen=True, slots=True)
class TemplateVersion:
    """A version as its best source describes it (empty channels and schema for a snapshot)."""

    app_id: str
    key: str
    version: int
    name: str | None
    channels: dict[str, Any]
    variable_schema: list[Any]
    origin: str


def origin(event: TemplateSource) -> str:
    defined = 1 if isinstance(event, TemplateUpserted) else 0
    return f"{defined}|{ts_key(event.occurred_at)}|{event.event_id}"


def describe(event: TemplateSource) -> TemplateVersion:
    if isinstance(event, TemplateUpserted):
        t = event.template
        return TemplateVersion(
            event.app_id,
            t.key,
            t.version,
            t.name,
            {ch: c.model_dump(mode="json") for ch, c in t.channels.items()},
            [v.model_dump(mode="json") for v in t.variable_schema],
            origin(event),
        )
    ref = event.template
    return TemplateVersion(event.app_id, ref.key, ref.version, ref.name, {}, [], origin(event))


def best_versions(events: Iterable[AnyEvent]) -> list[TemplateVersion]:
    """Each template version the events describe, by its best source among them; a store keeps
    one only when its origin is greater than the one it holds."""
    best: dict[tuple[str, str, int], tuple[str, TemplateSource]] = {}
    for event in events:
        if isinstance(event, TemplateUpserted):
            key = (event.app_id, event.template.key, event.template.version)
        elif isinstance(event, NotificationSent):
            key = (event.app_id, event.template.key, event.template.version)
        else:
            continue
        rank = origin(event)
        known = best.get(key)
        if known is None or rank > known[0]:
            best[key] = (rank, event)
    return [describe(event) for _, event in best.values()]
