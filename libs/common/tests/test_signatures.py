"""X-Insights-Signature in both forms: what `sign` makes and what `parse_signature` takes."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from insights_common.auth import MalformedSignature, parse_signature, sign, verify_signature
from insights_common.signatures import MAX_HEADER_CHARS, MAX_SIGNATURES

pytestmark = pytest.mark.unit

BODY = b'[{"event_id": "e1"}]'
SECRET = "whsec_test"
T = 1_790_000_000


def hex_hmac(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def test_the_legacy_form_signs_the_raw_body() -> None:
    assert sign(SECRET, BODY) == "sha256=" + hex_hmac(SECRET, BODY)
    signature = parse_signature(sign(SECRET, BODY))
    assert signature.timestamp is None
    assert signature.matches([SECRET], BODY)


def test_the_timestamped_form_signs_the_timestamp_a_dot_and_the_body() -> None:
    header = sign(SECRET, BODY, timestamp=T)
    assert header == f"t={T},v1=" + hex_hmac(SECRET, f"{T}.".encode() + BODY)
    signature = parse_signature(header)
    assert signature.timestamp == T
    assert signature.matches([SECRET], BODY)
    assert verify_signature(SECRET, BODY, header)


def test_a_signature_matches_only_its_body_secret_and_timestamp() -> None:
    signature = parse_signature(sign(SECRET, BODY, timestamp=T))
    assert not signature.matches([SECRET], BODY + b" ")
    assert not signature.matches(["whsec_other"], BODY)
    moved = parse_signature(sign(SECRET, BODY, timestamp=T).replace(f"t={T}", f"t={T + 1}"))
    assert not moved.matches([SECRET], BODY)
    assert not verify_signature(SECRET, BODY, None)
    assert not verify_signature(SECRET, BODY, "sha256=nothex")


def test_any_of_several_v1_or_any_of_several_secrets_is_enough() -> None:
    old = hex_hmac("whsec_old", f"{T}.".encode() + BODY)
    new = hex_hmac("whsec_new", f"{T}.".encode() + BODY)
    signature = parse_signature(f"t={T},v1={old},v1={new}")
    assert signature.matches(["whsec_new"], BODY)
    assert signature.matches(["whsec_old"], BODY)
    assert signature.matches(["whsec_other", "whsec_new"], BODY)
    assert not signature.matches(["whsec_other"], BODY)


def test_other_schemes_and_spaces_are_ignored_and_order_is_free() -> None:
    digest = hex_hmac(SECRET, f"{T}.".encode() + BODY)
    signature = parse_signature(f" v0=abc, v1={digest} ,t={T}")
    assert signature.timestamp == T
    assert signature.matches([SECRET], BODY)


@pytest.mark.parametrize(
    ("header", "hint"),
    [
        ("sha256=ABC", "64 lowercase hex"),
        ("sha256=" + "0" * 63, "64 lowercase hex"),
        ("sha256=" + "A" * 64, "64 lowercase hex"),
        ("md5=abc", "one t="),
        ("", "one t="),
        ("v1=" + "0" * 64, "one t="),
        (f"t={T},t={T},v1=" + "0" * 64, "one t="),
        ("t=soon,v1=" + "0" * 64, "one t="),
        ("t=-5,v1=" + "0" * 64, "one t="),
        ("t=1234567890123,v1=" + "0" * 64, "one t="),
        (f"t={T}", "from 1 to"),
        (f"t={T},v1=zz", "64 lowercase hex"),
        (f"t={T}," + ",".join(["v1=" + "0" * 64] * (MAX_SIGNATURES + 1)), "from 1 to"),
        (f"t={T},v0=" + "x" * MAX_HEADER_CHARS, "at most"),
    ],
)
def test_a_malformed_header_says_what_is_wrong(header: str, hint: str) -> None:
    with pytest.raises(MalformedSignature, match=hint):
        parse_signature(header)
