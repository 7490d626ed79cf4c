"""The v1 events of the product contract.

Every event is a frozen model with a `Literal` event type and `schema_version` 1. Within v1 only
optional fields are added; readers ignore fields they do not know (tolerant reader), so an older
consumer keeps working when a producer is upgraded first.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from insights_contracts.limits import Instant, StoredJson, Version
from insights_contracts.types import (
    AppId,
    E164Phone,
    EventId,
    MessageId,
    Nickname,
    TemplateKey,
    UserId,
)

Channel: TypeAlias = Literal["in_app", "push", "sms", "alimtalk", "whatsapp", "email"]
ResponseType: TypeAlias = Literal["button", "reply", "form"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Button(_Frozen):
    id: Annotated[str, Field(min_length=1, max_length=128)]
    label: Annotated[str, Field(max_length=200)]
    url: Annotated[str, Field(max_length=2048)] | None = None


class Content(_Frozen):
    title: Annotated[str, Field(max_length=1000)] | None = None
    body: Annotated[str, Field(max_length=20000)] = ""
    buttons: tuple[Button, ...] = ()


class TemplateRef(_Frozen):
    """The snapshot of the template a message was rendered from."""

    key: TemplateKey
    name: Annotated[str, Field(max_length=200)] = ""
    version: Version
    variables: dict[str, StoredJson] = Field(default_factory=dict)


class ChannelContent(_Frozen):
    title: Annotated[str, Field(max_length=1000)] | None = None
    body: Annotated[str, Field(max_length=20000)] = ""
    buttons: tuple[Button, ...] = ()


class VariableSpec(_Frozen):
    key: Annotated[str, Field(min_length=1, max_length=128)]
    type: Annotated[str, Field(max_length=32)] = "string"
    name: Annotated[str, Field(max_length=200)] = ""


class TemplateDefinition(_Frozen):
    key: TemplateKey
    name: Annotated[str, Field(max_length=200)] = ""
    version: Version
    channels: dict[Channel, ChannelContent] = Field(default_factory=dict)
    variable_schema: tuple[VariableSpec, ...] = ()


class Response(_Frozen):
    type: ResponseType
    value: StoredJson = None
    label: Annotated[str, Field(max_length=500)] | None = None


class _Envelope(_Frozen):
    event_id: EventId
    schema_version: Literal[1] = 1
    app_id: AppId
    occurred_at: Instant


class _MessageEvent(_Envelope):
    message_id: MessageId
    user_id: UserId


class NotificationSent(_MessageEvent):
    event_type: Literal["notification.sent"] = "notification.sent"
    channel: Channel
    template: TemplateRef
    content: Content = Field(default_factory=Content)


class NotificationDelivered(_MessageEvent):
    event_type: Literal["notification.delivered"] = "notification.delivered"


class NotificationRead(_MessageEvent):
    event_type: Literal["notification.read"] = "notification.read"


class NotificationClicked(_MessageEvent):
    event_type: Literal["notification.clicked"] = "notification.clicked"
    button_id: Annotated[str, Field(max_length=128)] | None = None
    url: Annotated[str, Field(max_length=2048)] | None = None


class NotificationFailed(_MessageEvent):
    event_type: Literal["notification.failed"] = "notification.failed"
    code: Annotated[str, Field(min_length=1, max_length=128)]
    reason: Annotated[str, Field(max_length=2000)] = ""
    """The sender's own words for the failure."""
    explanation: Annotated[str, Field(max_length=500)] | None = None
    """What the code means, for a person, from a dictionary of the sender's codes."""
    explained_by: Annotated[str, Field(max_length=200)] | None = None
    """Where `explanation` comes from (the dictionary's name and address)."""


class NotificationResponded(_MessageEvent):
    event_type: Literal["notification.responded"] = "notification.responded"
    response: Response


class NotificationStatus(_MessageEvent):
    """A status the sender reported in its own words that is none of the events above (a
    platform's `queued`, `archived`, or a word it added since): shown on the message's timeline,
    never changing the message's status."""

    event_type: Literal["notification.status"] = "notification.status"
    status: Annotated[str, Field(min_length=1, max_length=64)]
    reported_by: Annotated[str, Field(max_length=64)] | None = None
    """Who reported it, as people know them (e.g. "Twilio")."""


class UserUpserted(_Envelope):
    event_type: Literal["user.upserted"] = "user.upserted"
    user_id: UserId
    phone_number: E164Phone | None = None
    nickname: Nickname | None = None
    source: Annotated[str, Field(pattern=r"^(platform|import:[A-Za-z0-9_\-]{1,64})$")] = "platform"


class UserErased(_Envelope):
    """An admin erased the user: every service forgets what it holds of them, and events about
    them dated at or before `occurred_at` are dropped. It names the user and nothing else of
    theirs (no phone number, no nickname): the topic keeps it."""

    event_type: Literal["user.erased"] = "user.erased"
    user_id: UserId


class TemplateUpserted(_Envelope):
    event_type: Literal["template.upserted"] = "template.upserted"
    template: TemplateDefinition


NotificationEvent: TypeAlias = Annotated[
    NotificationSent
    | NotificationDelivered
    | NotificationRead
    | NotificationClicked
    | NotificationFailed
    | NotificationResponded
    | NotificationStatus,
    Field(discriminator="event_type"),
]

Event: TypeAlias = Annotated[
    NotificationSent
    | NotificationDelivered
    | NotificationRead
    | NotificationClicked
    | NotificationFailed
    | NotificationResponded
    | NotificationStatus
    | UserUpserted
    | UserErased
    | TemplateUpserted,
    Field(discriminator="event_type"),
]

MessageEvent: TypeAlias = (
    NotificationSent
    | NotificationDelivered
    | NotificationRead
    | NotificationClicked
    | NotificationFailed
    | NotificationResponded
    | NotificationStatus
)
AnyEvent: TypeAlias = MessageEvent | UserUpserted | UserErased | TemplateUpserted

PLATFORM_TYPES = frozenset(
    {
        "notification.sent",
        "notification.delivered",
        "notification.read",
        "notification.clicked",
        "notification.failed",
        "notification.responded",
        "notification.status",
        "user.upserted",
        "template.upserted",
    }
)
"""The event types the messaging platform may send (the webhook, the raw topic); `user.erased`
is the product's own."""

EVENT_TYPES: dict[str, type[AnyEvent]] = {
    "notification.sent": NotificationSent,
    "notification.delivered": NotificationDelivered,
    "notification.read": NotificationRead,
    "notification.clicked": NotificationClicked,
    "notification.failed": NotificationFailed,
    "notification.responded": NotificationResponded,
    "notification.status": NotificationStatus,
    "user.upserted": UserUpserted,
    "user.erased": UserErased,
    "template.upserted": TemplateUpserted,
}

event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(Event)


def parse_event(data: bytes | str | dict[str, Any]) -> AnyEvent:
    """Validate one event from JSON bytes, text or an already decoded object."""
    if isinstance(data, dict):
        return event_adapter.validate_python(data)
    return event_adapter.validate_json(data)
