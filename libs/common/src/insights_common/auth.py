"""API keys, webhook secrets and the messaging platforms' source secrets.

API keys are random 256-bit tokens, stored as their SHA-256 (a slow hash adds nothing for tokens of
that entropy). Webhook secrets must be read back to verify HMACs, so they are stored encrypted
with a master key that lives outside the database.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
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

    async def reseal_secrets(self) -> dict[str, int]:
        """Encrypt every stored secret again with the master key's first key, in one
        transaction: how many per app. UnreadableSecrets, and nothing changed, when a key of
        the master key opens none of them."""
        ...


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
    """Fernet encryption with the master key, from the environment or a 0600 file in the data dir.

    The master key may be several keys, newest first, separated by commas: the first encrypts,
    and each of them decrypts. A new key is rolled out ahead of the old one, every stored secret
    is then sealed again under it (`reseal`, `insights keys reseal`), and only then is the old
    one removed, so no secret is unreadable on the way.
    """

    ENV = "INSIGHTS_MASTER_KEY"
    FILE = "master.key"

    def __init__(self, keys: bytes | Sequence[bytes]) -> None:
        self._keys = [keys] if isinstance(keys, bytes) else list(keys)
        self._fernet = key_ring(self._keys)

    @classmethod
    def parse(cls, text: str, *, source: str) -> SecretBox:
        """The box of one key, or of several separated by commas (or lines), newest first."""
        return cls(master_keys(text, source=source))

    @property
    def key_count(self) -> int:
        """How many keys decrypt (the first of them also encrypts)."""
        return len(self._keys)

    def derived_keys(self, purpose: str) -> list[bytes]:
        """Fernet keys of their own for `purpose` (HKDF-SHA256 of each master key, the first
        first): what they seal cannot be read as a stored secret, nor a stored secret passed off
        as it. Seal with the first and open with any, so what was sealed just before a new
        master key came in still opens."""
        return [_derive(key, purpose) for key in self._keys]

    @classmethod
    def from_env(cls) -> SecretBox:
        """The distributed mode's box: every process shares the key through the environment."""
        env = os.environ.get(cls.ENV, "").strip()
        if not env:
            raise MissingMasterKey(
                f"{cls.ENV} is not set. Every service process needs the same key to read the "
                "webhook secrets; create one with `insights keys master-key` and give it to all."
            )
        return cls.parse(env, source=cls.ENV)

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        env = os.environ.get(cls.ENV, "").strip()
        if env:
            return cls.parse(env, source=cls.ENV)
        path = data_dir / cls.FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls.parse(path.read_text(), source=str(path))

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str | None:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return None

    def reseal(self, token: str) -> str | None:
        """The same secret encrypted with the first key; None when no key opens it."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            return None


def key_ring(keys: bytes | Sequence[bytes]) -> MultiFernet:
    """Fernet over one key or several: the first encrypts, each decrypts."""
    ring = [keys] if isinstance(keys, bytes) else list(keys)
    if not ring:
        raise ValueError("a key is needed")
    return MultiFernet([Fernet(key) for key in ring])


def master_keys(text: str, *, source: str) -> list[bytes]:
    """The keys of a master key's text (commas or lines between them), each checked."""
    keys = [part.strip().encode() for part in re.split(r"[,\s]+", text) if part.strip()]
    if not keys:
        raise MissingMasterKey(f"{source} holds no key")
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except ValueError as error:
            which = f"key {number} of {len(keys)}" if len(keys) > 1 else "the key"
            raise MissingMasterKey(
                f"{source}: {which} is not a Fernet key (32 url-safe base64-encoded bytes);"
                " create one with `insights keys master-key`."
            ) from error
    return keys


def write_master_keys(path: Path, keys: Sequence[bytes]) -> None:
    """The key file of the embedded mode, replaced whole (readable by its owner only): a crash
    leaves the old file or the new one, never a part."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b",".join(keys) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _derive(key: bytes, purpose: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        base64.urlsafe_b64decode(key)
    )
    return base64.urlsafe_b64encode(derived)


class UnreadableSecrets(Exception):
    """Stored secrets that no key of the master key opens: nothing was sealed again."""

    def __init__(self, where: Sequence[str]) -> None:
        super().__init__(
            f"no master key opens {len(where)} stored secret(s): {', '.join(where[:10])}"
            + (" …" if len(where) > 10 else "")
            + "; add the key they were encrypted with to the master key and run it again"
        )
        self.where = list(where)


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """A column of stored secrets, encrypted with the master key, and its rows' key columns
    (the first of them the app)."""

    table: str
    keys: tuple[str, ...]
    column: str

    def select_sql(self) -> str:
        return (
            f"SELECT {', '.join(self.keys)}, {self.column} FROM {self.table}"  # noqa: S608
            f" WHERE {self.column} IS NOT NULL"
        )

    def where(self, mark: str) -> str:
        """The row's keys and its token as it was read, from the second parameter on (the
        first is the new token); `mark` numbers them: "?" for SQLite, "$" for PostgreSQL."""
        names = (*self.keys, self.column)
        return " AND ".join(f"{name} = {mark}{n}" for n, name in enumerate(names, 2))


SEALED_COLUMNS = (
    SealedColumn("webhook_secrets", ("app_id",), "secret_encrypted"),
    SealedColumn("webhook_secrets", ("app_id",), "previous_encrypted"),
    SealedColumn("source_secrets", ("app_id", "platform"), "secret_encrypted"),
)
"""Every stored secret the master key encrypts."""


@dataclass(frozen=True, slots=True)
class Resealing:
    """A secret to write again: its column, its row's keys, its token as read and as it will be."""

    where: SealedColumn
    keys: tuple[str, ...]
    token: str
    resealed: str

    def update_sql(self, mark: str) -> str:
        """UPDATE of this secret with `params`, only if it still holds the token read; `mark`
        as `SealedColumn.where` takes it."""
        column = self.where.column
        return (
            f"UPDATE {self.where.table} SET {column} = {mark}1"  # noqa: S608
            f" WHERE {self.where.where(mark)}"
        )

    def params(self) -> tuple[str, ...]:
        return (self.resealed, *self.keys, self.token)


def resealings(box: SecretBox, found: dict[SealedColumn, list[tuple[str, ...]]]) -> list[Resealing]:
    """Each stored secret (`found`: per column, its rows' keys then token) encrypted again with
    the master key's first key; UnreadableSecrets when any is opened by none of its keys."""
    plans: list[Resealing] = []
    unreadable: list[str] = []
    for where, rows in found.items():
        for *keys, token in rows:
            resealed = box.reseal(token)
            if resealed is None:
                unreadable.append(f"{where.table}.{where.column} of {'/'.join(keys)}")
            else:
                plans.append(Resealing(where, tuple(keys), token, resealed))
    if unreadable:
        raise UnreadableSecrets(unreadable)
    return plans


def resealed_per_app(plans: Sequence[Resealing]) -> dict[str, int]:
    return dict(sorted(Counter(plan.keys[0] for plan in plans).items()))


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
