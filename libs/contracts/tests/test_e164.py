"""Hand-picked numbers where phonenumbers' parse and validity rules have corners.

Each case states the verdict expected of `insights_contracts.e164` and is also checked against
phonenumbers itself, so a case whose expectation was written wrong fails too.
"""

import phonenumbers
import pytest

from insights_contracts import e164
from insights_contracts.phone import PhoneError, check_e164

pytestmark = pytest.mark.unit

Verdict = tuple[int, str, bool] | None


def _reference(number: str) -> Verdict:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    nsn = phonenumbers.national_significant_number(parsed)
    return parsed.country_code, nsn, phonenumbers.is_valid_number(parsed)


def _fast(number: str) -> Verdict:
    parsed = e164.parse_digits(number[1:])
    if parsed is None:
        return None
    return parsed[0], parsed[1], e164.is_valid(*parsed)


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        # Italian leading zero is part of the national number, not a national prefix.
        ("+390612345678", (39, "0612345678", True)),
        # +39 06698 is the Vatican by its leading digits.
        ("+3906698123456", (39, "06698123456", True)),
        # +7 is shared: 7… is Kazakhstan, 9… Russia, 8… neither.
        ("+77011234567", (7, "7011234567", True)),
        ("+79123456789", (7, "9123456789", True)),
        ("+78888888888", (7, "8888888888", False)),
        # +1 is 25 regions told apart by area code.
        ("+14155550171", (1, "4155550171", True)),
        ("+16135550123", (1, "6135550123", True)),
        ("+12684601234", (1, "2684601234", True)),
        ("+123", (1, "23", False)),
        # parse strips a national prefix after the country code when the rest stays viable.
        ("+4407911123456", (44, "7911123456", True)),
        ("+8201012345678", (82, "1012345678", True)),
        ("+86013812345678", (86, "13812345678", True)),
        # ... and applies a transform rule: Argentina's 0 11 15 becomes 9 11.
        ("+540111523456789", (54, "91123456789", True)),
        ("+55011987654321", (55, "11987654321", True)),
        # Gabon: the leading 0 is kept for the old 8-digit numbers only.
        ("+24106031234", (241, "06031234", True)),
        ("+2410612345678", (241, "612345678", False)),
        # +44 7624 is the Isle of Man; +61 8 9164 Christmas Island; +358 18 Åland.
        ("+447624123456", (44, "7624123456", True)),
        ("+61891641234", (61, "891641234", True)),
        ("+6189164123", (61, "89164123", False)),
        ("+35818123456", (358, "18123456", True)),
        ("+4779012345", (47, "79012345", True)),
        # Non-geographic entities.
        ("+80012345678", (800, "12345678", True)),
        ("+88234", (882, "34", False)),
        # Too short, unknown code, leading zero: parse itself fails.
        ("+12", None),
        ("+8823", None),
        ("+3580", None),
        ("+999123456", None),
        ("+0123456789", None),
        # Too long for any national number (more than 17 digits after the code).
        ("+44" + "7" * 18, None),
        ("+300000000000000", (30, "0000000000000", False)),
    ],
)
def test_tricky_numbers(number: str, expected: Verdict) -> None:
    assert _reference(number) == expected
    assert _fast(number) == expected


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ("+12", "phone_invalid", "'+12' is not a valid phone number"),
        ("+0123456789", "phone_invalid", "'+0123456789' is not a valid phone number"),
        ("+999123456", "phone_invalid", "'+999123456' is not a valid phone number"),
        (
            "+78888888888",
            "phone_invalid",
            "'+78888888888' is not a valid number for country code +7",
        ),
        (
            " +1234567890123456 ",
            "phone_too_long",
            "' +1234567890123456 ' has 16 digits; E.164 allows at most 15",
        ),
    ],
)
def test_check_e164_messages(raw: str, code: str, message: str) -> None:
    assert check_e164(raw) == PhoneError(code, message)


def test_check_e164_keeps_valid_value_as_written() -> None:
    assert check_e164(" +77011234567 ") == "+77011234567"
    assert check_e164("+390612345678") == "+390612345678"  # Italy keeps its leading zero


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+4407911123456", "+447911123456"),
        ("+86013812345678", "+8613812345678"),
        ("+540111523456789", "+5491123456789"),
    ],
)
def test_a_national_prefix_after_the_country_code_gets_the_e164_form(raw: str, e164: str) -> None:
    # phonenumbers reads these as valid numbers; stored as written, one person would have two
    # forms of one number, so they are rejected with the form to write instead.
    assert check_e164(raw) == PhoneError(
        "phone_not_e164", f"'{raw}' is not in E.164 format; write it as {e164}", e164
    )


def test_other_unicode_digits_are_judged_by_phonenumbers() -> None:
    arabic_indic = "+" + "".join(chr(0x660 + int(d)) for d in "447911123456")
    assert check_e164(arabic_indic) == PhoneError(
        "phone_not_e164",
        f"'{arabic_indic}' is not in E.164 format; write it as +447911123456",
        "+447911123456",
    )
    invalid = "+" + "".join(chr(0xFF10 + int(d)) for d in "78888888888")
    result = check_e164(invalid)
    assert isinstance(result, PhoneError)
    assert result.message.endswith("is not a valid number for country code +7")
