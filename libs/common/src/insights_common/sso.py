"""Single sign-on with OpenID Connect: the authorization code flow with PKCE (S256), by Authlib.

Starting a sign-in keeps its app, state, nonce and PKCE verifier in a short-lived HttpOnly
cookie, sealed (encrypted and authenticated) with a key derived from the master key: any
process of the deployment finishes a sign-in another one started, and no process keeps it in
memory. The callback takes a sign-in only from the browser that started it (the cookie's state
must be the one the provider sends back), only once (the cookie is dropped on the first answer)
and only within `flow_seconds`. The ID token is checked by Authlib against the provider's
published keys, its issuer, our client id, the nonce and its expiry, on the injected clock.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from cryptography.fernet import InvalidToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from insights_common.accounts import Accounts, NewSession
from insights_common.audit import AuditEntry, AuditLog
from insights_common.auth import key_ring
from insights_common.clock import utc_now
from insights_common.members import normal_email

log = logging.getLogger(__name__)

FLOW_COOKIE = "insights_sso"
SEAL_PURPOSE = "insights single sign-on flow"
# Seconds an ID token's times may be off from ours (clocks of two machines).
LEEWAY = 60
# The provider's discovery document and keys are read again after this long (or at once when
# a token names a key they lack).
METADATA_SECONDS = 3600
LOOPBACK_NAMES = ("localhost",)


class SsoSettings(BaseSettings):
    """`INSIGHTS_SSO_*`: the deployment's OpenID provider. Off unless the issuer, the client id
    and the client secret are all set."""

    model_config = SettingsConfigDict(env_prefix="INSIGHTS_SSO_", extra="ignore")

    issuer: str | None = None
    """The provider's issuer URL, e.g. https://login.example.com/realms/acme; its
    /.well-known/openid-configuration is read from it."""
    client_id: str | None = None
    client_secret: SecretStr | None = None
    email_claim: str = Field(default="email", min_length=1, max_length=100)
    """The ID token claim that carries the person's email (their member email)."""
    name: str = Field(default="single sign-on", min_length=1, max_length=60)
    """Shown on the sign-in page's button: 'Sign in with <name>'."""
    scopes: str = "openid email profile"
    flow_seconds: int = Field(default=600, ge=30, le=3600)
    """Longest a person may take at the provider between the button and the way back."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """Longest wait for each answer of the provider."""

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        loopback = parts.hostname in LOOPBACK_NAMES or _is_loopback(parts.hostname or "")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError(
                f"INSIGHTS_SSO_ISSUER must be an https URL (http only on loopback), got {value!r}"
            )
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _all_or_nothing(self) -> SsoSettings:
        given = {
            "INSIGHTS_SSO_ISSUER": self.issuer,
            "INSIGHTS_SSO_CLIENT_ID": self.client_id,
            "INSIGHTS_SSO_CLIENT_SECRET": self.client_secret,
        }
        missing = [name for name, value in given.items() if not value]
        if 0 < len(missing) < len(given):
            raise ValueError(
                f"single sign-on needs {', '.join(given)} all set; not set: {', '.join(missing)}"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id and self.client_secret)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SsoRefused(Exception):
    """A sign-in that is not taken. `code` is what the sign-in page explains to the person
    (the dashboard has a sentence for each); the message is for the log."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# What the sign-in page is told, as ?sso_error=<code>; a code, never text, so that a crafted
# link cannot put words of its own on the page.
REFUSALS = {
    "expired": "the sign-in was not started in this browser, took too long, or was used already",
    "denied": "the provider did not sign the person in",
    "provider": "the provider could not be reached or its answer did not verify",
    "no_email": "the provider sent no email",
    "unverified": "the provider has not verified the email",
    "not_member": "the email is not a member of the app",
}


@dataclass(frozen=True, slots=True)
class Flow:
    """One sign-in under way, as its cookie keeps it."""

    app_id: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True, slots=True)
class Identity:
    app_id: str
    email: str
    subject: str


