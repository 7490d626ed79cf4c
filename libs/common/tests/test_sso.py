"""Single sign-on's checks: the settings, the sealed flow, and the callback's checks on real ID
tokens from a real Keycloak (tests/sso/realm.json)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from insights_common.sso import Flow, FlowSeal, SingleSignOn, SsoRefused, SsoSettings
from tests.sso.keycloak import CLIENT_ID, UNVERIFIED, VERIFIED, sign_in_at_provider

if TYPE_CHECKING:
    from tests.sso.keycloak import Realm

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CALLBACK = "http://127.0.0.1:9/api/v1/session/sso/callback"
KEY = Fernet.generate_key()


class Clock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.unit
def test_single_sign_on_is_off_until_issuer_client_and_secret_are_all_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not SsoSettings().enabled
    monkeypatch.setenv("INSIGHTS_SSO_ISSUER", "https://login.example.com/realms/acme/")
    with pytest.raises(ValidationError, match="not set: INSIGHTS_SSO_CLIENT_SECRET"):
        SsoSettings(client_id="insights")
    settings = SsoSettings(client_id="insights", client_secret="s3cret")  # type: ignore[arg-type]
    assert settings.enabled
    assert settings.issuer == "https://login.example.com/realms/acme"
    assert settings.email_claim == "email"


@pytest.mark.unit
def test_an_issuer_over_plain_http_is_taken_only_on_loopback() -> None:
    with pytest.raises(ValidationError, match="https"):
        SsoSettings(issuer="http://login.example.com", client_id="a", client_secret="b")  # type: ignore[arg-type]
    assert SsoSettings(issuer="http://127.0.0.1:8080/realms/x", client_id="a", client_secret="b")  # type: ignore[arg-type]


@pytest.mark.unit
def test_a_sealed_flow_opens_within_its_time_and_not_after_nor_when_changed() -> None:
    clock = Clock(T0)
    seal = FlowSeal(KEY, seconds=600, clock=clock)
    flow = Flow(app_id="acme", state="s", nonce="n", verifier="v")
    sealed = seal.seal(flow)
    clock.now = T0 + timedelta(seconds=599)
    assert seal.open(sealed) == flow
    clock.now = T0 + timedelta(seconds=601)
    with pytest.raises(SsoRefused) as late:
        seal.open(sealed)
    assert late.value.code == "expired"
    clock.now = T0
    changed = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    for bad in (
        changed,
        None,
        "",
        FlowSeal(Fernet.generate_key(), seconds=600, clock=clock).seal(flow),
    ):
        with pytest.raises(SsoRefused) as refused:
            seal.open(bad)
        assert refused.value.code == "expired"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"email": "ann@acme.example", "email_verified": False}, "unverified"),
        ({"email": "ann@acme.example", "email_verified": "false"}, "unverified"),
        ({"email_verified": True}, "no_email"),
        ({"email": ""}, "no_email"),
    ],
)
def test_the_email_must_be_there_and_not_unverified(claims: dict[str, Any], code: str) -> None:
    sso = SingleSignOn(
        SsoSettings(issuer="https://idp.example", client_id="a", client_secret="b"),  # type: ignore[arg-type]
        seal_keys=KEY,
    )
    with pytest.raises(SsoRefused) as refused:
        sso.email_of(claims)
    assert refused.value.code == code


@pytest.mark.unit
def test_the_email_comes_from_the_configured_claim() -> None:
    sso = SingleSignOn(
        SsoSettings(
            issuer="https://idp.example",
            client_id="a",
            client_secret="b",  # type: ignore[arg-type]
            email_claim="upn",
        ),
        seal_keys=KEY,
    )
    assert sso.email_of({"upn": "Ann@Acme.example", "email": "other@x.example"}) == (
        "Ann@Acme.example"
    )


# --- On a real provider ---------------------------------------------------------------------


def provider_sso(realm: Realm, clock: Clock | None = None, **changes: str) -> SingleSignOn:
    fields: dict[str, Any] = {
        "issuer": realm.issuer,
        "client_id": CLIENT_ID,
        "client_secret": realm.settings_env()["INSIGHTS_SSO_CLIENT_SECRET"],
        **changes,
    }
    settings = SsoSettings(**fields)
    return SingleSignOn(settings, seal_keys=KEY, clock=clock or Clock())


async def signed_in(sso: SingleSignOn, email: str) -> tuple[str, dict[str, str]]:
    """Start a sign-in, sign in at the provider as `email`: the sealed cookie and the
    callback's query."""
    url, sealed = await sso.start("acme", redirect_uri=CALLBACK)
    with httpx.Client(timeout=30) as browser:
        back = await asyncio.to_thread(sign_in_at_provider, browser, url, email)
    assert back.startswith(CALLBACK)
    return sealed, {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}


