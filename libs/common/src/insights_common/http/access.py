"""Who is calling, and may they: the dependency every API route takes.

A program calls with an API key (`Authorization: Bearer uik_...`); a person with the session
cookie the sign-in set. A request that changes state with the cookie must also carry the
session's CSRF token in `X-CSRF-Token` (the cookie is SameSite=Lax, and a cross-site form
cannot read the token). Each route names the one permission it needs (`Access.require`); the
role of a member or the scopes of a key grant permissions (`access.py`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from insights_common.access import ROLES, Permission, Principal, scope_permissions
from insights_common.auth import KeyStore
from insights_common.clock import utc_now
from insights_common.http.conventions import Problem
from insights_common.http.rate_limit import client_address, rate_limits
from insights_common.members import (
    MemberStore,
    SessionInfo,
    SessionLimits,
    needs_touch,
    session_alive,
    token_hash,
)

SESSION_COOKIE = "insights_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSIGHTS_SESSION_", extra="ignore")

    idle_minutes: int = Field(default=30, ge=1)
    """A session ends after this long without a request."""
    absolute_hours: int = Field(default=12, ge=1)
    """A session ends this long after sign-in, however busy."""

    def limits(self) -> SessionLimits:
        return SessionLimits(
            idle=timedelta(minutes=self.idle_minutes), absolute=timedelta(hours=self.absolute_hours)
        )


@dataclass(frozen=True, slots=True)
class Requirement:
    """A route's dependency; `permission` is None for routes any signed-in caller may use."""

    access: Access
    permission: Permission | None

    async def __call__(self, request: Request) -> Principal:
        principal = await self.access.principal(request)
        if self.permission is not None and not principal.may(self.permission):
            what = self.permission.value
            raise Problem(
                403,
                "Forbidden",
                f"Your role '{principal.role}' does not allow '{what}'; an admin of the app can "
                "change it."
                if principal.role
                else f"The API key's scopes do not allow '{what}'; create a key with the scope.",
                permission=what,
            )
        return principal


@dataclass(frozen=True, slots=True)
class AppIdOf:
    """The app id of a `Requirement`'s principal, for routes that need nothing else."""

    requirement: Requirement

    @property
    def permission(self) -> Permission | None:
        return self.requirement.permission

    async def __call__(self, request: Request) -> str:
        return (await self.requirement(request)).app_id


class Access:
    """Authenticates requests of one serving process (API keys and, with members, sessions)."""

    def __init__(
        self,
        keys: KeyStore,
        members: MemberStore | None = None,
        *,
        sessions: SessionSettings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.keys = keys
        self.members = members
        self.limits = (sessions or SessionSettings()).limits()
        self.clock = clock

    def require(self, permission: Permission | None) -> Requirement:
        return Requirement(self, permission)

    def app_id(self, permission: Permission | None) -> AppIdOf:
        return AppIdOf(Requirement(self, permission))

    async def principal(self, request: Request) -> Principal:
        cached: Principal | None = getattr(request.state, "principal", None)
        if cached is not None:
            return cached
        limits = rate_limits(request)
        address = client_address(request)
        limits.check_address(address)
        header = request.headers.get("authorization", "")
        cookie = request.cookies.get(SESSION_COOKIE) if self.members is not None else None
        if header or not cookie:
            principal = await self._from_key(request, header, address)
        else:
            principal = await self._from_session(request, cookie, address)
        request.state.principal = principal
        request.state.app_id = principal.app_id
        return principal

    async def _from_key(self, request: Request, header: str, address: str) -> Principal:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(
                401,
                "Unauthorized",
                "Sign in (POST /api/v1/session), or send an API key as 'Authorization: Bearer "
                "<key>'; create one with 'insights keys create --app APP'.",
            )
        info = await self.keys.resolve_api_key(token.strip())
        if info is None or info.expired(self.clock()):
            rate_limits(request).failed(address)
            raise Problem(
                401,
                "Unauthorized",
                "The API key has expired." if info else "The API key is not known.",
            )
        rate_limits(request).use_key(f"{info.app_id}/{info.key_id}")
        return Principal(
            app_id=info.app_id,
            actor=f"key:{info.key_id}",
            permissions=scope_permissions(info.scopes),
        )

    async def _from_session(self, request: Request, cookie: str, address: str) -> Principal:
        session = await self.session(cookie)
        if session is None:
            rate_limits(request).failed(address)
            raise Problem(
                401, "Unauthorized", "The session has ended; sign in again (POST /api/v1/session)."
            )
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                raise Problem(
                    403,
                    "Forbidden",
                    "A request that changes something with the session cookie must carry the "
                    f"session's CSRF token in {CSRF_HEADER} (GET /api/v1/me gives it).",
                )
        return Principal(
            app_id=session.app_id,
            actor=f"member:{session.email}",
            permissions=ROLES.get(session.role, frozenset()),
            role=session.role,
            session_csrf=session.csrf_token,
        )

    async def session(self, cookie: str) -> SessionInfo | None:
        """The live session of a cookie, its last request moved to now; None when ended."""
        if self.members is None:
            return None
        digest = token_hash(cookie)
        session = await self.members.session(digest)
        now = self.clock()
        if session is None:
            return None
        if not session_alive(session, now=now, limits=self.limits):
            await self.members.end_session(digest)
            return None
        if needs_touch(session, now=now):
            await self.members.touch_session(digest, now=now)
        return session
