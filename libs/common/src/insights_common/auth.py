"""API keys, webhook secrets and the messaging platforms' source secrets.

API keys are random 256-bit tokens, stored as their SHA-256 (a slow hash adds nothing for tokens of
that entropy). Webhook secrets must be read back to verify HMACs, so they are stored encrypted
with a master key that lives outside the database.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from insights_common.signatures import (
    MalformedSignature,
    Signature,
    WebhookSigning,
    parse_signature,
    sign,
    verify_signature,
)

__all__ = [
    "MalformedSignature",
    "Signature",
    "WebhookSigning",
    "parse_signature",
    "sign",
    "verify_signature",
]

KEY_PREFIX = "uik_"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    app_id: str
    key_id: str  # the key's first characters: enough to tell keys apart, useless to call with
    created_at: str = ""
    scopes: tuple[str, ...] = ("admin",)
    """What the key may do (`access.SCOPES`); keys from before scopes are admin keys."""
    expires_at: datetime | None = None
    """After this the key is refused; None for a key that does not expire."""

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str:
    return key[: len(KEY_PREFIX) + 8]


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def scopes_text(scopes: tuple[str, ...]) -> str:
    return " ".join(scopes)


def scopes_of(text: str) -> tuple[str, ...]:
    return tuple(text.split())


class KeyStore(Protocol):
    async def create_api_key(
        self,
        app_id: str,
        *,
        scopes: tuple[str, ...] = ("admin",),
        expires_at: datetime | None = None,
    ) -> str: ...

    async def resolve_api_key(self, key: str) -> ApiKeyInfo | None: ...

    async def list_api_keys(self, app_id: str) -> list[ApiKeyInfo]: ...

    async def revoke_api_key(self, app_id: str, key_id: str) -> bool: ...

    async def rotate_webhook_secret(self, app_id: str, *, overlap: timedelta = timedelta(0)) -> str:
        """A new current secret; the one it replaces still signs for `overlap` (none by default).

        Only the secret just replaced is kept: rotating again within an overlap ends the older
        one's."""
        ...

    async def webhook_secret(self, app_id: str) -> str | None:
        """The current secret, the one senders should sign with."""
        ...

    async def webhook_signing(self, app_id: str, *, now: datetime) -> WebhookSigning | None:
        """The secrets that sign for the app at `now` and its rule; None for an app with none."""
        ...

    async def require_webhook_timestamp(self, app_id: str, *, required: bool) -> bool:
        """Take only timestamped signatures from the app (or both forms again); False when
        the app has no webhook secret."""
        ...

    async def set_source_secret(
        self, app_id: str, platform: str, secret: str, *, user_field: str | None = None
    ) -> None:
        """Keep (or replace) the secret a platform signs the app's callbacks with, encrypted,
        and the field of its callbacks that names the user (None: the platform's default)."""
        ...

    async def source(self, app_id: str, platform: str) -> SourceConfig | None:
        """The platform's secret and user field for the app; None when it is not configured."""
        ...

    async def list_sources(self, app_id: str) -> list[SourceInfo]: ...

    async def remove_source(self, app_id: str, platform: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A platform configured for an app (its secret is never listed)."""

    app_id: str
    platform: str
    updated_at: str
    user_field: str | None = None


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """What authenticates and reads one platform's callbacks for one app."""

    secret: str
    user_field: str | None = None
    """Which field of the callback names the user (`insights_common.sources.UserField`)."""


class MissingMasterKey(Exception):
    pass


class SecretBox:
    """Fernet encryption with a master key from the environment or a 0600 file in the data dir."""

    ENV = "INSIGHTS_MASTER_KEY"

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def derived_key(self, purpose: str) -> bytes:
        """A Fernet key of its own for `purpose` (HKDF-SHA256 of the master key): what it
        seals cannot be read as a stored secret, nor a stored secret passed off as it."""
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()
        ).derive(base64.urlsafe_b64decode(self._key))
        return base64.urlsafe_b64encode(derived)

    @classmethod
    def from_env(cls) -> SecretBox:
        """The distributed mode's box: every process shares the key through the environment."""
        env = os.environ.get(cls.ENV, "").strip()
        if not env:
            raise MissingMasterKey(
                f"{cls.ENV} is not set. Every service process needs the same key to read the "
                "webhook secrets; create one with `insights keys master-key` and give it to all."
            )
        try:
            return cls(env.encode())
        except ValueError as error:
            raise MissingMasterKey(
                f"{cls.ENV} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "create one with `insights keys master-key`."
            ) from error

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        env = os.environ.get(cls.ENV)
        if env:
            return cls(env.encode())
        path = data_dir / "master.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str | None:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return None


# Columns added after the first release: (name, definition). Rows from before keep working: no
# previous secret, both signature forms taken.
# Keys from before scopes keep working as admin keys that do not expire.
# Sources from before the configured user field read the platform's default fields.


def signing_of(
    box: SecretBox,
    *,
    current: str,
    previous: str | None,
    previous_until: datetime | None,
    require_timestamp: bool,
    now: datetime,
) -> WebhookSigning | None:
    """The signing rule of one stored row, as both key stores read it."""
    secret = box.decrypt(current)
    if secret is None:
        return None
    secrets_now = [secret]
    if previous is not None and previous_until is not None and now < previous_until:
        older = box.decrypt(previous)
        if older is not None:
            secrets_now.append(older)
    return WebhookSigning(secrets=tuple(secrets_now), require_timestamp=require_timestamp)


def source_config(box: SecretBox, token: str, user_field: str | None) -> SourceConfig | None:
    """One stored source as both key stores read it; None when the master key changed."""
    secret = box.decrypt(token)
    return SourceConfig(secret, user_field) if secret is not None else None