class FlowSeal:
    """Seals a `Flow` into a cookie value and opens it again within `seconds`. With several
    keys (the master key's, while a new one comes in), the first seals and any opens."""

    def __init__(
        self, keys: bytes | Sequence[bytes], *, seconds: int, clock: Callable[[], datetime]
    ) -> None:
        self._fernet = key_ring(keys)
        self._seconds = seconds
        self._clock = clock

    def seal(self, flow: Flow) -> str:
        plain = json.dumps([flow.app_id, flow.state, flow.nonce, flow.verifier]).encode()
        now = int(self._clock().timestamp())
        return self._fernet.encrypt_at_time(plain, now).decode()

    def open(self, sealed: str | None) -> Flow:
        if not sealed:
            raise SsoRefused("expired", "no sign-in cookie came back with the callback")
        now = int(self._clock().timestamp())
        try:
            plain = self._fernet.decrypt_at_time(sealed.encode(), self._seconds, now)
            app_id, state, nonce, verifier = json.loads(plain)
        except (InvalidToken, ValueError, TypeError) as error:
            raise SsoRefused("expired", "the sign-in cookie is too old or not ours") from error
        return Flow(app_id=app_id, state=state, nonce=nonce, verifier=verifier)


class Provider:
    """The provider's discovery document and signing keys, read when first needed and kept
    for `METADATA_SECONDS` (a cache: every process reads its own)."""

    def __init__(self, settings: SsoSettings, http: Callable[[], AsyncOAuth2Client]) -> None:
        if settings.issuer is None:
            raise ValueError("single sign-on has no issuer (INSIGHTS_SSO_ISSUER)")
        self._issuer = settings.issuer
        self._http = http
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, Any] | None = None
        self._read_at = 0.0

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._read_at > METADATA_SECONDS:
            url = f"{self._issuer}/.well-known/openid-configuration"
            document = await self._get(url)
            if document.get("issuer") != self._issuer:
                raise SsoRefused(
                    "provider",
                    f"{url} names the issuer {document.get('issuer')!r}, not {self._issuer!r}",
                )
            self._metadata, self._keys, self._read_at = document, None, time.monotonic()
        return self._metadata

    async def keys(self, *, again: bool = False) -> KeySet:
        if self._keys is None or again:
            self._keys = await self._get((await self.metadata())["jwks_uri"])
        return KeySet.import_key_set(cast(Any, self._keys))

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with self._http() as client:
                answer = await client.request("GET", url, withhold_token=True)
                answer.raise_for_status()
                document: dict[str, Any] = answer.json()
        except (httpx2.HTTPError, ValueError) as error:
            raise SsoRefused("provider", f"could not read {url}: {error}") from error
        return document


