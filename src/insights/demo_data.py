"""A realistic demo app: users as a CSV, a template catalog and 30 days of notifications.

Pure and deterministic: no I/O and no clock (`now` is given), the same seed gives the same data.
Every dict is the contract JSON the webhook takes (envelope plus flat fields).

The documented user `alex` (nickname "Alex Kim", +14155550171, a valid US number) always has a
rich history: every channel, every status including failed, and responses of every type.
"""

from __future__ import annotations

import csv
import io
import random
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from insights import demo_catalogue as catalogue
from insights.demo_catalogue import Locale, Template, Version
from insights_common.clock import rfc3339  # milliseconds and a 'Z', as the platform sends

ALEX_USER_ID = "alex"
ALEX_NICKNAME = "Alex Kim"
ALEX_PHONE = "+14155550171"

WINDOW_DAYS = 30
CHANNELS = ("in_app", "push", "sms", "alimtalk", "whatsapp", "email")
SHOP = "https://shop.acme.example"

# Target funnel over all messages: ~4% failed, ~90% delivered, ~45% read, ~12% clicked, ~5%
# responded. Read rates differ per channel the way they do in practice; the mean stays ~45%.
P_FAILED = 0.04
P_DELIVERED_IF_NOT_FAILED = 0.90 / 0.96
P_READ_IF_DELIVERED = 0.50
P_CLICKED_IF_READ = 0.12 / 0.45
P_RESPONDED_IF_READ = 0.05 / 0.45
READ_FACTOR = {
    "push": 0.85,
    "in_app": 1.3,
    "email": 0.8,
    "sms": 1.05,
    "whatsapp": 1.3,
    "alimtalk": 1.15,
}
CHANNEL_WEIGHT = {
    "push": 30,
    "in_app": 18,
    "email": 20,
    "sms": 14,
    "whatsapp": 10,
    "alimtalk": 8,
}
WHATSAPP_REGIONS = frozenset({"BR", "IN", "ES", "MX", "DE", "GB"})

_NAMESPACE = uuid.UUID("8f1d6a52-2c43-4f7e-9a61-3b0f4c8e2d17")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass(frozen=True)
class DemoData:
    csv_text: str
    template_events: list[dict[str, Any]]
    notification_events: list[dict[str, Any]]
    platform_user_events: list[dict[str, Any]]


# --- people -------------------------------------------------------------------------------------


LOCALES: tuple[Locale, ...] = catalogue.locales()
_ALEX_LOCALE = LOCALES[0]

EMOJI = catalogue.emoji()
US_AREA_CODES = catalogue.us_area_codes()
_GERMAN_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


@dataclass(frozen=True)
class User:
    user_id: str
    phone: str
    nickname: str | None
    first_name: str
    last_name: str
    locale: Locale
    activity: float


def ascii_letters(name: str, *, german: bool = False) -> str:
    text = name.lower().translate(_GERMAN_FOLD) if german else name.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum())


def _user_id(rng: random.Random, locale: Locale, first: str, last: str, taken: set[str]) -> str:
    german = locale.region == "DE"
    f, l_ = ascii_letters(first, german=german), ascii_letters(last, german=german)
    style = rng.choices(range(6), weights=(3, 4, 2, 1, 1, 1))[0]
    candidates = (
        f"u_{rng.randrange(10000, 99999)}",
        f"{f}.{l_}",
        f"{f}-{l_}",
        f"{f}_{l_}{rng.randrange(10, 99)}",
        f"{f[0]}{l_}{rng.choice(('85', '90', '92', '97', '01', '1988', '1994'))}",
        f"{f}{rng.randrange(1000, 9999)}",
    )
    base = candidates[style]
    user_id, n = base, 1
    while user_id in taken:
        n += 1
        user_id = f"{base}.{n}"
    taken.add(user_id)
    return user_id


