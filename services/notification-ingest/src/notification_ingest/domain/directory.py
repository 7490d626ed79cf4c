"""Who a phone number is: the rule the phone directories of both modes keep.

A callback may name only the number it went to (Twilio's `To`). The imported users (and the
platform's own user.upserted events) say whose number it is: the last event of a user gives
their number, and a number names the user who took it last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from insights_contracts import AnyEvent, UserUpserted


@dataclass(frozen=True, slots=True)
class PhoneEntry:
    app_id: str
    user_id: str
    phone: str


def phone_entries(events: Sequence[AnyEvent]) -> list[PhoneEntry]:
    """The users' numbers in a batch of events, the last per user winning; events without a
    number change nothing (a nickname change does not forget the number)."""
    last: dict[tuple[str, str], PhoneEntry] = {}
    for event in events:
        if isinstance(event, UserUpserted) and event.phone_number:
            key = (event.app_id, event.user_id)
            last.pop(key, None)  # re-inserted: the dict keeps the order of the last changes
            last[key] = PhoneEntry(event.app_id, event.user_id, event.phone_number)
    return list(last.values())
