"""Members of apps (a person by email, a role per app), their passwords and their sessions.

Passwords are hashed with Argon2id at OWASP's first recommended setting (19 MiB, 2 passes, 1
lane): the library's default (64 MiB, 3 passes, 4 lanes) took 0.6 s of a loaded 2-core machine
per sign-in, so a few wrong passwords a second would occupy the server.

A session is a random 256-bit token in an HttpOnly cookie; the store keeps only its SHA-256,
like API keys, with a CSRF token of its own, and ends it after `idle` without a request or
`absolute` after sign-in, whichever comes first. The member's role is read with the session,
so a changed role or a removed member takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the email is unknown, so an unknown member takes as long as a wrong
# password and timing does not tell which emails are members.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
# A session's last request is written at most this often: a read does not cost a write each.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Member:
    app_id: str
    email: str
    role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionInfo:
    app_id: str
    email: str
    role: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class SessionLimits:
    idle: timedelta
    absolute: timedelta


def normal_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    return secrets.token_urlsafe(18)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_alive(session: SessionInfo, *, now: datetime, limits: SessionLimits) -> bool:
    return now - session.last_seen_at < limits.idle and now - session.created_at < limits.absolute


def needs_touch(session: SessionInfo, *, now: datetime) -> bool:
    return now - session.last_seen_at >= TOUCH_EVERY


class MemberStore(Protocol):
    async def add_member(
        self, app_id: str, email: str, *, role: str, password_hash: str, now: datetime
    ) -> bool:
        """False when the email is already a member of the app."""
        ...

    async def password_hash(self, app_id: str, email: str) -> str | None: ...

    async def is_member(self, app_id: str, email: str) -> bool: ...

    async def list_members(self, app_id: str) -> list[Member]: ...

    async def remove_member(self, app_id: str, email: str) -> bool:
        """Also ends the member's sessions in the app."""
        ...

    async def set_role(self, app_id: str, email: str, role: str) -> bool: ...

    async def set_password(self, app_id: str, email: str, password_hash: str) -> bool: ...

    async def admins(self, app_id: str) -> int: ...

    async def create_session(
        self, digest: str, *, app_id: str, email: str, csrf_token: str, now: datetime
    ) -> None: ...

    async def session(self, digest: str) -> SessionInfo | None:
        """The session with its member's current role; None when it or the member is gone."""
        ...

    async def touch_session(self, digest: str, *, now: datetime) -> None: ...

    async def end_session(self, digest: str) -> None: ...

    async def end_sessions(self, app_id: str, email: str) -> int:
        """End every session of the member in the app ("sign out everywhere")."""
        ...
