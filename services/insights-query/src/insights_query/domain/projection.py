"""How a batch of events changes the projection: the one fold both stores run.

A store loads the state of the keys a batch touches and saves the changes this module answers;
every rule is here. In steps, because what to load next depends on what the previous step found:

1. `keys_of(events)`: the messages, users (by their facts) and template versions named.
2. `fold_messages(events, stored)`: each message's new events (the stored copy of an event_id
   wins, then the batch's first), its projection, and which user it is listed under now. A
   message whose first `sent` names another user than before moves to them (the earlier `sent`
   wins, in any arrival order); the user it `left` must have their activity taken again from
   the messages they still have.
3. `fold_users(events, messages, stored, rest)`: each user from their facts and the span of
   their visible messages. A user's span only grows while their messages gain events, so it is
   the stored span widened by the batch's messages, except for a user a message left: then it
   is `rest` (their other messages, loaded by the store) widened by the batch's.
4. `fold_templates(events, origins)`: the template versions whose best source improved.

`recount_users` is step 3 for a user whose messages were removed (retention).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from insights_contracts import (
    AnyEvent,
    MessageEvent,
)
from insights_query.domain.erasure import UserKey as UserKey
from insights_query.domain.messages import MessageProjection, is_message_event, project_message
from insights_query.domain.templates import TemplateVersion, best_versions
from insights_query.domain.users import ActivitySpan, UserFact, UserProfile, project_user

MessageKey = tuple[str, str]
"""(app_id, message_id)"""
TemplateKey = tuple[str, str, int]
"""(app_id, template key, version)"""


@dataclass(frozen=True, slots=True)
class BatchKeys:
    messages: set[MessageKey]
    users: set[UserKey]
    """The users the batch has facts of."""
    templates: set[TemplateKey]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """What a store holds of a message."""

    events: Mapping[str, MessageEvent]
    """Its events by event_id, as first stored."""
    user_id: str | None
    """The user it is listed under; None while it is not visible (no `sent` yet)."""
    span: ActivitySpan | None
    """Its first and last event, while visible."""


@dataclass(frozen=True, slots=True)
class StoredUser:
    """What a store holds of a user; `StoredUser()` for one it does not know."""

    facts: Mapping[str, UserFact] = field(default_factory=dict)
    span: ActivitySpan | None = None
    """The span of their visible messages, as stored."""
    profile: UserProfile | None = None


NO_USER = StoredUser()


@dataclass(frozen=True, slots=True)
class MessageChange:
    key: MessageKey
    added: list[MessageEvent]
    """The events to store, in event_id order (a stored event is never replaced)."""
    projection: MessageProjection | None
    """None while the message has no `sent`: it only keeps its events."""


@dataclass(slots=True)
class MessageFold:
    changes: list[MessageChange] = field(default_factory=list)
    listed: dict[MessageKey, tuple[UserKey, ActivitySpan]] = field(default_factory=dict)
    """Every touched visible message, changed or not, with its user and span."""
    left: set[UserKey] = field(default_factory=set)
    """Users a message moved away from."""

    @property
    def users(self) -> set[UserKey]:
        """The users whose profile the messages may change."""
        return {user for user, _ in self.listed.values()} | self.left


@dataclass(frozen=True, slots=True)
class UserChange:
    key: UserKey
    profile: UserProfile | None
    """None: nothing is known of the user any more (a store deletes what it holds)."""
    facts: list[UserFact]
    """Every fact, stored and new, in event_id order."""
    added: list[UserFact]
    """The batch's new facts, in event_id order."""
    span: ActivitySpan | None


def keys_of(events: Iterable[AnyEvent]) -> BatchKeys:
    keys = BatchKeys(set(), set(), set())
    for event in events:
        # Event kinds the projection does not fold (user.erased) are for their own port.
        if event.event_type == "user.upserted":
            keys.users.add((event.app_id, event.user_id))
        elif event.event_type == "template.upserted" or event.event_type == "notification.sent":
            ref = event.template
            keys.templates.add((event.app_id, ref.key, ref.version))
        if is_message_event(event):
            keys.messages.add((event.app_id, event.message_id))
    return keys