def _phone(rng: random.Random, region: str, taken: set[str]) -> str:
    """A number that phonenumbers says is a valid mobile (or mobile-or-fixed) one in `region`."""
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if example is None:
        raise ValueError(f"phonenumbers has no example mobile number for {region}")
    national = str(example.national_number)
    keep = max(2, len(national) - 7)
    for _ in range(1000):
        if region == "US":
            exchange = f"{rng.randrange(2, 10)}{rng.randrange(10)}{rng.randrange(10)}"
            line = f"{rng.randrange(10000):04d}"
            candidate = f"{rng.choice(US_AREA_CODES)}{exchange}{line}"
        else:
            tail = "".join(str(rng.randrange(10)) for _ in range(len(national) - keep))
            candidate = national[:keep] + tail
        number = phonenumbers.parse(f"+{example.country_code}{candidate}")
        kind = phonenumbers.number_type(number)
        if not phonenumbers.is_valid_number(number) or kind not in (
            PhoneNumberType.MOBILE,
            PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            continue
        e164 = str(phonenumbers.format_number(number, PhoneNumberFormat.E164))
        if e164 not in taken:
            taken.add(e164)
            return e164
    raise RuntimeError(f"no valid {region} number found")  # pragma: no cover


def _nickname(
    rng: random.Random, locale: Locale, first: tuple[str, str], last: tuple[str, str]
) -> str | None:
    roll = rng.random()
    if roll < 0.09:
        return None
    if roll < 0.15:
        emoji = rng.choice(EMOJI)
        return f"{first[0]} {emoji}" if rng.random() < 0.5 else f"{emoji} {first[1]}"
    if first[0] != first[1] and rng.random() < 0.6:
        if rng.random() < 0.35:
            return first[1]
        parts = (last[1], first[1]) if locale.native_family_first else (first[1], last[1])
        return locale.native_separator.join(parts)
    style = rng.random()
    if style < 0.45:
        return f"{first[0]} {last[0]}"
    if style < 0.65:
        return first[0]
    if style < 0.8:
        return f"{first[0]} {last[0][0]}."
    if style < 0.9:
        return f"{ascii_letters(first[0])}_{ascii_letters(last[0])}"
    if style < 0.96:
        return f"{last[0]}, {first[0]}"
    return f'{first[0]} "{first[0][:2].upper()}" {last[0]}'


def _users(rng: random.Random, count: int) -> list[User]:
    taken_ids = {ALEX_USER_ID}
    taken_phones = {ALEX_PHONE}
    people = [
        User(ALEX_USER_ID, ALEX_PHONE, ALEX_NICKNAME, "Alex", "Kim", _ALEX_LOCALE, activity=0.0)
    ]
    weights = [locale.weight for locale in LOCALES]
    for _ in range(count - 1):
        locale = rng.choices(LOCALES, weights=weights)[0]
        first, last = rng.choice(locale.first), rng.choice(locale.last)
        user_id = _user_id(rng, locale, first[0], last[0], taken_ids)
        phone = _phone(rng, locale.region, taken_phones)
        nickname = _nickname(rng, locale, first, last)
        native_name = nickname is not None and first[1] in nickname
        people.append(
            User(
                user_id=user_id,
                phone=phone,
                nickname=nickname,
                first_name=first[1] if native_name else first[0],
                last_name=last[1] if native_name else last[0],
                locale=locale,
                # A few heavy users and a long tail of light ones, as in real apps.
                activity=min(rng.paretovariate(1.3), 40.0),
            )
        )
    return people


def _csv(users: list[User]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["user_id", "phone_number", "nickname"])
    for user in users:
        writer.writerow([user.user_id, user.phone, user.nickname or ""])
    return out.getvalue()


# --- templates ----------------------------------------------------------------------------------


CONTENT = catalogue.content()


def _code(rng: random.Random) -> str:
    return f"{rng.randrange(1000000):06d}"


def _amount(rng: random.Random, currency: str) -> float | int:
    low, high = CONTENT.amounts[currency]
    if isinstance(low, int):
        return int(rng.uniform(low, high) // 100 * 100)
    return round(rng.uniform(low, high), 2)


def _order_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    order = f"A-{rng.randrange(100000, 999999)}"
    return {
        "first_name": user.first_name,
        "order_id": order,
        "carrier": rng.choice(CONTENT.carriers[user.locale.region]),
        "eta": (at + timedelta(days=rng.randrange(1, 6))).date().isoformat(),
        "tracking_url": f"{SHOP}/orders/{order}/track",
    }


def _reset_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    token = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
    return {
        "first_name": user.first_name,
        "code": _code(rng),
        "expires_minutes": rng.choice((15, 30, 60)),
        "reset_url": f"{SHOP}/account/reset?t={token}",
    }


def _cart_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    return {
        "first_name": user.first_name,
        "item_name": rng.choice(CONTENT.items),
        "item_count": rng.randrange(1, 5),
        "cart_url": f"{SHOP}/cart",
        "discount_code": rng.choice(("COMEBACK10", "CART10", "SAVE10")),
    }


def _digest_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    return {
        "first_name": user.first_name,
        "week": f"{at.isocalendar().year}-W{at.isocalendar().week:02d}",
        "new_items": rng.randrange(3, 40),
        "top_story": rng.choice(CONTENT.stories),
        "digest_url": f"{SHOP}/digest/{at:%Y-%m-%d}",
    }


def _appointment_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    booking = rng.randrange(10000, 99999)
    return {
        "first_name": user.first_name,
        "clinic": rng.choice(CONTENT.kr_clinics if user.locale.region == "KR" else CONTENT.clinics),
        "date": (at + timedelta(days=1)).date().isoformat(),
        "time": f"{rng.randrange(8, 18):02d}:{rng.choice((0, 15, 30, 45)):02d}",
        "manage_url": f"https://book.acme.example/b/{booking}",
    }


def _promo_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    return {
        "first_name": user.first_name,
        "discount": rng.choice((20, 30, 40, 50)),
        "promo_code": rng.choice(("BF2026", "BLACKFRI", "DEALS50")),
        "ends_at": "Sunday midnight",
        "shop_url": f"{SHOP}/black-friday",
    }


def _payment_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    currency = user.locale.currency
    return {
        "first_name": user.first_name,
        "amount": _amount(rng, currency),
        "currency": currency,
        "card_last4": f"{rng.randrange(10000):04d}",
        "billing_url": f"{SHOP}/account/billing",
    }


def _survey_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    return {
        "first_name": user.first_name,
        "product": rng.choice(CONTENT.products),
        "survey_url": f"https://survey.acme.example/nps/{rng.randrange(100000, 999999)}",
    }


def _welcome_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    return {"first_name": user.first_name, "app_url": "https://acme.example/app/welcome"}


def _otp_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    return {"code": _code(rng), "expires_minutes": 5, "login_url": "https://acme.example/login"}


TEMPLATES: tuple[Template, ...] = catalogue.templates(
    {
        "order_shipped": _order_vars,
        "password_reset": _reset_vars,
        "cart_reminder": _cart_vars,
        "weekly_digest": _digest_vars,
        "appointment_reminder": _appointment_vars,
        "promo_black_friday": _promo_vars,
        "payment_failed": _payment_vars,
        "survey_nps": _survey_vars,
        "welcome_onboarding": _welcome_vars,
        "otp_login": _otp_vars,
    }
)
_TEMPLATES_BY_KEY = {template.key: template for template in TEMPLATES}

_STAGES = ("sent", "delivered", "read", "clicked")


# --- messages -----------------------------------------------------------------------------------


def _render(text: str, variables: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        found = variables[match[1]]
        return f"{found:.2f}" if isinstance(found, float) else str(found)

    return _PLACEHOLDER.sub(value, text)


def version_at(template: Template, at: datetime, now: datetime) -> Version | None:
    live = [v for v in template.versions if now - timedelta(days=v.days_ago) <= at]
    return live[-1] if live else None


@dataclass(frozen=True)
class Plan:
    """What happens to one message; a stage at or after `now` has not happened yet."""

    user: User
    template: Template
    channel: str
    sent_at: datetime
    outcome: str
    response: str | None


class Builder:
    def __init__(self, *, app_id: str, seed: int, now: datetime, rng: random.Random) -> None:
        self.app_id = app_id
        self.seed = seed
        self.now = now
        self.rng = rng
        self.events: list[tuple[datetime, int, dict[str, Any]]] = []

    def event_id(self, *parts: object) -> str:
        return str(
            uuid.uuid5(_NAMESPACE, "/".join([self.app_id, str(self.seed), *map(str, parts)]))
        )

    def envelope(self, event_type: str, event_id: str, at: datetime) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "app_id": self.app_id,
            "occurred_at": rfc3339(at),
        }

    def add(self, at: datetime, event: dict[str, Any]) -> None:
        if at < self.now:
            self.events.append((at, len(self.events), event))

    def message(self, plan: Plan, number: int) -> None:
        rng = self.rng
        version = version_at(plan.template, plan.sent_at, self.now)
        if version is None or plan.channel not in version.channels:
            raise RuntimeError(f"{plan.template.key} had no {plan.channel} content then")
        text = version.channels[plan.channel]
        made = plan.template.make_variables(rng, plan.user, plan.sent_at)
        # The snapshot carries the variables of the version sent, as the platform would.
        variables = {key: made[key] for key, _, _ in version.variables}
        message_id = "msg_" + uuid.uuid5(_NAMESPACE, f"{self.app_id}/{self.seed}/{number}").hex[:20]
        buttons = [
            {
                "id": button.id,
                "label": _render(button.label, variables),
                **({"url": _render(button.url, variables)} if button.url else {}),
            }
            for button in text.buttons
        ]
        content: dict[str, Any] = {"body": _render(text.body, variables), "buttons": buttons}
        if text.title is not None:
            content["title"] = _render(text.title, variables)
        base = {"message_id": message_id, "user_id": plan.user.user_id}

        def stage(name: str, at: datetime, **fields: Any) -> dict[str, Any]:
            event_type = f"notification.{name}"
            return {
                **self.envelope(event_type, self.event_id(message_id, name), at),
                **base,
                **fields,
            }

        self.add(
            plan.sent_at,
            stage(
                "sent",
                plan.sent_at,
                channel=plan.channel,
                template={
                    "key": plan.template.key,
                    "name": plan.template.name,
                    "version": version.version,
                    "variables": variables,
                },
                content=content,
            ),
        )
        at = plan.sent_at
        if plan.outcome == "failed":
            at += timedelta(seconds=rng.uniform(1, 300 if plan.channel == "email" else 60))
            failure = rng.choice(CONTENT.failures[plan.channel])
            self.add(at, stage("failed", at, code=failure.code, reason=failure.reason))
            return
        reached = _STAGES.index(plan.outcome)
        if reached >= 1:
            at += _delivery_delay(rng, plan.channel)
            self.add(at, stage("delivered", at))
        if reached >= 2:
            at += timedelta(seconds=min(max(rng.lognormvariate(7.1, 1.3), 5), 10 * 3600))
            self.add(at, stage("read", at))
        if reached >= 3:
            at += timedelta(seconds=rng.uniform(3, 900))
            self.add(at, stage("clicked", at, **_click(rng, plan, buttons, variables)))
        if plan.response is not None:
            at += timedelta(seconds=rng.uniform(5, 1800))
            response = _response(rng, plan, buttons)
            self.add(at, stage("responded", at, response=response))


def _delivery_delay(rng: random.Random, channel: str) -> timedelta:
    low, high = {
        "push": (0.3, 5),
        "in_app": (30, 6 * 3600),  # delivered when the user next opens the app
        "email": (1, 60),
        "sms": (2, 20),
        "whatsapp": (1, 10),
        "alimtalk": (1, 8),
    }[channel]
    return timedelta(seconds=rng.uniform(low, high))


def _click(
    rng: random.Random, plan: Plan, buttons: list[dict[str, Any]], variables: Mapping[str, Any]
) -> dict[str, Any]:
    linked = [button for button in buttons if "url" in button]
    if linked:
        button = rng.choice(linked)
        return {"button_id": button["id"], "url": button["url"]}
    if buttons:
        return {"button_id": rng.choice(buttons)["id"]}
    return {"url": str(variables[plan.template.link_variable])}


def _response(rng: random.Random, plan: Plan, buttons: list[dict[str, Any]]) -> dict[str, Any]:
    if plan.response == "button" and buttons:
        button = rng.choice(buttons)
        return {"type": "button", "value": button["id"], "label": button["label"]}
    if plan.response == "form":
        score = rng.choices(range(11), weights=(1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 7))[0]
        return {
            "type": "form",
            "value": {"score": score, "comment": rng.choice(CONTENT.comments)},
            "label": "NPS survey",
        }
    replies = CONTENT.replies.get(plan.template.key, CONTENT.replies["*"])
    return {"type": "reply", "value": rng.choice(replies)}


def response_type(rng: random.Random, template: Template, channel: str) -> str:
    if template.key == "survey_nps" and channel in ("in_app", "email"):
        return "form"
    if channel in ("sms", "email"):
        return "reply"
    if channel == "whatsapp":
        return rng.choice(("button", "reply"))
    return "button"


def _earliest(template: Template, channel: str) -> float:
    """Days before now at which the template first had content for the channel."""
    return max(v.days_ago for v in template.versions if channel in v.channels)


def _alex_plans(rng: random.Random, alex: User, now: datetime) -> list[Plan]:
    plans = []
    for scripted in CONTENT.alex_script:
        template = _TEMPLATES_BY_KEY[scripted.template]
        # At least a day old, so every stage of the script has happened by `now`.
        latest = _earliest(template, scripted.channel) - 0.2
        days_ago = rng.uniform(1.0, min(WINDOW_DAYS - 0.5, latest))
        sent_at = now - timedelta(days=days_ago)
        plans.append(
            Plan(alex, template, scripted.channel, sent_at, scripted.outcome, scripted.response)
        )
    return plans


def _random_plan(
    rng: random.Random, users: list[User], weights: list[float], now: datetime
) -> Plan:
    user = rng.choices(users, weights=weights)[0]
    while True:
        sent_at = now - timedelta(seconds=rng.uniform(60, WINDOW_DAYS * 86400))
        template = rng.choices(TEMPLATES, weights=[t.weight for t in TEMPLATES])[0]
        version = version_at(template, sent_at, now)
        if version is None:
            continue
        channels = channels_for(version.channels, user)
        if channels:
            break
    return drawn_plan(rng, user, template, channels, sent_at)


def channels_for(channels: Iterable[str], user: User) -> list[str]:
    """The channels of a template version that can reach `user`: AlimTalk only in Korea."""
    return [channel for channel in channels if channel != "alimtalk" or user.locale.region == "KR"]


def drawn_plan(
    rng: random.Random, user: User, template: Template, channels: list[str], sent_at: datetime
) -> Plan:
    """A message of `template` to `user` on one of `channels`, with its funnel drawn: failed, or
    sent, delivered, read, clicked, and maybe a response."""
    channel = rng.choices(channels, weights=[channel_weight(c, user) for c in channels])[0]
    if rng.random() < P_FAILED:
        return Plan(user, template, channel, sent_at, "failed", None)
    outcome, response = "sent", None
    if rng.random() < P_DELIVERED_IF_NOT_FAILED:
        outcome = "delivered"
        if rng.random() < min(P_READ_IF_DELIVERED * READ_FACTOR[channel], 0.95):
            outcome = "read"
            if rng.random() < P_CLICKED_IF_READ:
                outcome = "clicked"
            if rng.random() < P_RESPONDED_IF_READ:
                response = response_type(rng, template, channel)
    return Plan(user, template, channel, sent_at, outcome, response)


def channel_weight(channel: str, user: User) -> float:
    weight = float(CHANNEL_WEIGHT[channel])
    if channel == "alimtalk":
        weight *= 3
    if channel == "whatsapp" and user.locale.region in WHATSAPP_REGIONS:
        weight *= 2.5
    return weight


# --- templates and profile changes as events ----------------------------------------------------


def template_events(
    builder: Builder, templates: Sequence[Template] = TEMPLATES, *, lead: timedelta = timedelta()
) -> list[dict[str, Any]]:
    """Every version of `templates` as a template.upserted, oldest first, each `lead` before the
    day its version starts."""
    events = []
    for template in templates:
        for version in template.versions:
            at = builder.now - timedelta(days=version.days_ago) - lead
            channels = {
                channel: {
                    **({"title": text.title} if text.title is not None else {}),
                    "body": text.body,
                    "buttons": [
                        {"id": b.id, "label": b.label, **({"url": b.url} if b.url else {})}
                        for b in text.buttons
                    ],
                }
                for channel, text in version.channels.items()
            }
            event_id = builder.event_id("template", template.key, version.version)
            events.append(
                {
                    **builder.envelope("template.upserted", event_id, at),
                    "template": {
                        "key": template.key,
                        "name": template.name,
                        "version": version.version,
                        "channels": channels,
                        "variable_schema": [
                            {"key": key, "type": kind, "name": name}
                            for key, kind, name in version.variables
                        ],
                    },
                }
            )
    return sorted(events, key=lambda event: str(event["occurred_at"]))


def _full_name(user: User) -> str:
    locale = user.locale
    if user.first_name.isascii() or not locale.native_family_first:
        return f"{user.first_name} {user.last_name}"
    return f"{user.last_name}{locale.native_separator}{user.first_name}"


def _platform_user_events(
    builder: Builder, rng: random.Random, users: list[User]
) -> list[dict[str, Any]]:
    others = users[1:]
    chosen = rng.sample(others, k=min(6, len(others)))
    events = []
    for n, user in enumerate(chosen):
        # Profile edits in the app: an emoji added, the full name, or first name and initial.
        if n % 3 == 0:
            nickname = f"{user.nickname or user.first_name} {rng.choice(EMOJI)}"
        elif n % 3 == 1 or not user.last_name.isascii():
            nickname = _full_name(user)
        else:
            nickname = f"{user.first_name} {user.last_name[0]}."
        if nickname == user.nickname:
            nickname = f"{nickname} {rng.choice(EMOJI)}"
        at = builder.now - timedelta(hours=rng.uniform(1, 72))
        event_id = builder.event_id("user", user.user_id, n)
        events.append(
            {
                **builder.envelope("user.upserted", event_id, at),
                "user_id": user.user_id,
                "nickname": nickname[:80],
                "source": "platform",
            }
        )
    return sorted(events, key=lambda event: str(event["occurred_at"]))


def build_demo(
    *,
    app_id: str = "demo",
    seed: int = 7,
    now: datetime,
    users: int = 300,
    messages: int = 3000,
) -> DemoData:
    """The demo app's data as of `now` (an aware datetime); the same arguments, the same data."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(UTC)")
    if users < 2:
        raise ValueError("users must be at least 2: alex and someone else")
    if messages < len(CONTENT.alex_script):
        raise ValueError(f"messages must be at least {len(CONTENT.alex_script)} for alex's history")
    now = now.astimezone(UTC)
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    people = _users(rng, users)
    builder = Builder(app_id=app_id, seed=seed, now=now, rng=rng)

    plans = _alex_plans(rng, people[0], now)
    others = people[1:]
    weights = [user.activity for user in others]
    plans += [_random_plan(rng, others, weights, now) for _ in range(messages - len(plans))]
    plans.sort(key=lambda plan: plan.sent_at)
    for number, plan in enumerate(plans):
        builder.message(plan, number)

    builder.events.sort(key=lambda entry: (entry[0], entry[1]))
    return DemoData(
        csv_text=_csv(people),
        template_events=template_events(builder),
        notification_events=[event for _, _, event in builder.events],
        platform_user_events=_platform_user_events(builder, rng, people),
    )
