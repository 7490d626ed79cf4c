"""Validity of a '+digits' number as phonenumbers decides it, without phonenumbers' objects.

`phonenumbers.parse` + `is_valid_number` cost ~15 µs a number, mostly in building objects and in
generic handling of notations that a bare '+digits' value never has. This module reads the same
PhoneMetadata, once per country calling code on first use, and answers the same two questions
directly: which national significant number `parse` would keep, and whether `is_valid_number`
accepts it. libs/contracts/tests/test_e164_agreement.py holds it to phonenumbers' verdict on over
a million numbers from every region, so a metadata update this mirror does not follow fails there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# The limits phonenumbers' parse applies (its _MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN,
# _MAX_INPUT_STRING_LENGTH); a '+' with fewer than three digits is not a "viable" number there.
_MIN_NSN = 2
_MAX_NSN = 17
_MAX_INPUT = 250
_MIN_DIGITS = 3

# The number types _number_type_helper tries; mobile is tried last and only when its pattern
# differs from the fixed-line one.
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)


def _pattern_of(desc: Any) -> str | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return str(desc.national_number_pattern)


@dataclass(frozen=True, slots=True)
class _Region:
    leading_digits: re.Pattern[str] | None
    # One pattern per national-number length: the general description and any number type
    # whose possible lengths allow that length, so a verdict is one fullmatch. Compiled on first
    # use of a length: most regions only ever see one or two.
    sources: dict[int, str]
    compiled: dict[int, re.Pattern[str]] = field(default_factory=dict)

    def accepts(self, nsn: str) -> bool:
        length = len(nsn)
        pattern = self.compiled.get(length)
        if pattern is None:
            source = self.sources.get(length)
            if source is None:
                return False
            pattern = self.compiled[length] = re.compile(source)
        return pattern.fullmatch(nsn) is not None


def _region(metadata: Any) -> _Region:
    general = metadata.general_desc
    general_pattern = _pattern_of(general)
    sources: dict[int, str] = {}
    if general_pattern is not None:
        types = [getattr(metadata, name) for name in _TYPES]
        if not metadata.same_mobile_and_fixed_line_pattern:
            types.append(metadata.mobile)
        general_lengths = set(general.possible_length)
        for length in range(_MIN_NSN, _MAX_NSN + 1):
            if general_lengths and length not in general_lengths:
                continue
            alternatives: list[str] = []
            for desc in types:
                pattern = _pattern_of(desc)
                if pattern is None or pattern in alternatives:
                    continue
                if desc.possible_length and length not in desc.possible_length:
                    continue
                alternatives.append(pattern)
            if alternatives:
                either = "|".join(f"(?:{pattern})" for pattern in alternatives)
                sources[length] = rf"(?=(?:{general_pattern})\Z)(?:{either})"
    leading = metadata.leading_digits
    return _Region(re.compile(leading) if leading else None, sources)


@dataclass(frozen=True, slots=True)
class _CallingCode:
    code: int
    digits: int  # how many digits the code has
    regions: tuple[_Region, ...]
    # What parse uses from the code's main region to strip a national prefix.
    national_prefix: re.Pattern[str] | None
    transform: str | None
    general: re.Pattern[str] | None
    lengths: tuple[int, ...]
    local_lengths: frozenset[int]

    def national_number(self, number: str) -> str:
        """`number` after the national-prefix stripping parse applies even to +numbers."""
        prefix = self.national_prefix
        if prefix is None:
            return number
        match = prefix.match(number)
        if match is None:
            return number
        viable = self._general_match(number)
        groups = match.groups()
        if not self.transform or groups[-1] is None:
            candidate = number[match.end() :]
        else:
            candidate = prefix.sub(self.transform, number, count=1)
        if viable and not self._general_match(candidate):
            return number
        # parse keeps the stripped form only when its length is possible (or too long) for the
        # region; otherwise the original could be a valid short number.
        return candidate if self._possible_or_too_long(len(candidate)) else number

    def _general_match(self, number: str) -> bool:
        return self.general is not None and self.general.fullmatch(number) is not None

    def _possible_or_too_long(self, length: int) -> bool:
        lengths = self.lengths
        if not lengths or length in self.local_lengths:
            return False
        if length <= lengths[0]:
            return length == lengths[0]
        return length > lengths[-1] or length in lengths[1:]

    def is_valid(self, nsn: str) -> bool:
        regions = self.regions
        if len(regions) == 1:
            return regions[0].accepts(nsn)
        # is_valid_number's region_code_for_number: the first region whose leading digits match,
        # or, for a region without leading digits, whose number types match.
        for region in regions:
            if region.leading_digits is not None:
                if region.leading_digits.match(nsn) is not None:
                    return region.accepts(nsn)
            elif region.accepts(nsn):
                return True
        return False


def _metadata(code: int, region: str) -> Any:
    return PhoneMetadata.metadata_for_region_or_calling_code(code, region)


def _calling_code(code: int) -> _CallingCode:
    names = COUNTRY_CODE_TO_REGION_CODE[code]
    main = _metadata(code, names[0])
    regions = tuple(
        _region(metadata)
        for metadata in (_metadata(code, name) for name in names)
        if metadata is not None
    )
    prefix_text = main.national_prefix_for_parsing if main is not None else None
    prefix = re.compile(prefix_text) if prefix_text else None
    transform = main.national_prefix_transform_rule if main is not None else None
    if prefix is not None and transform and prefix.groups == 0:
        # parse would fail with an IndexError on such metadata; refuse to guess what it means.
        raise ValueError(f"+{code}: a national prefix transform without a capturing group")
    general = main.general_desc if main is not None else None
    general_pattern = _pattern_of(general)
    return _CallingCode(
        code=code,
        digits=len(str(code)),
        regions=regions,
        national_prefix=prefix,
        transform=transform or None,
        general=re.compile(general_pattern) if general_pattern is not None else None,
        lengths=tuple(general.possible_length) if general is not None else (),
        local_lengths=frozenset(general.possible_length_local_only if general else ()),
    )


def _code_by_head() -> dict[str, int]:
    """The country code that parse reads from each possible first three digits."""
    codes = set(COUNTRY_CODE_TO_REGION_CODE)
    heads: dict[str, int] = {}
    for head in range(100, 1000):
        text = str(head)
        for size in (1, 2, 3):
            if int(text[:size]) in codes:
                heads[text] = int(text[:size])
                break
    return heads


_CODE_BY_HEAD = _code_by_head()
# Built on first use of each country code; read without a lock (a race builds one twice).
_plans: dict[int, _CallingCode] = {}


def _plan(code: int) -> _CallingCode:
    plan = _plans.get(code)
    if plan is None:
        plan = _plans[code] = _calling_code(code)
    return plan


def _parse(digits: str) -> tuple[_CallingCode, str] | None:
    if len(digits) < _MIN_DIGITS or len(digits) >= _MAX_INPUT:
        return None
    code = _CODE_BY_HEAD.get(digits[:3])  # no entry either for a leading 0
    if code is None:
        return None
    plan = _plans.get(code) or _plan(code)
    national = digits[plan.digits :]
    if len(national) < _MIN_NSN:
        return None
    if plan.national_prefix is not None:
        national = plan.national_number(national)
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    return plan, national


def parse_digits(digits: str) -> tuple[int, str] | None:
    """(country code, national significant number) that phonenumbers.parse('+' + digits) gives.

    `digits` holds ASCII digits only. None where parse raises NumberParseException.
    """
    parsed = _parse(digits)
    return None if parsed is None else (parsed[0].code, parsed[1])


def is_valid(code: int, nsn: str) -> bool:
    """phonenumbers.is_valid_number for a number that `parse_digits` returned."""
    return code in COUNTRY_CODE_TO_REGION_CODE and _plan(code).is_valid(nsn)


def verdict(digits: str) -> tuple[int, bool] | None:
    """(country code, valid) for '+' + digits, or None where phonenumbers.parse raises.

    The one call per number of the import's hot path: `parse_digits` and `is_valid` in one.
    """
    parsed = _parse(digits)
    if parsed is None:
        return None
    plan, nsn = parsed
    return plan.code, plan.is_valid(nsn)