def widen(spans: Iterable[ActivitySpan | None]) -> ActivitySpan | None:
    """The smallest span holding every given one."""
    known = [span for span in spans if span is not None]
    if not known:
        return None
    return ActivitySpan(min(s.first for s in known), max(s.last for s in known))


def fold_messages(
    events: Iterable[AnyEvent], stored: Mapping[MessageKey, StoredMessage]
) -> MessageFold:
    """`stored` holds the touched messages a store has; a missing one is new."""
    batch: dict[MessageKey, dict[str, MessageEvent]] = defaultdict(dict)
    for event in events:
        if is_message_event(event):
            batch[(event.app_id, event.message_id)].setdefault(event.event_id, event)
    fold = MessageFold()
    for key in sorted(batch):
        app_id = key[0]
        known = stored.get(key)
        held = known.events if known else {}
        added = [batch[key][i] for i in sorted(batch[key]) if i not in held]
        if not added:
            # Nothing new, but its user's span may still lack it (a write that failed half way).
            if known is not None and known.user_id is not None and known.span is not None:
                fold.listed[key] = ((app_id, known.user_id), known.span)
            continue
        projection = project_message([*held.values(), *added])
        fold.changes.append(MessageChange(key, added, projection))
        if projection is None:
            continue
        user_id = projection.detail.user_id
        span = ActivitySpan(projection.first_event_at, projection.last_event_at)
        fold.listed[key] = ((app_id, user_id), span)
        if known is not None and known.user_id is not None and known.user_id != user_id:
            fold.left.add((app_id, known.user_id))
    return fold


def fold_users(
    events: Iterable[AnyEvent],
    messages: MessageFold,
    stored: Mapping[UserKey, StoredUser],
    rest: Mapping[UserKey, ActivitySpan | None],
    *,
    left: Iterable[UserKey] = (),
) -> list[UserChange]:
    """The batch's users: those with facts in it, and `messages.users`.

    `rest` holds, for each user in `messages.left` and `left` (users a message left in an
    earlier attempt at the batch), the span of their visible messages outside the batch; a
    missing key means none. A user whose profile, facts and span would not change is left out.
    """
    facts: dict[UserKey, dict[str, UserFact]] = defaultdict(dict)
    for event in events:
        if event.event_type == "user.upserted":
            facts[(event.app_id, event.user_id)].setdefault(event.event_id, UserFact.of(event))
    spans: dict[UserKey, list[ActivitySpan]] = defaultdict(list)
    for user, span in messages.listed.values():
        spans[user].append(span)
    recounted = messages.left | set(left)
    changes: list[UserChange] = []
    for key in sorted(facts.keys() | messages.users | recounted):
        known = stored.get(key, NO_USER)
        base = rest.get(key) if key in recounted else known.span
        change = _fold_user(key, known, facts.get(key, {}), widen([base, *spans[key]]))
        if change is not None:
            changes.append(change)
    return changes


def recount_users(
    stored: Mapping[UserKey, StoredUser], rest: Mapping[UserKey, ActivitySpan | None]
) -> list[UserChange]:
    """The users some of whose messages were removed, from the span of those they still have
    (`rest`; a missing key means none)."""
    changes: list[UserChange] = []
    for key in sorted(stored):
        change = _fold_user(key, stored[key], {}, rest.get(key))
        if change is not None:
            changes.append(change)
    return changes


def _fold_user(
    key: UserKey, known: StoredUser, batch: Mapping[str, UserFact], span: ActivitySpan | None
) -> UserChange | None:
    added = [batch[i] for i in sorted(batch) if i not in known.facts]
    every = {**known.facts, **{fact.event_id: fact for fact in added}}
    profile = project_user(key[1], every.values(), span)
    if not added and span == known.span and profile == known.profile:
        return None
    return UserChange(key, profile, [every[i] for i in sorted(every)], added, span)


def fold_templates(
    events: Iterable[AnyEvent], origins: Mapping[TemplateKey, str]
) -> list[TemplateVersion]:
    """The versions to write: the batch's best description of each, where it beats the stored
    one (`origins`: the origin each stored version has)."""
    return [
        version
        for version in best_versions(events)
        if version.origin > origins.get((version.app_id, version.key, version.version), "")
    ]