@pytest.mark.integration
async def test_the_authorization_request_carries_pkce_state_and_nonce(sso_realm: Realm) -> None:
    sso = provider_sso(sso_realm)
    url, sealed = await sso.start("acme", redirect_uri=CALLBACK)
    flow = sso.seal.open(sealed)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{sso_realm.issuer}/protocol/openid-connect/auth?")
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == flow.state and query["nonce"] == flow.nonce
    assert query["redirect_uri"] == CALLBACK and query["response_type"] == "code"
    assert "openid" in query["scope"].split()
    assert flow.verifier not in url


@pytest.mark.integration
async def test_a_verified_member_email_comes_back_from_the_provider(sso_realm: Realm) -> None:
    sso = provider_sso(sso_realm)
    sealed, params = await signed_in(sso, VERIFIED)
    identity = await sso.finish(cookie=sealed, params=params, redirect_uri=CALLBACK)
    assert (identity.app_id, identity.email) == ("acme", VERIFIED)
    assert identity.subject


@pytest.mark.integration
async def test_an_email_the_provider_has_not_verified_is_refused(sso_realm: Realm) -> None:
    sso = provider_sso(sso_realm)
    sealed, params = await signed_in(sso, UNVERIFIED)
    with pytest.raises(SsoRefused) as refused:
        await sso.finish(cookie=sealed, params=params, redirect_uri=CALLBACK)
    assert refused.value.code == "unverified"


@pytest.mark.integration
async def test_a_callback_with_another_state_or_another_browsers_cookie_is_refused(
    sso_realm: Realm,
) -> None:
    sso = provider_sso(sso_realm)
    sealed, params = await signed_in(sso, VERIFIED)
    _, other = await sso.start("acme", redirect_uri=CALLBACK)
    for cookie, query in (
        (sealed, {**params, "state": params["state"][:-2] + "xx"}),
        (other, params),
        (None, params),
    ):
        with pytest.raises(SsoRefused) as refused:
            await sso.finish(cookie=cookie, params=query, redirect_uri=CALLBACK)
        assert refused.value.code == "expired"
    # The code is still good: the refusals above never reached the provider with it.
    identity = await sso.finish(cookie=sealed, params=params, redirect_uri=CALLBACK)
    assert identity.email == VERIFIED
    with pytest.raises(SsoRefused) as replayed:  # the provider takes a code once
        await sso.finish(cookie=sealed, params=params, redirect_uri=CALLBACK)
    assert replayed.value.code == "provider"


@pytest.mark.integration
async def test_an_id_token_for_another_nonce_is_refused(sso_realm: Realm) -> None:
    sso = provider_sso(sso_realm)
    sealed, params = await signed_in(sso, VERIFIED)
    flow = sso.seal.open(sealed)
    swapped = sso.seal.seal(Flow(flow.app_id, flow.state, "another-nonce", flow.verifier))
    with pytest.raises(SsoRefused) as refused:
        await sso.finish(cookie=swapped, params=params, redirect_uri=CALLBACK)
    assert refused.value.code == "provider"
    assert "nonce" in str(refused.value)


@pytest.mark.integration
async def test_the_pkce_verifier_must_match_the_challenge(sso_realm: Realm) -> None:
    sso = provider_sso(sso_realm)
    sealed, params = await signed_in(sso, VERIFIED)
    flow = sso.seal.open(sealed)
    swapped = sso.seal.seal(Flow(flow.app_id, flow.state, flow.nonce, "x" * 64))
    with pytest.raises(SsoRefused) as refused:
        await sso.finish(cookie=swapped, params=params, redirect_uri=CALLBACK)
    assert refused.value.code == "provider"


@pytest.mark.integration
async def test_id_token_signature_audience_and_expiry_are_checked(sso_realm: Realm) -> None:
    clock = Clock()
    sso = provider_sso(sso_realm, clock)
    sealed, params = await signed_in(sso, VERIFIED)
    flow = sso.seal.open(sealed)
    tokens = await sso.exchange(params["code"], verifier=flow.verifier, redirect_uri=CALLBACK)
    claims = await sso.verify_id_token(tokens, nonce=flow.nonce)
    assert claims["iss"] == sso_realm.issuer

    head, body, signature = tokens["id_token"].split(".")
    forged = f"{head}.{body}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    other_client = provider_sso(sso_realm, clock, client_id="another-client")
    expired_at = datetime.fromtimestamp(claims["exp"], UTC) + timedelta(seconds=61)
    late = provider_sso(sso_realm, Clock(expired_at))
    issued_at = datetime.fromtimestamp(claims["iat"], UTC)
    early = provider_sso(sso_realm, Clock(issued_at - timedelta(seconds=61)))
    for checker, token, why in (
        (sso, {**tokens, "id_token": forged}, "signature"),
        (other_client, tokens, "aud"),
        (late, tokens, "exp"),
        (early, tokens, "iat"),
    ):
        with pytest.raises(SsoRefused) as refused:
            await checker.verify_id_token(token, nonce=flow.nonce)
        assert refused.value.code == "provider", why
