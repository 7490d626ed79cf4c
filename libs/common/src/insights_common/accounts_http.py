"""Sign-in, the caller's identity, and the app's members: routes under /api/v1."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from insights_common.access import ROLES, Permission, Principal
from insights_common.access_http import CSRF_HEADER, SESSION_COOKIE, Access
from insights_common.accounts import (
    MAX_PASSWORD,
    AccountError,
    Accounts,
    LastAdmin,
    MemberExists,
    NoSuchMember,
)
from insights_common.audit import AuditLog, Recorder
from insights_common.http import FORBIDDEN, UNAUTHORIZED, Problem, problem_responses
from insights_common.members import normal_email
from insights_common.rate_limit import client_address, rate_limits

Role = Literal["admin", "agent", "analyst"]


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class Me(BaseModel):
    app: str
    email: str | None
    """None for an API key."""
    role: str | None
    csrf_token: str | None
    """Send it as X-CSRF-Token with every request that changes something (session only)."""
    permissions: list[str]


class MemberOut(BaseModel):
    email: str
    role: str
    created_at: datetime


class NewMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    role: Role


class NewMemberOut(MemberOut):
    password: str
    """For the member's first sign-in; shown only this once."""


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


_BODY = "The body is not what the route takes: errors[] names each field and why."
_AUTH = problem_responses({401: UNAUTHORIZED, 403: FORBIDDEN})
_MEMBER = problem_responses(
    {
        400: "The email is not an email address.",
        401: UNAUTHORIZED,
        403: FORBIDDEN,
        404: "No such member",
        409: "The email is already a member, or the change would leave the app no admin.",
        422: _BODY,
    }
)


def _account_problem(error: AccountError) -> Problem:
    if isinstance(error, NoSuchMember):
        return Problem(404, "Member not found", str(error))
    if isinstance(error, MemberExists | LastAdmin):
        return Problem(409, "Conflict", str(error))
    return Problem(400, "Invalid request", str(error))


def accounts_router(access: Access, accounts: Accounts, audit: AuditLog) -> APIRouter:
    router = APIRouter(tags=["accounts"])
    Caller = Annotated[Principal, Depends(access.require(None))]
    Admin = Annotated[Principal, Depends(access.require(Permission.MANAGE_MEMBERS))]
    record = Recorder(audit)

    @router.post(
        "/session",
        status_code=204,
        responses=problem_responses(
            {
                400: "The body is not JSON.",
                401: "The email and password do not match a member.",
                422: _BODY,
            }
        ),
    )
    async def sign_in(body: SignIn, request: Request, response: Response) -> None:
        limits = rate_limits(request)
        address = client_address(request)
        limits.check_address(address)
        session = await accounts.sign_in(body.app, body.email, body.password)
        if session is None:
            limits.failed(address)
            raise Problem(401, "Unauthorized", "The email and password do not match a member.")
        response.set_cookie(
            SESSION_COOKIE,
            session.token,
            max_age=int(access.limits.absolute.total_seconds()),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )

    @router.get("/me", response_model=Me, responses=_AUTH)
    async def me(caller: Caller) -> Me:
        member = caller.actor.removeprefix("member:") if caller.role else None
        return Me(
            app=caller.app_id,
            email=member,
            role=caller.role,
            csrf_token=caller.session_csrf,
            permissions=sorted(p.value for p in caller.permissions),
        )

    @router.delete("/session", status_code=204, responses=_AUTH)
    async def sign_out(caller: Caller, request: Request, response: Response) -> None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if caller.role and cookie:
            await accounts.sign_out(cookie)
        response.delete_cookie(SESSION_COOKIE, path="/")

    @router.delete(
        "/sessions",
        status_code=204,
        responses=problem_responses(
            {400: "An API key has no sessions.", 401: UNAUTHORIZED, 403: FORBIDDEN}
        ),
    )
    async def sign_out_everywhere(caller: Caller, response: Response) -> None:
        """End every session of the calling member, in every browser."""
        if not caller.role:
            raise Problem(400, "Invalid request", "An API key has no sessions to end.")
        await accounts.sign_out_everywhere(caller.app_id, caller.actor.removeprefix("member:"))
        response.delete_cookie(SESSION_COOKIE, path="/")

    @router.get("/members", response_model=list[MemberOut], responses=_AUTH)
    async def list_members(caller: Admin) -> list[MemberOut]:
        return [
            MemberOut(email=m.email, role=m.role, created_at=m.created_at)
            for m in await accounts.list(caller.app_id)
        ]

    @router.post("/members", status_code=201, response_model=NewMemberOut, responses=_MEMBER)
    async def add_member(caller: Admin, body: NewMember, request: Request) -> NewMemberOut:
        try:
            password = await accounts.add(caller.app_id, body.email, body.role)
        except AccountError as error:
            raise _account_problem(error) from error
        await record(request, "member.add", detail=f"{body.email} as {body.role}")
        email = normal_email(body.email)
        member = next(m for m in await accounts.list(caller.app_id) if m.email == email)
        return NewMemberOut(
            email=member.email, role=member.role, created_at=member.created_at, password=password
        )

    @router.patch("/members/{email}", status_code=204, responses=_MEMBER)
    async def set_role(caller: Admin, email: str, body: RoleChange, request: Request) -> None:
        try:
            await accounts.set_role(caller.app_id, email, body.role)
        except AccountError as error:
            raise _account_problem(error) from error
        await record(request, "member.set_role", detail=f"{email} to {body.role}")

    @router.delete("/members/{email}", status_code=204, responses=_MEMBER)
    async def remove_member(caller: Admin, email: str, request: Request) -> None:
        try:
            await accounts.remove(caller.app_id, email)
        except AccountError as error:
            raise _account_problem(error) from error
        await record(request, "member.remove", detail=email)

    return router


__all__ = ["CSRF_HEADER", "ROLES", "accounts_router"]
