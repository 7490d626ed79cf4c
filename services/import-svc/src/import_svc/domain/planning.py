"""What the valid rows of a file change, given the users already known and the import mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from import_svc.domain.model import ImportMode, KnownUser, RowError, ValidRow
from import_svc.domain.validation import USER_ID


class UserChange(NamedTuple):
    line: int
    user_id: str
    phone: str
    nickname: str | None  # as the file gives it; None leaves a known nickname as it is
    kept_nickname: str | None  # the nickname the user has afterwards
    created: bool


@dataclass(frozen=True, slots=True)
class Plan:
    changes: list[UserChange] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)


def plan_changes(
    rows: Sequence[ValidRow], known: Mapping[str, KnownUser], mode: ImportMode
) -> Plan:
    changes: list[UserChange] = []
    errors: list[RowError] = []
    created = updated = unchanged = 0
    for line, user_id, phone, nickname in rows:
        current = known.get(user_id)
        if current is None:
            if mode is ImportMode.UPDATE_ONLY:
                errors.append(
                    RowError(
                        line,
                        user_id,
                        USER_ID,
                        "user_not_found",
                        f"user '{user_id}' does not exist and mode=update_only only updates "
                        "existing users; use mode=upsert to create it",
                    )
                )
                continue
            changes.append(UserChange(line, user_id, phone, nickname, nickname, True))
            created += 1
            continue
        if mode is ImportMode.INSERT_ONLY:
            errors.append(
                RowError(
                    line,
                    user_id,
                    USER_ID,
                    "user_exists",
                    f"user '{user_id}' already exists and mode=insert_only only creates new "
                    "users; use mode=upsert to update it",
                )
            )
            continue
        kept = current.nickname if nickname is None else nickname
        if phone == current.phone and kept == current.nickname:
            unchanged += 1
            continue
        changes.append(UserChange(line, user_id, phone, nickname, kept, False))
        updated += 1
    return Plan(changes, created, updated, unchanged, errors)
