from __future__ import annotations

import pytest

from import_svc.domain.model import ImportMode, KnownUser, ValidRow
from import_svc.domain.planning import UserChange, plan_changes

pytestmark = pytest.mark.unit

ROWS = [
    ValidRow(2, "new", "+14155550100", "Newbie"),
    ValidRow(3, "same", "+14155550101", "Same"),
    ValidRow(4, "moved", "+14155550199", None),
    ValidRow(5, "renamed", "+14155550103", "Renamed"),
    ValidRow(6, "keepnick", "+14155550104", None),
]
KNOWN = {
    "same": KnownUser("same", "+14155550101", "Same"),
    "moved": KnownUser("moved", "+14155550102", "Mo"),
    "renamed": KnownUser("renamed", "+14155550103", "Old"),
    "keepnick": KnownUser("keepnick", "+14155550104", "Kept"),
}


def test_upsert_creates_updates_and_counts_unchanged() -> None:
    plan = plan_changes(ROWS, KNOWN, ImportMode.UPSERT)
    assert (plan.created, plan.updated, plan.unchanged, plan.errors) == (1, 2, 2, [])
    assert plan.changes == [
        UserChange(2, "new", "+14155550100", "Newbie", "Newbie", True),
        UserChange(4, "moved", "+14155550199", None, "Mo", False),
        UserChange(5, "renamed", "+14155550103", "Renamed", "Renamed", False),
    ]


def test_blank_nickname_keeps_the_known_one_and_is_not_a_change() -> None:
    plan = plan_changes([ROWS[4]], KNOWN, ImportMode.UPSERT)
    assert (plan.unchanged, plan.changes) == (1, [])


def test_insert_only_rejects_existing_users() -> None:
    plan = plan_changes(ROWS, KNOWN, ImportMode.INSERT_ONLY)
    assert (plan.created, plan.updated, plan.unchanged) == (1, 0, 0)
    assert [(e.line, e.user_id, e.column, e.code) for e in plan.errors] == [
        (3, "same", "user_id", "user_exists"),
        (4, "moved", "user_id", "user_exists"),
        (5, "renamed", "user_id", "user_exists"),
        (6, "keepnick", "user_id", "user_exists"),
    ]
    assert "use mode=upsert" in plan.errors[0].message


def test_update_only_rejects_unknown_users() -> None:
    plan = plan_changes(ROWS, KNOWN, ImportMode.UPDATE_ONLY)
    assert (plan.created, plan.updated, plan.unchanged) == (0, 2, 2)
    assert [(e.line, e.code) for e in plan.errors] == [(2, "user_not_found")]
    assert "'new' does not exist" in plan.errors[0].message


def test_a_user_known_without_phone_gets_one() -> None:
    known = {"p": KnownUser("p", None, "From platform")}
    plan = plan_changes([ValidRow(2, "p", "+14155550100", None)], known, ImportMode.UPSERT)
    assert plan.changes == [UserChange(2, "p", "+14155550100", None, "From platform", False)]
