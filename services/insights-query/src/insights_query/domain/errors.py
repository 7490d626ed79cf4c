"""What can go wrong in a query, independent of the HTTP status it becomes."""

from __future__ import annotations


class QueryError(Exception):
    """Base of the errors a caller of the query service can cause."""


class NotFound(QueryError):
    def __init__(self, kind: str, identifier: str) -> None:
        super().__init__(f"No {kind} '{identifier}' in this app.")
        self.kind = kind
        self.identifier = identifier


class InvalidParameter(QueryError):
    """A query parameter the caller can fix; `message` says what was wrong and how to fix it."""

    def __init__(self, name: str, message: str, *, allowed: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.allowed = allowed


class InvalidCursor(QueryError):
    def __init__(self) -> None:
        super().__init__("The cursor is not one this API gave out for this list.")
