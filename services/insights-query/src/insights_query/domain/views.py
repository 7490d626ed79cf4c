"""What the query API answers; the message detail is also the document stored per message."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, JsonValue

from insights_contracts import Channel, ChannelContent, Content, TemplateRef, VariableSpec

Status: TypeAlias = Literal["sent", "delivered", "read", "clicked", "failed"]
TimelineStatus: TypeAlias = Literal[
    "sent", "delivered", "read", "clicked", "failed", "responded", "reported"
]
ResponseType: TypeAlias = Literal["button", "reply", "form"]


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Failure(View):
    code: str
    reason: str
    """The sender's own words."""
    explanation: str | None = None
    """What the code means, from a dictionary of the sender's codes."""
    explained_by: str | None = None
    """Where `explanation` comes from."""
    at: datetime


class ResponseEntry(View):
    type: ResponseType
    value: JsonValue = None
    label: str | None = None
    at: datetime


class TimelineEntry(View):
    status: TimelineStatus
    at: datetime
    detail: str | None = None


class MessageDetail(View):
    message_id: str
    user_id: str
    channel: Channel
    template: TemplateRef
    content: Content
    status: Status
    sent_at: datetime
    timeline: list[TimelineEntry]
    failure: Failure | None = None
    responses: list[ResponseEntry]


class TemplateBrief(View):
    key: str
    name: str
    version: int


class MessageItem(View):
    message_id: str
    channel: Channel
    template: TemplateBrief
    title: str | None
    body_preview: str
    status: Status
    sent_at: datetime
    failure: Failure | None = None


class BriefStats(View):
    sent: int = 0
    read: int = 0
    clicked: int = 0
    last_sent_at: datetime | None = None


class UserSummary(View):
    user_id: str
    nickname: str | None
    phone_number: str | None
    stats: BriefStats


class ChannelStats(View):
    channel: str
    sent: int
    delivered: int
    read: int
    clicked: int
    failed: int
    responded: int


class TemplateStats(View):
    key: str
    name: str
    sent: int
    delivered: int
    read: int
    clicked: int
    failed: int
    responded: int


class DailyStats(View):
    date: date
    sent: int
    read: int
    clicked: int


class WindowView(View):
    since: datetime
    until: datetime


class UserStats(View):
    sent: int
    delivered: int
    read: int
    clicked: int
    failed: int
    responded: int
    delivery_rate: float | None
    read_rate: float | None
    click_rate: float | None
    response_rate: float | None
    last_sent_at: datetime | None
    last_engaged_at: datetime | None
    by_channel: list[ChannelStats]
    by_template: list[TemplateStats]
    daily: list[DailyStats]
    window: WindowView


class UserDetail(View):
    user_id: str
    nickname: str | None
    phone_number: str | None
    phone_country: str | None
    created_at: datetime
    updated_at: datetime
    imports: list[str]
    stats: UserStats


class TemplateSummary(View):
    key: str
    name: str
    latest_version: int
    sent: int
    read: int
    clicked: int


class TemplateVersionView(View):
    version: int
    name: str
    channels: dict[Channel, ChannelContent]
    variable_schema: list[VariableSpec]
    sent: int
    read: int
    clicked: int


class TemplateDetail(View):
    key: str
    name: str
    versions: list[TemplateVersionView]
