"""The rule for the fast validator: it must agree with phonenumbers on >= 1,000,000 numbers.

Numbers come from every region and every non-geographic entity phonenumbers knows: the example
number of each number type, random mutations of them (digit changes, deletions, truncations,
1-3 extra digits, the national prefix or random digits put after the country code), random digit
strings of each length 1-17 after each country code, and random '+digits'. For each one the
verdict of phonenumbers.parse + is_valid_number (parse error, or country code, E.164 form and
validity) must equal that of insights_contracts.e164, and check_e164 must answer accordingly.
The RNG is seeded per chunk, so a failure names numbers that reproduce.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
import pytest
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat

from insights_contracts import e164
from insights_contracts.phone import PhoneError, check_e164

pytestmark = pytest.mark.unit

TOTAL = 1_000_000
SEED = 20240611
CHUNKS = 16
RANDOM_SHARE = 0.2  # of TOTAL: pure random '+digits'
PER_LENGTH = 12  # random national parts of each length 1-17, per entity
SHOWN = 20

_DESCS = (
    "general_desc",
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)

Verdict = tuple[int, str, bool] | None  # country code, E.164, valid; None: parse failed


@dataclass(frozen=True)
class Entity:
    name: str  # region code, or "+800" for a non-geographic entity
    code: int
    examples: tuple[str, ...]
    national_prefix: str


@dataclass
class Outcome:
    checked: int = 0
    valid: int = 0
    disagreeing: int = 0
    disagreements: list[str] = field(default_factory=list)
    valid_by_entity: dict[str, int] = field(default_factory=dict)


def _entity(name: str, code: int, metadata: Any) -> Entity:
    examples = {
        f"+{code}{desc.example_number}"
        for desc in (getattr(metadata, attr) for attr in _DESCS)
        if desc is not None and desc.example_number
    }
    return Entity(name, code, tuple(sorted(examples)), metadata.national_prefix or "")


def entities() -> list[Entity]:
    found = [
        _entity(region, metadata.country_code, metadata)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        if (metadata := PhoneMetadata.metadata_for_region(region)) is not None
    ]
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        metadata = PhoneMetadata.metadata_for_nongeo_region(code)
        if metadata is not None:
            found.append(_entity(f"+{code}", code, metadata))
    return found


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _mutant(rng: random.Random, entity: Entity) -> str:
    number = rng.choice(entity.examples)
    head = len(str(entity.code)) + 1
    national = number[head:]
    roll = rng.randrange(7)
    if roll == 0:  # change one or two digits anywhere after the '+'
        chars = list(number)
        for _ in range(rng.randint(1, 2)):
            chars[rng.randrange(1, len(chars))] = rng.choice("0123456789")
        return "".join(chars)
    if roll == 1:  # truncate
        return number[: rng.randrange(2, len(number))] if len(number) > 2 else number
    if roll == 2:  # extend by 1-3 digits
        return number + _digits(rng, rng.randint(1, 3))
    if roll == 3:  # drop a digit of the national number
        cut = rng.randrange(len(national)) if national else 0
        return number[:head] + national[:cut] + national[cut + 1 :]
    if roll == 4:  # the national prefix written after the country code
        return number[:head] + entity.national_prefix + national
    if roll == 5:  # random digits put after the country code
        return number[:head] + _digits(rng, rng.randint(1, 3)) + national
    # keep the first digits of the example, randomize the rest: mostly plausible numbers
    keep = rng.randrange(len(national) + 1)
    return number[:head] + national[:keep] + _digits(rng, len(national) - keep)


def chunk_numbers(index: int, chunks: int = CHUNKS) -> Iterator[tuple[str, str]]:
    """(entity name, number) for one chunk: every chunks-th entity, and its share of the rest."""
    rng = random.Random(SEED * 1000 + index)
    every = entities()
    mine = every[index::chunks]
    per_entity_random = 17 * PER_LENGTH
    mutants = int(TOTAL * (1 - RANDOM_SHARE)) // len(every) - per_entity_random + 1
    for entity in mine:
        for example in entity.examples:
            yield entity.name, example
        for length in range(1, 18):
            for _ in range(PER_LENGTH):
                yield entity.name, f"+{entity.code}{_digits(rng, length)}"
        for _ in range(mutants if entity.examples else 0):
            yield entity.name, _mutant(rng, entity)
    for _ in range(int(TOTAL * RANDOM_SHARE) // chunks + 1):
        yield "random", "+" + _digits(rng, rng.randint(1, 17))


def reference(number: str) -> Verdict:
    try:
        parsed = phonenumbers.parse(number, None)
    except NumberParseException:
        return None
    e164_form = str(phonenumbers.format_number(parsed, PhoneNumberFormat.E164))
    return parsed.country_code, e164_form, bool(phonenumbers.is_valid_number(parsed))


def fast(number: str) -> Verdict:
    parsed = e164.parse_digits(number[1:])
    if parsed is None:
        return None
    code, nsn = parsed
    return code, f"+{code}{nsn}", e164.is_valid(code, nsn)


def expected_check(number: str, verdict: Verdict) -> str | PhoneError:
    digits = len(number) - 1
    if digits > 15:
        return PhoneError(
            "phone_too_long", f"'{number}' has {digits} digits; E.164 allows at most 15"
        )
    if verdict is None:
        return PhoneError("phone_invalid", f"'{number}' is not a valid phone number")
    if not verdict[2]:
        return PhoneError(
            "phone_invalid", f"'{number}' is not a valid number for country code +{verdict[0]}"
        )
    if verdict[1] != number:  # valid, but written with a national prefix after the code
        return PhoneError(
            "phone_not_e164",
            f"'{number}' is not in E.164 format; write it as {verdict[1]}",
            verdict[1],
        )
    return number


def check_chunk(index: int) -> Outcome:
    # phonenumbers recompiles its patterns once Python's 512-entry re cache overflows, which
    # numbers from every region do; its own pattern cache keeps the reference at full speed.
    phonenumbers.enable_pattern_cache()
    outcome = Outcome()
    for name, number in chunk_numbers(index):
        want = reference(number)
        got = fast(number)
        checked = check_e164(number)
        outcome.checked += 1
        if want is not None and want[2]:
            outcome.valid += 1
            outcome.valid_by_entity[name] = outcome.valid_by_entity.get(name, 0) + 1
        if got != want:
            problem = f"{number} ({name}): phonenumbers {want}, e164 {got}"
        elif checked != (expected := expected_check(number, want)):
            problem = f"{number} ({name}): check_e164 {checked!r}, expected {expected!r}"
        else:
            continue
        outcome.disagreeing += 1
        if len(outcome.disagreements) < SHOWN:
            outcome.disagreements.append(problem)
    return outcome


def _workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


def test_fast_validation_agrees_with_phonenumbers() -> None:
    # spawn, not fork: a fork of a process with threads (other tests leave some) can deadlock.
    context = multiprocessing.get_context("spawn")
    with context.Pool(_workers()) as pool:
        outcomes = pool.map(check_chunk, range(CHUNKS), chunksize=1)

    checked = sum(o.checked for o in outcomes)
    disagreeing = sum(o.disagreeing for o in outcomes)
    disagreements = [line for o in outcomes for line in o.disagreements]
    valid_by_entity: dict[str, int] = {}
    for outcome in outcomes:
        for name, count in outcome.valid_by_entity.items():
            valid_by_entity[name] = valid_by_entity.get(name, 0) + count

    assert disagreeing == 0, (
        f"{disagreeing:,} of {checked:,} numbers disagree (seed {SEED}); the first ones:\n"
        + "\n".join(disagreements[:SHOWN])
    )
    assert checked >= TOTAL
    # Coverage, so that a generator gone wrong cannot pass by checking only garbage.
    every = entities()
    assert len(every) >= len(phonenumbers.SUPPORTED_REGIONS) + len(
        phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    )
    no_valid = sorted(e.name for e in every if e.examples and not valid_by_entity.get(e.name))
    assert not no_valid, f"no valid number was generated for {no_valid}"
    assert sum(o.valid for o in outcomes) >= TOTAL // 10
