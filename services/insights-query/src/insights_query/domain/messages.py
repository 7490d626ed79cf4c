"""The projection of one message: a deterministic function of the set of its events.

Events are deduplicated by event_id and folded in (occurred_at, rank, event_id) order, so any
arrival order and any duplication give the same result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeGuard

from insights_contracts import (
    AnyEvent,
    Content,
    MessageEvent,
    NotificationClicked,
    NotificationFailed,
    NotificationSent,
    Response,
)
from insights_query.domain.views import (
    Failure,
    MessageDetail,
    MessageItem,
    ResponseEntry,
    Status,
    TemplateBrief,
    TimelineEntry,
    TimelineStatus,
)

STAGES: tuple[Status, ...] = ("sent", "delivered", "read", "clicked")
STATUSES: tuple[Status, ...] = (*STAGES, "failed")

# Tie-break at equal occurred_at. A failure ranks before a delivery so that a delivery reported at
# the same instant wins (a retry succeeded); responses come last, after the click that made them.
# A status reported in the sender's words comes right after the send: it changes no status.
_RANK: dict[str, int] = {
    "notification.sent": 0,
    "notification.status": 1,
    "notification.failed": 2,
    "notification.delivered": 3,
    "notification.read": 4,
    "notification.clicked": 5,
    "notification.responded": 6,
}
_STAGE_OF_EVENT: dict[str, int] = {
    "notification.delivered": 1,
    "notification.read": 2,
    "notification.clicked": 3,
}


def is_message_event(event: AnyEvent) -> TypeGuard[MessageEvent]:
    return event.event_type in _RANK


def fold_key(event: MessageEvent) -> tuple[datetime, int, str]:
    return (event.occurred_at, _RANK[event.event_type], event.event_id)


@dataclass(frozen=True, slots=True)
class MessageProjection:
    """The message document plus the columns the store filters and aggregates on."""

    detail: MessageDetail
    stage: int
    failed: bool
    responded: bool
    last_engaged_at: datetime | None
    first_event_at: datetime
    last_event_at: datetime

    @property
    def delivered(self) -> bool:
        return self.stage >= 1

    @property
    def read(self) -> bool:
        return self.stage >= 2

    @property
    def clicked(self) -> bool:
        return self.stage >= 3


def project_message(events: Iterable[MessageEvent]) -> MessageProjection | None:
    """Fold a message's events; None while its `sent` event has not arrived."""
    unique = {event.event_id: event for event in events}
    ordered = sorted(unique.values(), key=fold_key)
    sent: NotificationSent | None = None
    for event in ordered:
        if event.event_type == "notification.sent":
            sent = event
            break
    if sent is None:
        return None
    stage = 0
    failed = False
    failure: Failure | None = None
    responses: list[ResponseEntry] = []
    timeline: list[TimelineEntry] = []
    last_engaged_at: datetime | None = None
    for event in ordered:
        kind = event.event_type
        detail: str | None = None
        reached = _STAGE_OF_EVENT.get(kind)
        if reached is not None:
            stage = max(stage, reached)
            failed = False
            if kind != "notification.delivered":
                last_engaged_at = event.occurred_at
            if event.event_type == "notification.clicked":
                detail = _click_detail(event, sent.content)
        elif event.event_type == "notification.failed":
            failed = True
            failure = Failure(
                code=event.code,
                reason=event.reason,
                explanation=event.explanation,
                explained_by=event.explained_by,
                at=event.occurred_at,
            )
            detail = _failure_detail(event)
        elif event.event_type == "notification.status":
            detail = f"{event.reported_by}: {event.status}" if event.reported_by else event.status
        elif event.event_type == "notification.responded":
            last_engaged_at = event.occurred_at
            responses.append(
                ResponseEntry(
                    type=event.response.type,
                    value=event.response.value,
                    label=event.response.label,
                    at=event.occurred_at,
                )
            )
            detail = _response_detail(event.response)
        timeline.append(
            TimelineEntry(status=_TIMELINE_STATUS[kind], at=event.occurred_at, detail=detail)
        )
    detail_doc = MessageDetail(
        message_id=sent.message_id,
        user_id=sent.user_id,
        channel=sent.channel,
        template=sent.template,
        content=sent.content,
        status="failed" if failed else STAGES[stage],
        sent_at=sent.occurred_at,
        timeline=timeline,
        failure=failure,
        responses=responses,
    )
    return MessageProjection(
        detail=detail_doc,
        stage=stage,
        failed=failed,
        responded=bool(responses),
        last_engaged_at=last_engaged_at,
        first_event_at=ordered[0].occurred_at,
        last_event_at=ordered[-1].occurred_at,
    )


_TIMELINE_STATUS: dict[str, TimelineStatus] = {
    "notification.sent": "sent",
    "notification.delivered": "delivered",
    "notification.read": "read",
    "notification.clicked": "clicked",
    "notification.failed": "failed",
    "notification.responded": "responded",
    "notification.status": "reported",
}


def _failure_detail(event: NotificationFailed) -> str:
    words = [part for part in (event.reason, event.explanation) if part]
    return f"{event.code}: {' — '.join(words)}" if words else event.code


def _click_detail(event: NotificationClicked, content: Content) -> str | None:
    label = event.button_id
    for button in content.buttons:
        if button.id == event.button_id:
            label = button.label or button.id
    parts = [part for part in (label, event.url) if part]
    if len(parts) == 2:
        return f"{parts[0]} ({parts[1]})"
    return parts[0] if parts else None


def _response_detail(response: Response) -> str | None:
    value = response.value
    shown = (
        value
        if isinstance(value, str)
        else None
        if value is None
        else json.dumps(value, ensure_ascii=False)
    )
    if response.label and shown is not None and shown != response.label:
        return f"{response.label} ({shown})"
    return response.label or shown


def message_item(detail: MessageDetail, *, preview_length: int) -> MessageItem:
    body = detail.content.body
    preview = body if len(body) <= preview_length else body[: preview_length - 1].rstrip() + "…"
    return MessageItem(
        message_id=detail.message_id,
        channel=detail.channel,
        template=TemplateBrief(
            key=detail.template.key, name=detail.template.name, version=detail.template.version
        ),
        title=detail.content.title,
        body_preview=preview,
        status=detail.status,
        sent_at=detail.sent_at,
        failure=detail.failure,
    )
