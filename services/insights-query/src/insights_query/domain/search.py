"""User search: how nicknames and queries are normalized, and how matches rank.

Ranks: a user_id equal to the query ignoring case, then user_id prefixes (case-insensitive),
then nicknames (every query word a prefix of some word of the nickname, case- and
accent-insensitive), then phone numbers (E.164 or its digits, with any spaces, dashes, dots or
brackets). A user is listed once, at its best rank; within a rank, by user_id.

A phone number matches whole, never by a prefix: the API shows numbers masked, and a prefix
search let anyone read one back digit by digit (about 71 searches for a masked number).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import IntEnum

from insights_contracts.types import USER_ID_PATTERN

MAX_QUERY_LENGTH = 200

_USER_ID = re.compile(USER_ID_PATTERN)
_PHONE_QUERY = re.compile(r"^\+?[0-9 ().\-]*[0-9][0-9 ().\-]*$")
_NON_DIGIT = re.compile(r"[^0-9]")

# The generic combining diacritics (accents, cedillas, tildes, umlauts) that Latin, Greek and
# Cyrillic letters carry: 'José' is found by 'jose'. Marks that are part of other scripts stay:
# the Japanese voicing mark makes 'が' another letter than 'か', and an Indic vowel sign belongs
# to its word.
_ACCENTS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


class Rank(IntEnum):
    EXACT_ID = 0
    ID_PREFIX = 1
    NICKNAME = 2
    PHONE = 3


def fold_text(text: str) -> str:
    """Lowercase without accents: 'José' -> 'jose'. Hangul syllables survive (they recompose)."""
    stripped = _ACCENTS.sub("", unicodedata.normalize("NFKD", text))
    return unicodedata.normalize("NFKC", stripped).casefold()


# Scripts whose names are written without spaces between their parts. Chinese and Japanese put
# no spaces between words, and a Korean full name is one run of syllables (family name first):
# '小明' must find '王小明' and '민지' must find '김민지'.
_UNSPACED_RUN = re.compile(
    "[\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"  # CJK ideographs
    "\uac00-\ud7a3]{2,}"  # Hangul syllables
)


def _mark_ranges() -> str:
    """A regex class of the combining marks (planes 0-1 and the variation selectors)."""
    ranges: list[list[int]] = []
    for code in (*range(0x20000), *range(0xE0100, 0xE01F0)):
        if unicodedata.category(chr(code))[0] == "M":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(
        re.escape(chr(first)) + (f"-{re.escape(chr(last))}" if last > first else "")
        for first, last in ranges
    )


# A word is a run of letters, digits and marks: Python's \w leaves marks out, but a vowel sign
# or virama is inside its word ('नमस्ते' is one word), not a break.
_WORD = re.compile(f"(?:[^\\W_]|[{_mark_ranges()}])+")


def words(text: str) -> list[str]:
    return _WORD.findall(fold_text(text))


def nickname_tokens(nickname: str | None) -> set[str]:
    """The words of a nickname, plus every suffix starting inside a run of an unspaced script."""
    tokens: set[str] = set()
    for word in words(nickname or ""):
        tokens.add(word)
        for run in _UNSPACED_RUN.finditer(word):
            tokens.update(word[i:] for i in range(run.start() + 1, run.end()))
    return tokens


def phone_digits(e164: str | None) -> str | None:
    return e164.lstrip("+") if e164 else None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str
    user_id: str | None
    """The query as a user_id, when it can be one."""
    id_prefix: str | None
    """Lowercased user_id prefix."""
    name_words: tuple[str, ...]
    """Every word must prefix some word of the nickname."""
    digits: str | None
    """The whole phone number's digits (without '+'): a phone matches only when equal."""

    def ranks(self) -> tuple[Rank, ...]:
        applicable: list[Rank] = []
        if self.user_id is not None:
            applicable += [Rank.EXACT_ID, Rank.ID_PREFIX]
        if self.name_words:
            applicable.append(Rank.NICKNAME)
        if self.digits:
            applicable.append(Rank.PHONE)
        return tuple(applicable)


def parse_search(q: str | None) -> SearchQuery | None:
    """None for a blank query (the caller then lists users by recent activity)."""
    text = (q or "").strip()
    if not text:
        return None
    is_id = bool(_USER_ID.match(text))
    digits = _NON_DIGIT.sub("", text) if _PHONE_QUERY.match(text) else None
    return SearchQuery(
        text=text,
        user_id=text if is_id else None,
        id_prefix=text.lower() if is_id else None,
        name_words=tuple(words(text)),
        digits=digits or None,
    )
