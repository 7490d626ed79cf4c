"""Use cases of members and sessions, shared by the API and the `insights members` command."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from insights_common.access import check_role
from insights_common.clock import utc_now
from insights_common.members import (
    Member,
    MemberStore,
    hash_password,
    new_password,
    new_session_token,
    normal_email,
    password_matches,
    token_hash,
)

# Enough to catch a mistyped address; the identity provider or the person's first sign-in
# proves the rest.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s.]{1,63}")
MAX_PASSWORD = 1024


class AccountError(ValueError):
    """A request about members that cannot be done; the message says why."""


class MemberExists(AccountError):
    pass


class NoSuchMember(AccountError):
    pass


class LastAdmin(AccountError):
    pass


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    csrf_token: str


def check_email(email: str) -> str:
    email = normal_email(email)
    if not _EMAIL.fullmatch(email):
        raise AccountError(f"'{email[:80]}' is not an email address (name@example.com)")
    return email


class Accounts:
    def __init__(self, members: MemberStore, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.members = members
        self._clock = clock

    async def add(self, app_id: str, email: str, role: str) -> str:
        """Make the person a member of the app; answers the password of its first sign-in."""
        email = check_email(email)
        check_role(role)
        password = new_password()
        added = await self.members.add_member(
            app_id, email, role=role, password_hash=hash_password(password), now=self._clock()
        )
        if not added:
            raise MemberExists(f"{email} is already a member of app '{app_id}'")
        return password

    async def list(self, app_id: str) -> list[Member]:
        return await self.members.list_members(app_id)

    async def remove(self, app_id: str, email: str) -> None:
        email = normal_email(email)
        await self._keep_an_admin(app_id, email)
        if not await self.members.remove_member(app_id, email):
            raise NoSuchMember(f"{email} is not a member of app '{app_id}'")

    async def set_role(self, app_id: str, email: str, role: str) -> None:
        email = normal_email(email)
        check_role(role)
        if role != "admin":
            await self._keep_an_admin(app_id, email)
        if not await self.members.set_role(app_id, email, role):
            raise NoSuchMember(f"{email} is not a member of app '{app_id}'")

    async def reset_password(self, app_id: str, email: str) -> str:
        email = normal_email(email)
        password = new_password()
        if not await self.members.set_password(app_id, email, hash_password(password)):
            raise NoSuchMember(f"{email} is not a member of app '{app_id}'")
        await self.members.end_sessions(app_id, email)
        return password

    async def _keep_an_admin(self, app_id: str, email: str) -> None:
        members = {m.email: m for m in await self.members.list_members(app_id)}
        member = members.get(email)
        if member is not None and member.role == "admin" and await self.members.admins(app_id) <= 1:
            raise LastAdmin(
                f"{email} is the last admin of app '{app_id}'; make another member admin first"
            )

    async def sign_in(self, app_id: str, email: str, password: str) -> NewSession | None:
        """A new session, or None when the email and password do not match a member."""
        email = normal_email(email)
        stored = await self.members.password_hash(app_id, email)
        if not password_matches(stored, password[:MAX_PASSWORD]):
            return None
        return await self._open_session(app_id, email)

    async def sign_in_verified(self, app_id: str, email: str) -> NewSession | None:
        """A new session for an email an identity provider vouched for (single sign-on), or
        None when it is not a member of the app."""
        email = normal_email(email)
        if not await self.members.is_member(app_id, email):
            return None
        return await self._open_session(app_id, email)

    async def _open_session(self, app_id: str, email: str) -> NewSession:
        session = NewSession(new_session_token(), secrets.token_urlsafe(32))
        await self.members.create_session(
            token_hash(session.token),
            app_id=app_id,
            email=email,
            csrf_token=session.csrf_token,
            now=self._clock(),
        )
        return session

    async def sign_out(self, token: str) -> None:
        await self.members.end_session(token_hash(token))

    async def sign_out_everywhere(self, app_id: str, email: str) -> int:
        return await self.members.end_sessions(app_id, email)
