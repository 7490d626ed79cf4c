"""The users of a generated app, each a pure function of (seed, index): nothing is held per user.

A person's region is drawn with bench.import_csv's weights (about 60 regions, most users from a
dozen) and their phone number with its generator. The nickname's script follows the region
(Hangul in KR, kanji and kana in JP, Cyrillic in UA/RU/KZ, Arabic in the Gulf and North Africa,
accented Latin across Europe and Latin America, plain Latin elsewhere); a share of users anywhere
write theirs in another script, and some leave it empty. User ids are romanized names with the
index in them, so they are unique and look like the ids apps really have.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bench.import_csv import REGION_WEIGHTS, TAIL, TAIL_WEIGHT, mobile_number
from insights.demo_catalogue import Locale
from insights.demo_data import EMOJI, LOCALES, User, ascii_letters

Pair = tuple[str, str]  # (romanized, as written)

SCRIPTS = ("latin", "accented", "hangul", "japanese", "cyrillic", "arabic")
NO_NICKNAME = 0.12
FOREIGN_SCRIPT = 0.12  # users who write their nickname in another script than their region's
FOREIGN_WEIGHTS = (40, 20, 15, 10, 8, 7)

REGIONS = (*REGION_WEIGHTS, *TAIL)
_REGION_CUM = list(itertools.accumulate([*REGION_WEIGHTS.values(), *[TAIL_WEIGHT] * len(TAIL)]))
_FOREIGN_CUM = list(itertools.accumulate(FOREIGN_WEIGHTS))

HOME_SCRIPT = {
    "KR": "hangul",
    "JP": "japanese",
    **dict.fromkeys(("UA", "RU", "KZ"), "cyrillic"),
    **dict.fromkeys(("SA", "AE", "EG", "MA", "QA", "KW"), "arabic"),
    **dict.fromkeys(
        "DE FR ES BR MX PT AR CL CO PE UY GT AT BE CH CZ DK FI HU NO PL RO SE TR".split(),
        "accented",
    ),
}

_BY_REGION = {locale.region: locale for locale in LOCALES}
_ACCENTED = tuple(_BY_REGION[r] for r in ("DE", "FR", "ES", "BR", "MX"))
_ACCENTED_HOME = {"PT": "BR", **dict.fromkeys(("AR", "CL", "CO", "PE", "UY", "GT"), "MX")}

# Ukrainian family names in -enko/-uk/-yk are the same for women and men.
CYRILLIC_FIRST: tuple[Pair, ...] = (
    ("Olena", "Олена"),
    ("Andrii", "Андрій"),
    ("Iryna", "Ірина"),
    ("Dmytro", "Дмитро"),
    ("Nataliia", "Наталія"),
    ("Oleksandr", "Олександр"),
    ("Mariia", "Марія"),
    ("Serhii", "Сергій"),
    ("Anna", "Анна"),
    ("Ivan", "Іван"),
    ("Yuliia", "Юлія"),
    ("Taras", "Тарас"),
)
CYRILLIC_LAST: tuple[Pair, ...] = (
    ("Shevchenko", "Шевченко"),
    ("Kovalenko", "Коваленко"),
    ("Bondarenko", "Бондаренко"),
    ("Tkachenko", "Ткаченко"),
    ("Kravchuk", "Кравчук"),
    ("Melnyk", "Мельник"),
    ("Polishchuk", "Поліщук"),
    ("Boiko", "Бойко"),
)
ARABIC_FIRST: tuple[Pair, ...] = (
    ("Mohammed", "محمد"),
    ("Ahmed", "أحمد"),
    ("Fatima", "فاطمة"),
    ("Ali", "علي"),
    ("Maryam", "مريم"),
    ("Youssef", "يوسف"),
    ("Omar", "عمر"),
    ("Noor", "نور"),
    ("Sara", "سارة"),
    ("Khaled", "خالد"),
    ("Layla", "ليلى"),
    ("Hassan", "حسن"),
)
ARABIC_LAST: tuple[Pair, ...] = (
    ("Alharbi", "الحربي"),
    ("Alqahtani", "القحطاني"),
    ("Haddad", "حداد"),
    ("Mansour", "منصور"),
    ("Alshammari", "الشمري"),
    ("Nasser", "ناصر"),
    ("Saleh", "صالح"),
    ("Khalil", "خليل"),
)
KATAKANA_FIRST: tuple[Pair, ...] = (
    ("Yuki", "ユキ"),
    ("Mika", "ミカ"),
    ("Kenji", "ケンジ"),
    ("Rina", "リナ"),
)


@dataclass(frozen=True, slots=True)
class Person:
    index: int
    user_id: str
    region: str
    script: str
    nickname: str | None
    # The demo catalog's view of the person: the first name its templates greet, and the
    # locale that picks carriers, clinics and currency (US where the catalog has none).
    profile: User


def _names(rng: random.Random, script: str, region: str) -> tuple[Pair, Pair, Locale]:
    us = _BY_REGION["US"]
    if script == "hangul":
        kr = _BY_REGION["KR"]
        return rng.choice(kr.first), rng.choice(kr.last), kr
    if script == "japanese":
        jp = _BY_REGION["JP"]
        return rng.choice(jp.first + KATAKANA_FIRST), rng.choice(jp.last), jp
    if script == "cyrillic":
        return rng.choice(CYRILLIC_FIRST), rng.choice(CYRILLIC_LAST), us
    if script == "arabic":
        return rng.choice(ARABIC_FIRST), rng.choice(ARABIC_LAST), us
    if script == "accented":
        home = _BY_REGION.get(_ACCENTED_HOME.get(region, region))
        source = home if home in _ACCENTED else rng.choice(_ACCENTED)
    else:
        source = rng.choice((us, _BY_REGION["GB"]))
    return rng.choice(source.first), rng.choice(source.last), source


def _nickname(rng: random.Random, script: str, first: Pair, last: Pair) -> tuple[str | None, str]:
    """The nickname, and the first name templates greet (in the nickname's script)."""
    roll = rng.random()
    if roll < NO_NICKNAME:
        return None, first[0]
    if first[0] != first[1] and rng.random() < 0.85:
        style = rng.random()
        if style < 0.5:
            if script == "hangul":
                return last[1] + first[1], first[1]  # family name first, no space
            if script == "japanese":
                return last[1] + rng.choice(("", " ")) + first[1], first[1]
            return f"{first[1]} {last[1]}", first[1]
        if style < 0.85:
            return first[1], first[1]
        return f"{first[1]} {rng.choice(EMOJI)}", first[1]
    style = rng.random()
    if style < 0.45:
        return f"{first[0]} {last[0]}", first[0]
    if style < 0.65:
        return first[0], first[0]
    if style < 0.8:
        return f"{first[0]} {last[0][0]}.", first[0]
    if style < 0.9:
        return f"{ascii_letters(first[0])}_{ascii_letters(last[0])}", first[0]
    return f"{first[0]} {rng.choice(EMOJI)}", first[0]


def _user_id(rng: random.Random, index: int, first: str, last: str) -> str:
    f, l_ = ascii_letters(first, german=True) or "user", ascii_letters(last, german=True) or "x"
    style = rng.random()
    if style < 0.4:
        return f"{f}.{l_}.{index}"
    if style < 0.6:
        return f"{f}_{l_}{index}"
    if style < 0.8:
        return f"u_{100000 + index}"
    return f"{f[0]}{l_}{index}"


def _rng(seed: int, index: int, salt: int = 0) -> random.Random:
    return random.Random((seed * 4_000_037 + salt) * 2**40 + index)


@functools.lru_cache(maxsize=1 << 16)
def person(seed: int, index: int) -> Person:
    rng = _rng(seed, index)
    region = rng.choices(REGIONS, cum_weights=_REGION_CUM)[0]
    script = HOME_SCRIPT.get(region, "latin")
    if rng.random() < FOREIGN_SCRIPT:
        script = rng.choices(SCRIPTS, cum_weights=_FOREIGN_CUM)[0]
    first, last, locale = _names(rng, script, region)
    nickname, greeted = _nickname(rng, script, first, last)
    user_id = _user_id(rng, index, first[0], last[0])
    profile = User(user_id, "", nickname, greeted, last[0], locale, activity=1.0)
    return Person(index, user_id, region, script, nickname and nickname[:80], profile)


def phone(seed: int, who: Person) -> str:
    """A valid E.164 mobile number of the person's region (deterministic, ~25 us)."""
    return mobile_number(_rng(seed, who.index, salt=1), who.region)


def user_rows(seed: int, start: int, stop: int) -> Iterator[tuple[Person, str]]:
    for index in range(start, stop):
        who = person(seed, index)
        yield who, phone(seed, who)


def csv_file(rows: Iterable[tuple[Person, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["user_id", "phone_number", "nickname"])
    for who, number in rows:
        writer.writerow([who.user_id, number, who.nickname or ""])
    return out.getvalue().encode()
