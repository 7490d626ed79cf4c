"""What every platform adapter gives: a credential from the headers, callbacks from the body,
and one table from its status words to ours."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias

import orjson

from insights_common.signatures import Credential
from insights_common.sources import UserField
from notification_ingest.domain.errors import MalformedBody

Outcome: TypeAlias = Literal["sent", "delivered", "read", "clicked", "failed", "reported"]
REPORTED: Outcome = "reported"
"""A status of the message that is none of ours (queued, archived, unsubscribed): kept on its
timeline in the platform's words (`notification.status`), never changing its status. A word a
platform's table does not list is taken the same way."""
NOT_SHOWN = None
"""A callback the platform documents that is not about a message sent (a template edited, an
inbound message): acknowledged, counted as ignored, never an event."""


@dataclass(frozen=True, slots=True)
class SourceRequest:
    """What of the HTTP request a platform's scheme and payload may read."""

    headers: Mapping[str, str]
    """Lowercase names."""
    path: str
    """As the platform called it, still percent-encoded."""
    query: str
    """The raw query string, '' when none."""
    public_url: str | None
    """The origin the platform calls this deployment at (PUBLIC_BASE_URL), for schemes that
    sign the URL."""
    received_at: datetime
    user_field: UserField | None = None
    """The field the app configured to name the user (`insights sources add --user-field`)."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def user(self, item: object, *, default: str | None, hint: str) -> tuple[str | None, str]:
        """The user of one callback `item` (a JSON object, or Twilio's parameters): the
        configured field when the item has it, else `default`; and how to name the user when
        neither does, saying which field was looked for."""
        if self.user_field is None:
            return default, hint
        named = field_at(item, self.user_field.parts)
        if named is not None:
            return named, hint
        return default, (
            f"It has no {self.user_field.text} (the user field configured for this source). {hint}"
        )


def field_at(item: object, parts: tuple[str, ...]) -> str | None:
    """The text at a user field's path: each name read inside the last object (a name of
    digits picks a list's item); None when a part is missing or the value is not text."""
    for part in parts:
        if isinstance(item, dict):
            item = item.get(part)
        elif isinstance(item, list) and part.isdigit() and int(part) < len(item):
            item = item[int(part)]
        else:
            return None
    return text(item)


@dataclass(frozen=True, slots=True)
class Callback:
    """One status a platform reported for one message to one recipient, in its own words."""

    status: str
    message_id: str
    user_id: str | None
    occurred_at: datetime
    dedup_key: str
    """Unique to this report as the platform allows: its event id, or fields that together are."""
    channel: str | None = None
    template: str | None = None
    """The platform's own key for what the message was made from (a workflow, a campaign)."""
    code: str | None = None
    reason: str | None = None
    url: str | None = None
    phone: str | None = None
    """The E.164 number the message went to, which names the user when `user_id` is None
    (looked up among the app's imported users)."""
    user_hint: str = ""
    """How to name the user when the callback names none, for the caller's error."""


def callback_json(callback: Callback) -> bytes:
    """A callback kept until its user is known (`callback_of` reads it back)."""
    fields = asdict(callback)
    fields["occurred_at"] = callback.occurred_at.isoformat()
    return orjson.dumps(fields)


def callback_of(data: bytes) -> Callback:
    fields = orjson.loads(data)
    fields["occurred_at"] = datetime.fromisoformat(fields["occurred_at"])
    return Callback(**fields)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An item of the body that is not a callback the platform documents; why, for the caller."""

    reason: str


Read: TypeAlias = Callback | Unreadable


@dataclass(frozen=True, slots=True)
class PlatformTable:
    """A platform's vocabulary: its status words, failure codes, channels, and where each is
    documented."""

    name: str
    title: str
    statuses: Mapping[str, Outcome | None]
    failures: Mapping[str, str] = field(default_factory=dict)
    failure_source: str = ""
    """Where the texts of `failures` come from, shown beside them."""
    failures_for: frozenset[str] | None = None
    """Our channels whose codes `failures` explains (SMTP codes only email's); None: all."""
    channels: Mapping[str, str] = field(default_factory=dict)
    """The platform's channel words to ours; a word missing here is not shown."""
    default_channel: str | None = None
    no_template: str = ""
    """What the message details say when the platform names no template."""


@dataclass(frozen=True, slots=True)
class Platform:
    table: PlatformTable
    credential: Callable[[SourceRequest], Credential]
    """The request's credential from its headers; raises MalformedSignature saying what is wrong."""
    read: Callable[[bytes, SourceRequest], list[Read]]
    """The body's callbacks in order; raises MalformedBody when it is not the platform's shape."""
    credential_name: str
    """What the platform calls the secret `insights sources add` takes."""


def json_object(body: bytes, *, platform: str, shape: str) -> dict[str, object]:
    """The body as a JSON object, or MalformedBody naming the shape the platform documents."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            f"{platform} sends {shape}."
        ) from exc
    if not isinstance(decoded, dict):
        raise MalformedBody(f"The body is not a JSON object; {platform} sends {shape}.")
    return decoded


def text(value: object) -> str | None:
    """A string field, or a number written as one; None for anything else or empty."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}
