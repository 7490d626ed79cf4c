"""Sign-in, the caller's identity, and the app's members: routes under /api/v1."""

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from insights_common.access import ROLES, Permission, Principal
from insights_common.accounts import (
    MAX_PASSWORD,
    AccountError,
    Accounts,
    LastAdmin,
    MemberExists,
    NoSuchMember,
)
from insights_common.audit import AuditEntry, Trail
from insights_common.clock import utc_now
from insights_common.http.access import CSRF_HEADER, SESSION_COOKIE, Access
from insights_common.http.conventions import FORBIDDEN, UNAUTHORIZED, Problem, problem_responses
from insights_common.http.rate_limit import client_address, rate_limits
from insights_common.http.recorder import Recorder
from insights_common.members import normal_email
from insights_common.sso import FLOW_COOKIE, SingleSignOn, SsoRefused, SsoSignIn

log = logging.getLogger(__name__)
# Where the browser lands after single sign-on: the dashboard, or its sign-in page, which
# explains ?sso_error=<code>.
DASHBOARD = "/"
SIGN_IN_PAGE = "/signin"

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


class SsoOption(BaseModel):
    label: str
    """The button's text, e.g. 'Sign in with Okta'."""
    start: str
    """Send the browser here, with ?app=APP, to sign in at the organization's provider."""


class SessionOptions(BaseModel):
    password: bool
    sso: SsoOption | None
    """None when the deployment has no single sign-on."""


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


def accounts_router(
    access: Access, accounts: Accounts, audit: Trail, sso: SingleSignOn | None = None
) -> APIRouter:
    router = APIRouter(tags=["accounts"])
    Caller = Annotated[Principal, Depends(access.require(None))]
    Admin = Annotated[Principal, Depends(access.require(Permission.MANAGE_MEMBERS))]
    record = Recorder(audit)
    sso_sign_in = SsoSignIn(sso, accounts, audit) if sso is not None else None

    def set_session_cookie(response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(access.limits.absolute.total_seconds()),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )

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
        await audit.append(
            AuditEntry(
                at=utc_now(),
                app_id=body.app,
                actor=f"member:{normal_email(body.email)}",
                action="session.password",
                address=address,
            )
        )
        set_session_cookie(response, request, session.token)

    @router.get("/session/options", response_model=SessionOptions)
    async def session_options(request: Request) -> SessionOptions:
        """How people may sign in to this deployment (the sign-in page asks before showing)."""
        option = None
        if sso is not None:
            option = SsoOption(label=sso.label, start=str(request.url_for("sso_start").path))
        return SessionOptions(password=True, sso=option)

    def refused(request: Request, code: str, *, failed: bool = True) -> RedirectResponse:
        if failed:  # a refused callback counts as a failed authentication; an outage does not
            rate_limits(request).failed(client_address(request))
        answer = RedirectResponse(f"{SIGN_IN_PAGE}?sso_error={code}", status_code=303)
        answer.delete_cookie(FLOW_COOKIE, path=flow_path(request))
        return answer

    def flow_path(request: Request) -> str:
        return str(request.url_for("sso_start").path)

    @router.get(
        "/session/sso",
        name="sso_start",
        status_code=303,
        response_class=RedirectResponse,
        responses=problem_responses(
            {
                400: "No app, or an app id of more than 64 characters.",
                404: "The deployment has no single sign-on.",
            }
        ),
    )
    async def sso_start(
        request: Request, app: Annotated[str, Query(min_length=1, max_length=64)]
    ) -> RedirectResponse:
        """Sign in to `app` at the organization's OpenID provider: answers a redirect there.
        The provider sends the browser back to /session/sso/callback."""
        if sso is None:
            raise Problem(404, "Not found", "This deployment has no single sign-on.")
        rate_limits(request).check_address(client_address(request))
        try:
            url, sealed = await sso.start(app, redirect_uri=str(request.url_for("sso_callback")))
        except SsoRefused as refusal:
            log.warning("single sign-on could not start: %s", refusal)
            return refused(request, refusal.code, failed=False)
        answer = RedirectResponse(url, status_code=303)
        answer.set_cookie(
            FLOW_COOKIE,
            sealed,
            max_age=sso.settings.flow_seconds,
            path=flow_path(request),
            secure=request.url.scheme == "https",
            httponly=True,
            # Lax: the provider's redirect back is a top-level GET from another site.
            samesite="lax",
        )
        return answer

    @router.get(
        "/session/sso/callback",
        name="sso_callback",
        status_code=303,
        response_class=RedirectResponse,
        responses=problem_responses({404: "The deployment has no single sign-on."}),
    )
    async def sso_callback(request: Request) -> RedirectResponse:
        """Where the provider sends the browser back: signs the member in (the session cookie
        of a password sign-in) and answers a redirect to the dashboard; a refusal redirects
        there with ?sso_error=<why>."""
        if sso_sign_in is None:
            raise Problem(404, "Not found", "This deployment has no single sign-on.")
        address = client_address(request)
        rate_limits(request).check_address(address)
        try:
            session = await sso_sign_in.finish(
                cookie=request.cookies.get(FLOW_COOKIE),
                params={key: value[:4096] for key, value in request.query_params.items()},
                redirect_uri=str(request.url_for("sso_callback")),
                address=address,
            )
        except SsoRefused as refusal:
            log.info("single sign-on refused from %s: %s", address, refusal)
            return refused(request, refusal.code, failed=refusal.code != "provider")
        answer = RedirectResponse(DASHBOARD, status_code=303)
        answer.delete_cookie(FLOW_COOKIE, path=flow_path(request))
        set_session_cookie(answer, request, session.token)
        return answer

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
    async def sign_out_everywhere(caller: Caller, request: Request, response: Response) -> None:
        """End every session of the calling member, in every browser."""
        if not caller.role:
            raise Problem(400, "Invalid request", "An API key has no sessions to end.")
        await accounts.sign_out_everywhere(caller.app_id, caller.actor.removeprefix("member:"))
        await record(request, "session.end_all")
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
