"""Who may do what: the permissions, the roles of members and the scopes of API keys.

The tables below are the whole rule; a route names the one permission it needs and a caller
holds the permissions of its role (a member) or of its scopes (an API key). A new role or scope
is a row here, not a change to any route.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    SEARCH_USERS = "search_users"
    """Search users and list them; phone numbers masked, left out without `see_phones`."""
    VIEW_PROFILE = "view_profile"
    """A user's profile and statistics (recorded in the audit trail)."""
    SEE_PHONES = "see_phones"
    """Masked phone numbers in results and profiles."""
    VIEW_MESSAGES = "view_messages"
    """A user's message list, its export, and message details, with their content."""
    REVEAL_PHONE = "reveal_phone"
    """One user's whole phone number, with a reason (recorded)."""
    VIEW_TEMPLATES = "view_templates"
    IMPORT = "import"
    """Upload user CSVs and read import reports."""
    MANAGE_MEMBERS = "manage_members"
    READ_AUDIT = "read_audit"
    MANAGE_SOURCES = "manage_sources"
    """Set up the messaging platforms whose callbacks the app takes (their secrets)."""
    MANAGE_SETTINGS = "manage_settings"
    """The app's settings, such as how long its messages are kept."""
    ERASE_USERS = "erase_users"
    """Erase a user everywhere (recorded)."""


ALL = frozenset(Permission)
_READ = frozenset(
    {
        Permission.SEARCH_USERS,
        Permission.VIEW_PROFILE,
        Permission.SEE_PHONES,
        Permission.VIEW_MESSAGES,
        Permission.VIEW_TEMPLATES,
    }
)

ROLES: dict[str, frozenset[Permission]] = {
    "admin": ALL,
    "agent": _READ | {Permission.REVEAL_PHONE},
    "analyst": frozenset(
        {Permission.SEARCH_USERS, Permission.VIEW_PROFILE, Permission.VIEW_TEMPLATES}
    ),
}

SCOPES: dict[str, frozenset[Permission]] = {
    "read": _READ,
    "import": frozenset({Permission.IMPORT}),
    "admin": ALL,
}


class UnknownRole(ValueError):
    def __init__(self, role: str) -> None:
        super().__init__(f"'{role}' is not a role; one of {', '.join(ROLES)}")


class UnknownScope(ValueError):
    def __init__(self, scope: str) -> None:
        super().__init__(f"'{scope}' is not a scope; any of {', '.join(SCOPES)}")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UnknownRole(role)
    return role


def check_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    for scope in scopes:
        if scope not in SCOPES:
            raise UnknownScope(scope)
    if not scopes:
        raise UnknownScope("")
    return tuple(sorted(set(scopes)))


def scope_permissions(scopes: tuple[str, ...]) -> frozenset[Permission]:
    granted: frozenset[Permission] = frozenset()
    for scope in scopes:
        granted |= SCOPES.get(scope, frozenset())
    return granted


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    app_id: str
    actor: str
    """Who, as the audit trail names it: "member:<email>" or "key:<key id>"."""
    permissions: frozenset[Permission]
    role: str | None = None
    """A member's role; None for an API key."""
    session_csrf: str | None = None
    """The CSRF token of the session the request came with; None for an API key."""

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions
