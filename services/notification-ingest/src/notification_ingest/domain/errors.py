"""Reasons to refuse a whole request; nothing in a refused request is taken."""

from __future__ import annotations


class IngestRefused(Exception):  # noqa: N818 - a refusal, not a crash
    """Base of the refusals; the message is written for the caller."""


class Unauthenticated(IngestRefused):
    pass


class MalformedBody(IngestRefused):
    pass


class BatchTooLarge(IngestRefused):
    pass
