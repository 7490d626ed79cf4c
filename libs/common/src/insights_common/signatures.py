"""Webhook signatures: `X-Insights-Signature` in its two forms, made and checked, and the one
mechanism the platforms' own schemes (docs/sources.md) are checked with.

- `sha256=<hex HMAC-SHA256 of the raw body>`: the first form, still taken from existing senders.
- `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`: the timestamped form (as Stripe,
  Knock and Customer.io sign), which a receiver refuses outside a tolerance so a captured
  request cannot be replayed later. Several `v1=` may be sent; any one matching is enough.

Every scheme is a `Credential`: what the headers alone showed (digests, a timestamp to check
against the tolerance), and `matches(secrets, body)` once the body is read. A platform's scheme
differs only in what it signs (`frame`), with which hash, and how the digest is written.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

LEGACY_SCHEME = "sha256"
TIMESTAMPED_SCHEME = "v1"
MAX_SIGNATURES = 8
"""Most `v1=` one header may carry: a sender rotating its secret sends two."""
MAX_HEADER_CHARS = 1024
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The X-Insights-Signature header value for a body: `sha256=<hex>`, or with a `timestamp`
    (unix seconds) the timestamped form `t=<timestamp>,v1=<hex of "<timestamp>.<body>">`."""
    if timestamp is None:
        return LEGACY_SCHEME + "=" + _digest(secret, body).hex()
    return f"t={timestamp},{TIMESTAMPED_SCHEME}={_digest(secret, _signed(timestamp, body)).hex()}"


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` signs `body` with `secret`, in either form (no tolerance applied)."""
    if not header:
        return False
    try:
        signature = parse_signature(header)
    except MalformedSignature:
        return False
    return signature.matches((secret,), body)


class MalformedSignature(ValueError):
    """The signature header is neither form; the message says what was wrong."""


class Credential(Protocol):
    """What a request's headers claim; checked against the app's secrets once the body is read."""

    @property
    def timestamp(self) -> int | None:
        """Unix seconds the sender signed at, for the replay tolerance; None if not signed."""
        ...

    def matches(self, secrets: Sequence[str], body: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class Signature:
    """HMAC digests of a signed payload: by default X-Insights-Signature's, of the body or of
    "<t>.<body>"; a platform's scheme sets what is signed (`frame`) and the hash."""

    digests: tuple[bytes, ...]
    timestamp: int | None = None  # None: the legacy `sha256=` form, or a scheme without time
    frame: Callable[[bytes], bytes] | None = None
    """The signed payload made from the body; None: the body, or "<t>.<body>" with a timestamp."""
    algorithm: str = "sha256"

    def matches(self, secrets: Sequence[str], body: bytes) -> bool:
        """Whether any digest is the HMAC of the signed payload under any of `secrets`.

        Every pair is compared, in constant time, so the time taken says nothing about which
        secret or digest came close."""
        if self.frame is not None:
            payload = self.frame(body)
        else:
            payload = body if self.timestamp is None else _signed(self.timestamp, body)
        found = False
        for secret in secrets:
            expected = hmac.new(secret.encode(), payload, self.algorithm).digest()
            for digest in self.digests:
                found |= hmac.compare_digest(expected, digest)
        return found


@dataclass(frozen=True, slots=True)
class BearerToken:
    """A shared token sent as is (Braze Currents' `Authorization: Bearer`): it signs nothing, so
    it matches whatever the body; compared in constant time like a digest."""

    token: str
    timestamp: int | None = None

    def matches(self, secrets: Sequence[str], body: bytes) -> bool:
        found = False
        for secret in secrets:
            found |= hmac.compare_digest(secret.encode(), self.token.encode())
        return found


def parse_signature(header: str) -> Signature:
    """`sha256=<hex>` or `t=<unix seconds>,v1=<hex>[,v1=<hex>...]` (other schemes ignored)."""
    text = header.strip()
    scheme, _, value = text.partition("=")
    if scheme == LEGACY_SCHEME:
        if not _HEX_DIGEST.fullmatch(value):
            raise MalformedSignature(
                "sha256= must be followed by the 64 lowercase hex digits of the HMAC-SHA256."
            )
        return Signature(digests=(bytes.fromhex(value),))
    if len(text) > MAX_HEADER_CHARS:
        raise MalformedSignature(
            f"The signature header has {len(text):,} characters; at most {MAX_HEADER_CHARS:,} "
            f"are read (t= and up to {MAX_SIGNATURES} v1=)."
        )
    timestamps: list[str] = []
    digests: list[bytes] = []
    for element in text.split(","):
        key, _, value = element.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == TIMESTAMPED_SCHEME:
            if not _HEX_DIGEST.fullmatch(value):
                raise MalformedSignature(
                    "Each v1= must be the 64 lowercase hex digits of the HMAC-SHA256."
                )
            digests.append(bytes.fromhex(value))
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise MalformedSignature(
            "Send 't=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\">' with one t= "
            "(or the older 'sha256=<hex HMAC-SHA256 of the raw body>')."
        )
    if not 1 <= len(digests) <= MAX_SIGNATURES:
        raise MalformedSignature(
            f"Send from 1 to {MAX_SIGNATURES} v1= signatures beside t=; got {len(digests)}."
        )
    return Signature(digests=tuple(digests), timestamp=int(timestamps[0]))


def _signed(timestamp: int, body: bytes) -> bytes:
    return b"%d." % timestamp + body


def _digest(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class WebhookSigning:
    """What an app's webhooks are verified against."""

    secrets: tuple[str, ...]
    """The secrets that sign for the app now: the current one, then the previous one during
    the overlap of a rotation."""
    require_timestamp: bool = False
    """Refuse the legacy `sha256=` form: only `t=...,v1=...` is taken."""
