import phonenumbers
import pytest

from insights_contracts.phone import PhoneError, check_e164, mask_phone, phone_country

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "number", ["+14155550171", "+821012345678", "+447911123456", "+33612345678", "+5511912345678"]
)
def test_valid_e164_is_kept(number: str) -> None:
    assert check_e164(number) == number


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("82 10 1234 5678", "+821012345678"),
        ("1-415-555-0171", "+14155550171"),
        ("+1 415 555 0171", "+14155550171"),
        ("0044 7911 123456", "+447911123456"),
        ("14155550171", "+14155550171"),
    ],
)
def test_other_notations_get_their_e164_hint(raw: str, hint: str) -> None:
    result = check_e164(raw)
    assert isinstance(result, PhoneError)
    assert result.code == "phone_not_e164"
    assert result.hint == hint
    assert hint in result.message


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "phone_required"),
        ("+1415", "phone_invalid"),
        ("+1234567890123456", "phone_too_long"),
        ("call me", "phone_not_e164"),
        ("010-1234-5678", "phone_not_e164"),
    ],
)
def test_invalid_numbers_say_why(raw: str, code: str) -> None:
    result = check_e164(raw)
    assert isinstance(result, PhoneError)
    assert result.code == code
    assert result.hint is None


def test_mask_keeps_country_and_last_two_digits() -> None:
    assert mask_phone("+14155550171") == "+1 415-***-**71"
    masked = mask_phone("+821012345678")
    assert masked is not None and masked.startswith("+82 10") and masked.endswith("78")
    assert "1234" not in masked
    assert mask_phone(None) is None


def test_country_of_number() -> None:
    assert phone_country("+14155550171") == "US"
    assert phone_country("+821012345678") == "KR"


def test_every_region_example_number_is_accepted() -> None:
    for region in phonenumbers.SUPPORTED_REGIONS:
        example = phonenumbers.example_number(region)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        assert check_e164(e164) == e164, region
