"""Decoding a webhook body and validating its events against the v1 contract.

Pure functions: the webhook and the consumer of the raw platform topic share them, so an event is
taken or refused for the same reasons whichever door it came through.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from insights_contracts import EVENT_TYPES, PLATFORM_TYPES, AnyEvent, UserUpserted, parse_event
from insights_contracts.limits import OUT_OF_RANGE
from notification_ingest.domain.errors import BatchTooLarge, MalformedBody
from notification_ingest.domain.model import FieldError, Rejection, ValidatedBatch

PLATFORM_SOURCE = "platform"
ACCEPTED_TYPES = ", ".join(t for t in EVENT_TYPES if t in PLATFORM_TYPES)
WHOLE_EVENT = ""

# JsonValue is validated as a union, so pydantic puts the branch it tried into the location.
_JSON_VALUE_TAGS = frozenset({"dict", "list", "str", "int", "float", "bool", "None"})

_PATTERN_RULES = {
    "app_id": "use 1-64 characters from A-Z a-z 0-9 _ - .",
    "user_id": "use 1-80 characters from A-Z a-z 0-9 _ - .",
    "key": "use 1-128 characters from A-Z a-z 0-9 _ - .",
    "source": f"the webhook takes only '{PLATFORM_SOURCE}' (or no source)",
}

# Every integer beyond signed 64 bits has at least 19 digits (2**63 has 19). Digits become b"1"
# and every other byte b"0": one translate and one find cost a tenth of a regex search.
_DIGIT_MASK = bytes(49 if 48 <= byte <= 57 else 48 for byte in range(256))
_LONG_RUN = b"1" * 19
_TIME_HINT = "use RFC 3339 with a time zone, e.g. 2026-11-02T10:00:00Z"


def decode_batch(body: bytes, *, max_batch: int) -> list[object]:
    """The events of a body holding one event object or an array of 1..max_batch of them."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            "Send one event object or an array of events."
        ) from exc
    if _LONG_RUN in body.translate(_DIGIT_MASK):
        # orjson reads an integer below -2**63 or above 2**64 - 1 as a float, silently rounded;
        # the standard parser keeps it exact, so the contract can refuse it with its location.
        # orjson has vouched for the body (strict JSON, no lone surrogates): both agree on the rest.
        decoded = json.loads(body)
    if isinstance(decoded, dict):
        return [decoded]
    if not isinstance(decoded, list):
        raise MalformedBody(
            f"The body is {_describe(decoded)}; send one event object or an array of events."
        )
    if not decoded:
        raise MalformedBody("The body is an empty array; send at least one event.")
    if len(decoded) > max_batch:
        raise BatchTooLarge(
            f"The body has {len(decoded):,} events; send at most {max_batch:,} per request."
        )
    return decoded


def encode_item(item: object) -> bytes:
    """One decoded item as JSON again, e.g. an event of an array for the dead-letter topic."""
    try:
        return orjson.dumps(item)
    except TypeError:  # an integer beyond 64 bits, read exactly by decode_batch
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()


def claimed_app(item: object) -> str:
    """The app an event names in its envelope; '' when it names none (it is then rejected)."""
    if isinstance(item, dict):
        app_id = item.get("app_id")
        if isinstance(app_id, str):
            return app_id
    return ""


def validate_batch(items: Sequence[object], *, app_id: str) -> ValidatedBatch:
    """Check every item; a later item with an event_id already valid in the batch is a duplicate."""
    events: list[AnyEvent] = []
    rejected: list[Rejection] = []
    taken: set[str] = set()
    duplicates = 0
    for index, item in enumerate(items):
        checked = check_event(item, app_id=app_id, index=index)
        if isinstance(checked, Rejection):
            rejected.append(checked)
        elif checked.event_id in taken:
            duplicates += 1
        else:
            taken.add(checked.event_id)
            events.append(checked)
    return ValidatedBatch(events=tuple(events), duplicates=duplicates, rejected=tuple(rejected))


def check_event(item: object, *, app_id: str, index: int) -> AnyEvent | Rejection:
    """The event, or why it cannot be taken for the app that sent it."""
    if not isinstance(item, dict):
        error = FieldError(WHOLE_EVENT, f"An event must be a JSON object; got {_describe(item)}.")
        return Rejection(index=index, event_id=None, errors=(error,))
    raw_event_id = item.get("event_id")
    event_id = raw_event_id if isinstance(raw_event_id, str) else None

    errors: list[FieldError] = []
    claimed_app = item.get("app_id")
    app_mismatch = isinstance(claimed_app, str) and claimed_app != app_id
    if app_mismatch:
        errors.append(
            FieldError("app_id", f"app_id '{claimed_app}' does not match X-Insights-App '{app_id}'")
        )
    try:
        event = parse_event(item)
    except ValidationError as exc:
        errors.extend(
            error
            for error in readable_errors(exc.errors())
            if not (app_mismatch and error.loc == "app_id")
        )
        return Rejection(index=index, event_id=event_id, errors=tuple(errors))
    if event.event_type not in PLATFORM_TYPES:
        errors.append(
            FieldError(
                "event_type",
                f"event_type '{event.event_type}' is the product's own (an admin erasing a user"
                f" sends it); use one of: {ACCEPTED_TYPES}",
            )
        )
    if isinstance(event, UserUpserted) and event.source != PLATFORM_SOURCE:
        errors.append(
            FieldError(
                "source",
                f"source '{event.source}' is reserved for CSV imports; {_PATTERN_RULES['source']}",
            )
        )
    if errors:
        return Rejection(index=index, event_id=event_id, errors=tuple(errors))
    return event


def readable_errors(details: Iterable[ErrorDetails]) -> list[FieldError]:
    return [_readable(detail) for detail in details]


def _readable(detail: ErrorDetails) -> FieldError:
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    if kind == "union_tag_not_found":
        return FieldError("event_type", f"event_type is required; use one of: {ACCEPTED_TYPES}")
    if kind == "union_tag_invalid":
        return FieldError(
            "event_type",
            f"Unknown event_type '{ctx.get('tag', '')}'; use one of: {ACCEPTED_TYPES}",
        )
    loc = _clean_loc(detail["loc"], json_value=kind == "invalid-json-value")
    field = loc.rsplit(".", 1)[-1]
    got = _shown(detail["input"])
    if kind == "missing":
        return FieldError(loc, "Field required")
    if kind == "value_error":
        return FieldError(loc, detail["msg"].removeprefix("Value error, "))
    if kind == OUT_OF_RANGE:
        inner = str(ctx.get("path", ""))
        return FieldError(f"{loc}.{inner}" if inner else loc, detail["msg"])
    if kind == "string_pattern_mismatch" and field in _PATTERN_RULES:
        return FieldError(loc, f"{got} is not allowed here; {_PATTERN_RULES[field]}")
    message = f"{detail['msg']}; got {got}"
    if kind.startswith(("datetime", "timezone")):
        message = f"{message}; {_TIME_HINT}"
    return FieldError(loc, message)


def _clean_loc(loc: tuple[int | str, ...], *, json_value: bool) -> str:
    parts = list(loc)
    if parts and parts[0] in EVENT_TYPES:
        parts = parts[1:]
    if json_value:
        parts = [part for part in parts if part not in _JSON_VALUE_TAGS]
    return ".".join(str(part) for part in parts)


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)  # orjson cannot write integers beyond 64 bits
    else:
        text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__
