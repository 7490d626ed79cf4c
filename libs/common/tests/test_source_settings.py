"""The rules of a source's settings (`insights_common.sources`): each platform's user field
syntax, its example passing it, and the secret's bounds."""

from __future__ import annotations

import pytest

from insights_common.sources import (
    BY_NAME,
    PLATFORMS,
    BadSecret,
    BadUserField,
    SourcePlatform,
    UnknownPlatform,
    callback_url,
    check_secret,
    platform_of,
    stored_user_field,
    user_field,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("platform", PLATFORMS, ids=lambda p: p.name)
def test_each_platforms_example_is_a_user_field_it_takes(platform: SourcePlatform) -> None:
    assert user_field(platform, platform.user_field_example).text == platform.user_field_example


def test_a_path_is_split_into_its_names_and_a_parameter_is_one_name() -> None:
    assert user_field(BY_NAME["braze"], " user.user_alias.alias_name ").parts == (
        "user",
        "user_alias",
        "alias_name",
    )
    assert user_field(BY_NAME["twilio"], "customer.id").parts == ("customer.id",)


@pytest.mark.parametrize(
    ("platform", "text"),
    [
        ("knock", ""),
        ("knock", "data..id"),
        ("knock", ".data"),
        ("knock", "data.recipient email"),
        ("knock", "a.b.c.d.e.f.g.h.i"),  # nine names
        ("customerio", "x" * 65),
        ("twilio", "a/b"),
        ("twilio", "a=b"),
    ],
)
def test_what_a_user_field_may_not_be_is_refused_saying_what_it_may(
    platform: str, text: str
) -> None:
    with pytest.raises(BadUserField, match=r"e\.g\."):
        user_field(BY_NAME[platform], text)


def test_a_stored_field_that_no_longer_passes_is_read_as_none() -> None:
    assert stored_user_field("knock", "data..x") is None
    assert stored_user_field("knock", None) is None
    assert stored_user_field("nope", "data.x") is None
    field = stored_user_field("knock", "data.x")
    assert field is not None and field.parts == ("data", "x")


def test_secrets_are_1_to_512_characters_and_platforms_are_those_taken() -> None:
    assert check_secret("  s  ") == "s"
    for bad in ("", "   ", "x" * 513):
        with pytest.raises(BadSecret):
            check_secret(bad)
    with pytest.raises(UnknownPlatform, match="twilio, knock, customerio, braze, sendbird"):
        platform_of("mailchimp")


def test_the_callback_url_is_absolute_only_from_a_public_origin() -> None:
    assert callback_url("knock", "acme", None) == "/api/v1/sources/knock/acme"
    assert (
        callback_url("knock", "acme", "https://insights.example.com/")
        == "https://insights.example.com/api/v1/sources/knock/acme"
    )
