"""User search: how nicknames and queries are normalized, and how matches rank.

Ranks: an exact user_id, then user_id prefixes (case-insensitive), then nicknames (a prefix of
any word, case- and accent-insensitive), then phone numbers (E.164 or its digits). A user is
listed once, at its best rank; within a rank, by user_id.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import IntEnum

from insights_contracts.types import USER_ID_PATTERN

MAX_QUERY_LENGTH = 200

_USER_ID = re.compile(USER_ID_PATTERN)
_WORD = re.compile(r"[^\W_]+")
_PHONE_QUERY = re.compile(r"^\+?[0-9 ().\-]*[0-9][0-9 ().\-]*$")
_NON_DIGIT = re.compile(r"[^0-9]")


class Rank(IntEnum):
    EXACT_ID = 0
    ID_PREFIX = 1
    NICKNAME = 2
    PHONE = 3


def fold_text(text: str) -> str:
    """Lowercase without accents: 'José' -> 'jose'. Hangul syllables survive (they recompose)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", stripped).casefold()


def _is_unspaced_script(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF
        or 0x4E00 <= code <= 0x9FFF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x3FFFF
    )


def words(text: str) -> list[str]:
    return _WORD.findall(fold_text(text))


def nickname_tokens(nickname: str | None) -> set[str]:
    """The words of a nickname, plus every suffix starting inside a Chinese/Japanese run.

    Those scripts do not put spaces between words, so '王小明' must be found by '小明' too.
    """
    tokens: set[str] = set()
    for word in words(nickname or ""):
        tokens.add(word)
        for i in range(1, len(word)):
            if _is_unspaced_script(word[i]) and _is_unspaced_script(word[i - 1]):
                tokens.add(word[i:])
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
    """Phone digits prefix (without '+')."""

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
