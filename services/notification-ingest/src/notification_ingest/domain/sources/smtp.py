"""SMTP reply codes an email bounce may carry, as RFC 5321 (section 4.2) and RFC 3463 name them."""

from __future__ import annotations

SOURCE = "SMTP reply codes, RFC 5321 section 4.2"

REPLIES = {
    "421": "The receiving mail server is not available now (temporary)",
    "450": "Mailbox unavailable now, e.g. busy (temporary)",
    "451": "The receiving server failed while processing (temporary)",
    "452": "The receiving server is out of storage (temporary)",
    "550": "Mailbox unavailable: it does not exist, or the message was refused",
    "551": "The user is not local to the receiving server",
    "552": "The mailbox is full (storage allocation exceeded)",
    "553": "The mailbox name is not allowed (bad address syntax)",
    "554": "The transaction failed (often refused as spam or by policy)",
}


def reply_code(text: str | None) -> str | None:
    """The three-digit reply code a bounce text starts with ('550 5.1.1 ...'), if any."""
    if text and len(text) >= 3 and text[:3] in REPLIES:
        return text[:3]
    return None
