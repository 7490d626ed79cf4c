"""The messaging platforms whose own callbacks an app takes (docs/sources.md): which ones, what
secret each needs, the syntax of a configured user field, and the use cases that set a source
up, list and remove it, shared by the API and `insights sources`.

notification-ingest's adapters (`notification_ingest.domain.sources`) read each platform's
callbacks; their list and this one are checked to agree by a test.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from insights_common.audit import AuditEntry, AuditLog
from insights_common.auth import KeyStore
from insights_common.clock import utc_now

MAX_SECRET = 512
MAX_USER_FIELD = 200
MAX_FIELD_PARTS = 8
SOURCE_PATH = "/api/v1/sources/{platform}/{app_id}"

FieldKind = Literal["path", "parameter"]
"""How a platform's user field is written: a dotted path into its JSON body, or the name of a
parameter of its form body or of the URL it calls (Twilio)."""

_NAME = r"[A-Za-z0-9_$@-]{1,64}"
_SYNTAX: dict[FieldKind, re.Pattern[str]] = {
    "path": re.compile(rf"{_NAME}(?:\.{_NAME}){{0,{MAX_FIELD_PARTS - 1}}}"),
    "parameter": re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}"),
}
_ALLOWED: dict[FieldKind, str] = {
    "path": f"a dotted path of at most {MAX_FIELD_PARTS} names into the callback's JSON, each"
    " 1-64 letters, digits, '_', '-', '$' or '@' (a name of digits picks a list's item)",
    "parameter": "the name of one parameter of the callback's form or of its URL's query:"
    " 1-64 letters, digits, '_', '-', '.', '[' or ']'",
}


@dataclass(frozen=True, slots=True)
class SourcePlatform:
    name: str
    title: str
    credential: str
    """What the platform calls the secret it signs with."""
    asks: str
    """Where to find that secret, for the person setting the source up."""
    user_field: FieldKind
    user_field_example: str
    user_field_default: str
    """Which fields name the user when no user field is configured."""
    token_made_here: bool = False
    """The platform sends a token we make (Braze's Current): one is made when none is given."""


PLATFORMS: tuple[SourcePlatform, ...] = (
    SourcePlatform(
        "twilio",
        "Twilio",
        "Auth Token",
        "the account's Auth Token (or a Webhooks Rule's shared key)",
        "parameter",
        "customer",
        "the StatusCallback URL's user_id, else the imported user whose phone number is To",
    ),
    SourcePlatform(
        "knock",
        "Knock",
        "signing secret",
        "the webhook's signing secret",
        "path",
        "data.recipient.email",
        "data.recipient (a user id, or its id)",
    ),
    SourcePlatform(
        "customerio",
        "Customer.io",
        "signing key",
        "the reporting webhook's signing key",
        "path",
        "data.identifiers.email",
        "data.customer_id, else data.identifiers.id",
    ),
    SourcePlatform(
        "braze",
        "Braze",
        "bearer token",
        "the bearer token set on the Current (one is made when omitted)",
        "path",
        "user.user_alias.alias_name",
        "user.external_user_id, else the imported user whose number is to_phone_number",
        token_made_here=True,
    ),
    SourcePlatform(
        "sendbird",
        "Sendbird",
        "master API token",
        "the application's master API token",
        "path",
        "metadata.user_id",
        "each of receiver_ids (a path is read in each receiver given as an object)",
    ),
)
BY_NAME = {platform.name: platform for platform in PLATFORMS}


class SourceError(ValueError):
    """A change to a source that cannot be made; the message says why and what is allowed."""


class UnknownPlatform(SourceError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"User Insights takes no callbacks from '{name[:40]}'; it takes: {', '.join(BY_NAME)}."
        )


class NotConfigured(SourceError):
    pass


class BadSecret(SourceError):
    pass


class BadUserField(SourceError):
    pass


@dataclass(frozen=True, slots=True)
class UserField:
    """A configured user field, validated: `parts` are the names read one inside the other."""

    text: str
    parts: tuple[str, ...]


def platform_of(name: str) -> SourcePlatform:
    platform = BY_NAME.get(name)
    if platform is None:
        raise UnknownPlatform(name)
    return platform


def user_field(platform: SourcePlatform, text: str) -> UserField:
    """Raises BadUserField saying what the platform's user field may be."""
    text = text.strip()
    kind = platform.user_field
    if len(text) > MAX_USER_FIELD or not _SYNTAX[kind].fullmatch(text):
        raise BadUserField(
            f"'{text[:80]}' is not a user field of {platform.title}: it is {_ALLOWED[kind]},"
            f" e.g. {platform.user_field_example}."
        )
    return UserField(text, tuple(text.split(".")) if kind == "path" else (text,))


def stored_user_field(platform: str, text: str | None) -> UserField | None:
    """A stored field as the adapters read it; one stored before a stricter rule is ignored."""
    if not text:
        return None
    try:
        return user_field(platform_of(platform), text)
    except SourceError:
        return None


def check_secret(secret: str) -> str:
    secret = secret.strip()
    if not secret or len(secret) > MAX_SECRET:
        raise BadSecret(f"The secret must be 1-{MAX_SECRET} characters (got {len(secret)}).")
    return secret


def callback_url(platform: str, app_id: str, public_origin: str | None) -> str:
    """Where the platform is to post: absolute from PUBLIC_BASE_URL, else the path alone."""
    path = SOURCE_PATH.format(platform=platform, app_id=app_id)
    return (public_origin.rstrip("/") + path) if public_origin else path


@dataclass(frozen=True, slots=True)
class SourceState:
    platform: SourcePlatform
    configured_at: str | None
    """When its secret was last set; None when the app does not take this platform."""
    user_field: str | None


@dataclass(frozen=True, slots=True)
class Added:
    platform: SourcePlatform
    user_field: str | None
    made_token: str | None
    """Braze's bearer token when it was made here: shown only this once."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who changes a source, as the audit trail names them, and from where."""

    name: str
    address: str | None = None


class Sources:
    """Setting up the platforms' sources of an app; every change is audited (never the secret)."""

    def __init__(
        self, keys: KeyStore, audit: AuditLog, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._keys = keys
        self._audit = audit
        self._clock = clock

    async def list(self, app_id: str) -> list[SourceState]:
        """Every platform taken, configured for the app or not, in PLATFORMS' order."""
        stored = {info.platform: info for info in await self._keys.list_sources(app_id)}
        return [
            SourceState(
                platform,
                info.updated_at if (info := stored.get(platform.name)) else None,
                info.user_field if info else None,
            )
            for platform in PLATFORMS
        ]

    async def add(
        self,
        app_id: str,
        name: str,
        *,
        secret: str | None,
        user_field_text: str | None,
        actor: Actor,
    ) -> Added:
        """Keep the platform's secret and user field (replacing both). Without a secret, a
        platform whose token we make gets a new one; any other raises BadSecret."""
        platform = platform_of(name)
        field = user_field(platform, user_field_text).text if user_field_text else None
        made = None
        if secret is None and platform.token_made_here:
            secret = made = secrets.token_urlsafe(32)
        if secret is None:
            raise BadSecret(f"{platform.title} needs its {platform.credential}: {platform.asks}.")
        secret = check_secret(secret)
        await self._keys.set_source_secret(app_id, platform.name, secret, user_field=field)
        detail = f"{platform.name} user field {field or '(default)'}"
        if made:
            detail += ", bearer token made"
        await self._record(app_id, actor, "source.add", detail)
        return Added(platform, field, made)

    async def remove(self, app_id: str, name: str, *, actor: Actor) -> None:
        platform = platform_of(name)
        if not await self._keys.remove_source(app_id, platform.name):
            raise NotConfigured(f"App '{app_id}' takes no {platform.title} callbacks.")
        await self._record(app_id, actor, "source.remove", platform.name)

    async def _record(self, app_id: str, actor: Actor, action: str, detail: str) -> None:
        await self._audit.append(
            AuditEntry(
                at=self._clock(),
                app_id=app_id,
                actor=actor.name,
                action=action,
                address=actor.address,
                detail=detail,
            )
        )
