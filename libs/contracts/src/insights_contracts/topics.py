"""Topic names and partition keys of the contract."""

from __future__ import annotations

from typing import Final

from insights_contracts.events import AnyEvent, TemplateUpserted, UserErased, UserUpserted

USERS: Final = "insights.users.v1"
NOTIFICATIONS: Final = "insights.notifications.v1"
TEMPLATES: Final = "insights.templates.v1"
PLATFORM_RAW: Final = "platform.events.raw"
CANONICAL: Final = (USERS, NOTIFICATIONS, TEMPLATES)


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


def topic_for(event: AnyEvent) -> str:
    return topic_of(type(event))


def topic_of(event_type: type[AnyEvent]) -> str:
    """The topic that carries the events of a type."""
    if issubclass(event_type, UserUpserted | UserErased):
        return USERS
    if issubclass(event_type, TemplateUpserted):
        return TEMPLATES
    return NOTIFICATIONS


def key_for(event: AnyEvent) -> str:
    """Messages and users are keyed by app and user, so one user's events stay in order."""
    if isinstance(event, TemplateUpserted):
        return f"{event.app_id}:{event.template.key}"
    return f"{event.app_id}:{event.user_id}"
