"""Identifier and phone types shared by every service."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from insights_contracts.limits import StoredText
from insights_contracts.phone import PhoneError, check_e164

USER_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,80}$"
APP_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
CHANNELS = ("in_app", "push", "sms", "alimtalk", "whatsapp", "email")

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
AppId = Annotated[str, StringConstraints(pattern=APP_ID_PATTERN)]
Nickname = Annotated[str, StringConstraints(max_length=80)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128), StoredText]
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TemplateKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")]


def _e164(value: str) -> str:
    result = check_e164(value)
    if isinstance(result, PhoneError):
        raise ValueError(result.message)
    return result


E164Phone = Annotated[str, AfterValidator(_e164)]
