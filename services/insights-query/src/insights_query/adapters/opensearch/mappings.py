"""The indices of the OpenSearch store: one alias per kind over a versioned concrete index.

Clients only ever name the alias (`<prefix>-messages`); the index behind it is
`<prefix>-messages-v<N>`, created from an index template, so an index can be rebuilt beside the
old one (reindex into -v<N+1>) and the alias swapped in one atomic `_aliases` call.

Mappings are strict: a field the code does not know is a failed bulk item, never a silently
guessed mapping. Search fields hold values the domain already normalized (nickname tokens,
lowercase ids, phone digits), so prefix queries on them match exactly what the SQLite store
matches; `index_prefixes` turns a short prefix into one term lookup instead of a term scan.
"""

from __future__ import annotations

from typing import Any, Literal

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import RequestError

Kind = Literal["messages", "users", "templates", "erasures"]
KINDS: tuple[Kind, ...] = ("messages", "users", "templates", "erasures")
SCHEMA_VERSION = 1
"""Bump with a mapping change an existing index cannot take (a field's type or analysis):
ensure_indices then names -v<N> for new deployments, and existing ones reindex into it and swap
the alias. A field added is not such a change: ensure_indices adds it to the live indices."""

_KEYWORD: dict[str, Any] = {"type": "keyword"}
# Returned in _source, never searched or aggregated.
_SOURCE_ONLY: dict[str, Any] = {"type": "keyword", "index": False, "doc_values": False}
_STORED: dict[str, Any] = {"type": "object", "enabled": False}
_FLAG: dict[str, Any] = {"type": "byte"}
_MICROS: dict[str, Any] = {"type": "long"}
# A prefix-searchable exact value: each array element is one term (keyword analyzer).
_PREFIXED: dict[str, Any] = {
    "type": "text",
    "analyzer": "keyword",
    "index_options": "docs",
    "norms": False,
    "index_prefixes": {"min_chars": 1, "max_chars": 12},
}

MAPPINGS: dict[Kind, dict[str, Any]] = {
    "messages": {
        "dynamic": "strict",
        "properties": {
            "app_id": _KEYWORD,
            "message_id": _KEYWORD,
            # false until the message's `sent` arrives; such docs only hold events
            "visible": {"type": "boolean"},
            "events": _STORED,
            "detail": _STORED,
            "user_id": _KEYWORD,
            "channel": _KEYWORD,
            "status": _KEYWORD,
            "template_key": _KEYWORD,
            "template_version": {"type": "integer"},
            "delivered": _FLAG,
            "read": _FLAG,
            "clicked": _FLAG,
            "failed": _FLAG,
            "responded": _FLAG,
            # instants as UTC microseconds since the epoch: exact sort, range and max
            "sent_us": _MICROS,
            "sent_day": _KEYWORD,
            "engaged_us": _MICROS,
            "first_event_us": _MICROS,
            "last_event_us": _MICROS,
        },
    },
    "users": {
        "dynamic": "strict",
        "properties": {
            "app_id": _KEYWORD,
            "user_id": _KEYWORD,
            "user_id_lc": _PREFIXED,
            "nickname": _SOURCE_ONLY,
            "name_tokens": _PREFIXED,
            "phone_number": _KEYWORD,
            "phone_digits": _PREFIXED,
            "created_at": _SOURCE_ONLY,
            "updated_at": _SOURCE_ONLY,
            "last_activity_at": _SOURCE_ONLY,
            "activity_us": _MICROS,
            "imports": _KEYWORD,
            "facts": _STORED,
            "span": _STORED,
        },
    },
    "templates": {
        "dynamic": "strict",
        "properties": {
            "app_id": _KEYWORD,
            "key": _KEYWORD,
            "version": {"type": "integer"},
            "name": _SOURCE_ONLY,
            "channels": _STORED,
            "variable_schema": _STORED,
            "origin": _SOURCE_ONLY,
        },
    },
    # One per erased user (id `app_id:user_id`): when they were erased (domain.erasure).
    "erasures": {
        "dynamic": "strict",
        "properties": {
            "app_id": _KEYWORD,
            "user_id": _KEYWORD,
            "erased_us": _MICROS,
        },
    },
}


class IndexSetupError(RuntimeError):
    """The alias of a kind could not be made to point at an index, or its index cannot take
    this version's mapping."""


def alias_name(prefix: str, kind: Kind) -> str:
    return f"{prefix}-{kind}"


def refresh_interval(seconds: float) -> str:
    """OpenSearch's `refresh_interval` for a period in seconds, to the millisecond."""
    return f"{round(seconds * 1000)}ms"


async def ensure_indices(
    client: AsyncOpenSearch,
    prefix: str,
    *,
    shards: int,
    replicas: int | None,
    refresh_seconds: float,
) -> None:
    """Put the index templates, create each missing alias with its first index, and give the
    indices behind existing aliases the templates' refresh interval and mapping (an index keeps
    the settings and mapping it was made with, so a changed interval or a field a new version
    adds reaches a running deployment this way; the mappings are strict, so a new version's
    documents would otherwise be refused by an index made by an older one). A mapping an index
    cannot take (a field's type changed) is an IndexSetupError naming the reindex it needs.

    Idempotent and safe to race: the index and its alias are created in one request, and
    losing the race to another process ('already exists') is success.
    """
    copies: dict[str, Any] = (
        {"auto_expand_replicas": "0-1"} if replicas is None else {"number_of_replicas": replicas}
    )
    interval = refresh_interval(refresh_seconds)
    for kind in KINDS:
        alias = alias_name(prefix, kind)
        await client.indices.put_index_template(
            name=alias,
            body={
                "index_patterns": [f"{alias}-v*"],
                "priority": 100,
                "template": {
                    "settings": {
                        "number_of_shards": shards,
                        **copies,
                        "refresh_interval": interval,
                    },
                    "mappings": MAPPINGS[kind],
                },
                "_meta": {"schema_version": SCHEMA_VERSION},
            },
        )
        if await client.indices.exists_alias(name=alias):
            await client.indices.put_settings(
                index=alias, body={"index": {"refresh_interval": interval}}
            )
            await _put_mapping(client, alias, kind)
            continue
        try:
            await client.indices.create(
                index=f"{alias}-v{SCHEMA_VERSION}", body={"aliases": {alias: {}}}
            )
        except RequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
        if not await client.indices.exists_alias(name=alias):
            raise IndexSetupError(
                f"index {alias}-v{SCHEMA_VERSION} exists but alias {alias} does not point at it;"
                f" add it with POST _aliases or delete the index"
            )


async def _put_mapping(client: AsyncOpenSearch, alias: str, kind: Kind) -> None:
    """This version's mapping on the indices behind an existing alias: new fields are added,
    fields already there stay as they are when unchanged."""
    try:
        await client.indices.put_mapping(index=alias, body=MAPPINGS[kind])
    except RequestError as exc:
        raise IndexSetupError(
            f"the indices behind {alias} cannot take this version's {kind} mapping"
            f" ({_reason(exc)}); reindex them into {alias}-v{SCHEMA_VERSION}, which the index"
            f" template maps, and move the alias to it in one POST _aliases"
        ) from exc


def _reason(exc: RequestError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if isinstance(error, dict) and isinstance(error.get("reason"), str):
        return str(error["reason"])
    return str(exc.error)