class SingleSignOn:
    """Starts and finishes sign-ins at the deployment's OpenID provider."""

    def __init__(
        self,
        settings: SsoSettings,
        *,
        seal_keys: bytes | Sequence[bytes],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not settings.enabled:
            raise ValueError("single sign-on is not configured (INSIGHTS_SSO_*)")
        self.settings = settings
        self.seal = FlowSeal(seal_keys, seconds=settings.flow_seconds, clock=clock)
        self.provider = Provider(settings, self._client)
        self._clock = clock

    @property
    def label(self) -> str:
        return f"Sign in with {self.settings.name}"

    def _client(self, redirect_uri: str | None = None) -> AsyncOAuth2Client:
        secret = self.settings.client_secret
        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=secret.get_secret_value() if secret else None,
            scope=self.settings.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self.settings.timeout_seconds,
        )

    async def start(self, app_id: str, *, redirect_uri: str) -> tuple[str, str]:
        """The provider's authorization URL to send the browser to, and the sealed cookie
        that must come back with it."""
        flow = Flow(
            app_id=app_id,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),
        )
        endpoint = (await self.provider.metadata())["authorization_endpoint"]
        async with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                endpoint, state=flow.state, nonce=flow.nonce, code_verifier=flow.verifier
            )
        return url, self.seal.seal(flow)

    async def finish(
        self,
        *,
        cookie: str | None,
        params: Mapping[str, str],
        redirect_uri: str,
    ) -> Identity:
        """The person the provider signed in, from the callback's query `params` and the
        cookie `start` set; `SsoRefused` says why not."""
        flow = self.seal.open(cookie)
        state = params.get("state", "")
        if not secrets.compare_digest(state.encode(), flow.state.encode()):
            raise SsoRefused("expired", "the callback's state is not the one this browser started")
        if "error" in params:
            raise SsoRefused(
                "denied",
                f"the provider answered {params['error']}: {params.get('error_description', '')}",
            )
        code = params.get("code")
        if not code:
            raise SsoRefused("denied", "the callback carries no code")
        tokens = await self.exchange(code, verifier=flow.verifier, redirect_uri=redirect_uri)
        claims = await self.verify_id_token(tokens, nonce=flow.nonce)
        return Identity(app_id=flow.app_id, email=self.email_of(claims), subject=str(claims["sub"]))

    async def exchange(self, code: str, *, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The provider's tokens for `code` (sent with the PKCE verifier and our secret)."""
        endpoint = (await self.provider.metadata())["token_endpoint"]
        try:
            async with self._client(redirect_uri) as client:
                tokens = await client.fetch_token(
                    endpoint, grant_type="authorization_code", code=code, code_verifier=verifier
                )
        except (OAuthError, httpx2.HTTPError, ValueError) as error:
            raise SsoRefused("provider", f"the token endpoint refused the code: {error}") from error
        return dict(tokens)

    async def verify_id_token(self, tokens: Mapping[str, Any], *, nonce: str) -> CodeIDToken:
        """The ID token's claims once its signature, issuer, audience, nonce, expiry and
        access token hash check out."""
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SsoRefused("provider", "the provider sent no ID token (is 'openid' a scope?)")
        metadata = await self.provider.metadata()
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        registry = JWSRegistry(algorithms=[a for a in algorithms if a != "none"])
        try:
            try:
                token = jwt.decode(id_token, await self.provider.keys(), registry=registry)
            except InvalidKeyIdError:  # a key the provider rolled in since we read its keys
                token = jwt.decode(
                    id_token, await self.provider.keys(again=True), registry=registry
                )
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": self.settings.client_id or ""},
                    "exp": {"essential": True},
                },
                {
                    "nonce": nonce,
                    "client_id": self.settings.client_id,
                    "access_token": tokens.get("access_token"),
                },
            )
            claims.validate(now=int(self._clock().timestamp()), leeway=LEEWAY)
        except (JoseError, ValueError) as error:
            raise SsoRefused("provider", f"the ID token did not verify: {error}") from error
        return claims

    def email_of(self, claims: Mapping[str, Any]) -> str:
        email = claims.get(self.settings.email_claim)
        if not isinstance(email, str) or not email.strip():
            raise SsoRefused("no_email", f"the ID token has no {self.settings.email_claim!r} claim")
        verified = claims.get("email_verified")
        if verified is False or (isinstance(verified, str) and verified.lower() == "false"):
            raise SsoRefused("unverified", f"the provider has not verified {email}")
        return email.strip()


class SsoSignIn:
    """Signing a member in through the provider: its answer checked, the member found by email,
    the session a password sign-in opens, and the entry `session.sso` in the app's trail."""

    def __init__(
        self,
        sso: SingleSignOn,
        accounts: Accounts,
        audit: AuditLog,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sso = sso
        self._accounts = accounts
        self._audit = audit
        self._clock = clock

    async def finish(
        self, *, cookie: str | None, params: Mapping[str, str], redirect_uri: str, address: str
    ) -> NewSession:
        """The new session of the member the callback names; `SsoRefused` says why not."""
        identity = await self.sso.finish(cookie=cookie, params=params, redirect_uri=redirect_uri)
        session = await self._accounts.sign_in_verified(identity.app_id, identity.email)
        if session is None:
            raise SsoRefused(
                "not_member", f"{identity.email} is not a member of app {identity.app_id!r}"
            )
        await self._audit.append(
            AuditEntry(
                at=self._clock(),
                app_id=identity.app_id,
                actor=f"member:{normal_email(identity.email)}",
                action="session.sso",
                address=address,
                detail=f"{self.sso.settings.issuer} subject {identity.subject}",
            )
        )
        return session
