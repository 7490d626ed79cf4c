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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

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


@dataclass(frozen=True)
class Locale:
    region: str
    weight: int
    currency: str
    # (latin, native) pairs; latin-script languages repeat the accented name.
    first: tuple[tuple[str, str], ...]
    last: tuple[tuple[str, str], ...]
    native_family_first: bool = False
    native_separator: str = " "


def _same(*names: str) -> tuple[tuple[str, str], ...]:
    return tuple((name, name) for name in names)


LOCALES: tuple[Locale, ...] = (
    Locale(
        "US",
        22,
        "USD",
        _same(
            "Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Sophia", "Mason", "Harper", "Jack"
        ),
        _same(
            "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Ramos", "Nguyen"
        ),
    ),
    Locale(
        "KR",
        16,
        "KRW",
        (
            ("Minji", "민지"),
            ("Seojun", "서준"),
            ("Jiwoo", "지우"),
            ("Haeun", "하은"),
            ("Doyun", "도윤"),
            ("Yuna", "유나"),
            ("Jihoon", "지훈"),
            ("Sora", "소라"),
            ("Eunji", "은지"),
            ("Hyunwoo", "현우"),
        ),
        (
            ("Kim", "김"),
            ("Lee", "이"),
            ("Park", "박"),
            ("Choi", "최"),
            ("Jung", "정"),
            ("Kang", "강"),
            ("Yoon", "윤"),
            ("Han", "한"),
        ),
        native_family_first=True,
        native_separator="",
    ),
    Locale(
        "JP",
        9,
        "JPY",
        (
            ("Yui", "結衣"),
            ("Haruto", "陽翔"),
            ("Sakura", "さくら"),
            ("Ren", "蓮"),
            ("Hina", "ひな"),
            ("Sota", "颯太"),
            ("Aoi", "葵"),
            ("Yuto", "悠斗"),
            ("Mio", "美緒"),
        ),
        (
            ("Tanaka", "田中"),
            ("Suzuki", "鈴木"),
            ("Sato", "佐藤"),
            ("Takahashi", "高橋"),
            ("Watanabe", "渡辺"),
            ("Yamamoto", "山本"),
            ("Nakamura", "中村"),
        ),
        native_family_first=True,
    ),
    Locale(
        "GB",
        8,
        "GBP",
        _same("Oliver", "Amelia", "George", "Isla", "Harry", "Poppy", "Arthur", "Freya"),
        _same("Jones", "Williams", "Evans", "Thomas", "Roberts", "Hughes", "O'Brien"),
    ),
    Locale(
        "DE",
        8,
        "EUR",
        _same("Jürgen", "Lena", "Jörg", "Björn", "Leonie", "Lukas", "Mia", "Käthe"),
        _same("Müller", "Schäfer", "Groß", "Köhler", "Schröder", "Weiß", "Becker"),
    ),
    Locale(
        "FR",
        7,
        "EUR",
        _same("Chloé", "Amélie", "Léa", "Théo", "Hélène", "François", "Zoé", "Noël"),
        _same("Lefèvre", "Dubois", "Moreau", "Girard", "Rousseau", "Bélanger"),
    ),
    Locale(
        "ES",
        6,
        "EUR",
        _same("José", "María", "Lucía", "Álvaro", "Sofía", "Martín", "Íñigo", "Carmen"),
        _same("García", "Fernández", "López", "Martínez", "Peña", "Muñoz", "Ibáñez"),
    ),
    Locale(
        "MX",
        6,
        "MXN",
        _same("Alejandro", "Ximena", "Andrés", "Valentina", "Diego", "Renata", "Ángel"),
        _same("Hernández", "González", "Ramírez", "Cruz", "Ortiz", "Ramos", "Juárez"),
    ),
    Locale(
        "BR",
        9,
        "BRL",
        _same("João", "Luíza", "Thiago", "Beatriz", "Letícia", "Caio", "Gonçalo", "Ana"),
        _same("Gonçalves", "Araújo", "Conceição", "Simões", "Pereira", "Souza", "Magalhães"),
    ),
    Locale(
        "IN",
        9,
        "INR",
        (
            ("Priya", "प्रिया"),
            ("Arjun", "अर्जुन"),
            ("Ananya", "अनन्या"),
            ("Rohan", "रोहन"),
            ("Diya", "दिया"),
            ("Kavya", "काव्या"),
            ("Aarav", "आरव"),
        ),
        (
            ("Sharma", "शर्मा"),
            ("Patel", "पटेल"),
            ("Iyer", "अय्यर"),
            ("Reddy", "रेड्डी"),
            ("Nair", "नायर"),
            ("Gupta", "गुप्ता"),
        ),
    ),
)
_ALEX_LOCALE = LOCALES[0]

EMOJI = ("✨", "🚀", "🌸", "🐱", "⚽", "🎧", "☕", "🌙", "🍀", "🔥")
US_AREA_CODES = ("212", "213", "305", "312", "404", "415", "512", "617", "646", "702", "720")
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


@dataclass(frozen=True)
class _Button:
    id: str
    label: str
    url: str | None = None


@dataclass(frozen=True)
class _Text:
    body: str
    title: str | None = None
    buttons: tuple[_Button, ...] = ()


@dataclass(frozen=True)
class _Version:
    version: int
    days_ago: float
    channels: Mapping[str, _Text]
    variables: tuple[tuple[str, str, str], ...]


VariableMaker = Callable[[random.Random, User, datetime], dict[str, Any]]


@dataclass(frozen=True)
class Template:
    key: str
    name: str
    weight: int
    # The link a click on an sms or email lands on.
    link_variable: str
    make_variables: VariableMaker
    versions: tuple[_Version, ...]


def _vars(*specs: tuple[str, str, str]) -> tuple[tuple[str, str, str], ...]:
    return specs


FIRST_NAME = ("first_name", "string", "First name")
CARRIERS = {
    "US": ("UPS", "FedEx", "USPS"),
    "KR": ("CJ대한통운", "한진택배", "우체국택배"),
    "JP": ("Yamato", "Sagawa", "Japan Post"),
    "GB": ("Royal Mail", "DPD", "Evri"),
    "DE": ("DHL", "Hermes", "DPD"),
    "FR": ("Colissimo", "Chronopost", "DPD"),
    "ES": ("Correos", "SEUR", "MRW"),
    "MX": ("Estafeta", "DHL", "Paquetexpress"),
    "BR": ("Correios", "Jadlog", "Loggi"),
    "IN": ("Delhivery", "Blue Dart", "Ekart"),
}
CLINICS = ("Harbor Dental", "Sunrise Clinic", "City Physio", "Green Valley Vet")
KR_CLINICS = ("서울 정형외과", "강남 연세치과", *CLINICS[:2])
PRODUCTS = ("the Acme app", "Acme Shop", "Acme Prime")
ITEMS = (
    "Trail running shoes",
    "Wireless earbuds",
    "Linen shirt",
    "Ceramic pour-over set",
    "Yoga mat",
    "Mechanical keyboard",
    "Rain jacket",
)
STORIES = (
    "How to pick the right running shoe",
    "10 desk upgrades under $50",
    "Our spring collection is here",
    "Behind the scenes at the roastery",
)
AMOUNTS = {
    "USD": (9.99, 129.0),
    "EUR": (9.99, 119.0),
    "GBP": (7.99, 99.0),
    "BRL": (39.9, 499.0),
    "MXN": (149.0, 1999.0),
    "INR": (299.0, 4999.0),
    "KRW": (9900, 129000),
    "JPY": (980, 14800),
}


def _code(rng: random.Random) -> str:
    return f"{rng.randrange(1000000):06d}"


def _amount(rng: random.Random, currency: str) -> float | int:
    low, high = AMOUNTS[currency]
    if isinstance(low, int):
        return int(rng.uniform(low, high) // 100 * 100)
    return round(rng.uniform(low, high), 2)


def _order_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    order = f"A-{rng.randrange(100000, 999999)}"
    return {
        "first_name": user.first_name,
        "order_id": order,
        "carrier": rng.choice(CARRIERS[user.locale.region]),
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
        "item_name": rng.choice(ITEMS),
        "item_count": rng.randrange(1, 5),
        "cart_url": f"{SHOP}/cart",
        "discount_code": rng.choice(("COMEBACK10", "CART10", "SAVE10")),
    }


def _digest_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    return {
        "first_name": user.first_name,
        "week": f"{at.isocalendar().year}-W{at.isocalendar().week:02d}",
        "new_items": rng.randrange(3, 40),
        "top_story": rng.choice(STORIES),
        "digest_url": f"{SHOP}/digest/{at:%Y-%m-%d}",
    }


def _appointment_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    booking = rng.randrange(10000, 99999)
    return {
        "first_name": user.first_name,
        "clinic": rng.choice(KR_CLINICS if user.locale.region == "KR" else CLINICS),
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
        "product": rng.choice(PRODUCTS),
        "survey_url": f"https://survey.acme.example/nps/{rng.randrange(100000, 999999)}",
    }


def _welcome_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    return {"first_name": user.first_name, "app_url": "https://acme.example/app/welcome"}


def _otp_vars(rng: random.Random, user: User, at: datetime) -> dict[str, Any]:
    return {"code": _code(rng), "expires_minutes": 5, "login_url": "https://acme.example/login"}


TRACK = _Button("track", "Track package", "{{tracking_url}}")
HELP = _Button("help", "Contact support", "https://acme.example/help")

ORDER_VARS = _vars(
    FIRST_NAME,
    ("order_id", "string", "Order number"),
    ("carrier", "string", "Carrier"),
    ("eta", "date", "Estimated delivery"),
    ("tracking_url", "url", "Tracking link"),
)
ORDER_EMAIL = _Text(
    title="Order {{order_id}} has shipped",
    body=(
        "Hi {{first_name}},\n\nGood news: order {{order_id}} left our warehouse and is on its way "
        "with {{carrier}}. Expected delivery: {{eta}}.\n\nTrack it here: {{tracking_url}}\n\n"
        "— The Acme team"
    ),
)
ORDER_SMS = _Text("Acme: order {{order_id}} shipped with {{carrier}}. Track: {{tracking_url}}")
ORDER_ALIMTALK = _Text(
    title="배송 시작 안내",
    body=(
        "{{first_name}}님, 주문하신 상품({{order_id}})이 {{carrier}}을(를) 통해 발송되었습니다.\n"
        "도착 예정일: {{eta}}"
    ),
    buttons=(_Button("track", "배송 조회", "{{tracking_url}}"),),
)
ORDER_WHATSAPP = _Text(
    "Hi {{first_name}}! Your order *{{order_id}}* is on its way with {{carrier}}. "
    "Expected delivery: {{eta}}.",
    buttons=(TRACK, HELP),
)

RESET_VARS = _vars(
    FIRST_NAME,
    ("code", "string", "Reset code"),
    ("expires_minutes", "number", "Expires in (minutes)"),
    ("reset_url", "url", "Reset link"),
)
RESET_SMS = _Text(
    "Acme: {{code}} is your password reset code. It expires in {{expires_minutes}} minutes. "
    "Didn't ask for it? Ignore this message."
)
RESET_EMAIL = _Text(
    title="Reset your Acme password",
    body=(
        "Hi {{first_name}},\n\nUse code {{code}} or the link below to choose a new password. "
        "The link expires in {{expires_minutes}} minutes.\n\n{{reset_url}}\n\n"
        "If you didn't ask for this, you can ignore this email."
    ),
)

CART_V1_VARS = _vars(
    FIRST_NAME,
    ("item_name", "string", "First item"),
    ("item_count", "number", "Items in cart"),
    ("cart_url", "url", "Cart link"),
)
CART_V2_VARS = (*CART_V1_VARS, ("discount_code", "string", "Discount code"))
VIEW_CART = _Button("view_cart", "View cart", "{{cart_url}}")

DIGEST_VARS = _vars(
    FIRST_NAME,
    ("week", "string", "ISO week"),
    ("new_items", "number", "New items"),
    ("top_story", "string", "Top story"),
    ("digest_url", "url", "Digest link"),
)

APPOINTMENT_VARS = _vars(
    FIRST_NAME,
    ("clinic", "string", "Clinic"),
    ("date", "date", "Date"),
    ("time", "string", "Time"),
    ("manage_url", "url", "Manage booking link"),
)
CONFIRM = _Button("confirm", "Confirm", "{{manage_url}}?action=confirm")
RESCHEDULE = _Button("reschedule", "Reschedule", "{{manage_url}}?action=reschedule")
QUICK_REPLIES = (_Button("confirm", "Confirm"), _Button("reschedule", "Reschedule"))
APPOINTMENT_ALIMTALK = _Text(
    title="예약 안내",
    body="{{first_name}}님, {{clinic}} 예약이 {{date}} {{time}}에 있습니다.",
    buttons=(
        _Button("confirm", "예약 확인", "{{manage_url}}?action=confirm"),
        _Button("reschedule", "예약 변경", "{{manage_url}}?action=reschedule"),
    ),
)
APPOINTMENT_WHATSAPP = _Text(
    "Hi {{first_name}}, a reminder of your appointment at {{clinic}} on {{date}} at {{time}}.",
    buttons=QUICK_REPLIES,
)

PROMO_VARS = _vars(
    FIRST_NAME,
    ("discount", "number", "Discount (%)"),
    ("promo_code", "string", "Promo code"),
    ("ends_at", "string", "Sale ends"),
    ("shop_url", "url", "Shop link"),
)
SHOP_NOW = _Button("shop", "Shop now", "{{shop_url}}")

PAYMENT_VARS = _vars(
    FIRST_NAME,
    ("amount", "number", "Amount"),
    ("currency", "string", "Currency"),
    ("card_last4", "string", "Card (last 4 digits)"),
    ("billing_url", "url", "Billing link"),
)
UPDATE_CARD = _Button("update_card", "Update card", "{{billing_url}}")
PAYMENT_EMAIL = _Text(
    title="Your payment of {{amount}} {{currency}} did not go through",
    body=(
        "Hi {{first_name}},\n\nWe tried to charge your card ending in {{card_last4}} but the "
        "payment was declined. Please update your payment method to keep your subscription "
        "active:\n\n{{billing_url}}"
    ),
)
PAYMENT_SMS = _Text(
    "Acme: we couldn't charge your card ending {{card_last4}} ({{amount}} {{currency}}). "
    "Update it: {{billing_url}}"
)
PAYMENT_PUSH = _Text(
    title="Payment failed",
    body="We couldn't charge your card ending {{card_last4}}. Update it to avoid interruptions.",
    buttons=(UPDATE_CARD,),
)

SURVEY_VARS = _vars(
    FIRST_NAME, ("product", "string", "Product"), ("survey_url", "url", "Survey link")
)
RATE = _Button("rate", "Rate us", "{{survey_url}}")
LATER = _Button("later", "Maybe later")
SURVEY_IN_APP = _Text(
    title="How are we doing?",
    body="{{first_name}}, how likely are you to recommend {{product}} to a friend?",
    buttons=(RATE, LATER),
)
SURVEY_EMAIL = _Text(
    title="Got a minute? Tell us about {{product}}",
    body=(
        "Hi {{first_name}},\n\nOn a scale from 0 to 10, how likely are you to recommend "
        "{{product}} to a friend or colleague? It takes 30 seconds:\n\n{{survey_url}}"
    ),
)

WELCOME_VARS = _vars(FIRST_NAME, ("app_url", "url", "App link"))
OTP_VARS = _vars(
    ("code", "string", "Login code"),
    ("expires_minutes", "number", "Expires in (minutes)"),
    ("login_url", "url", "Login link"),
)

TEMPLATES: tuple[Template, ...] = (
    Template(
        "order_shipped",
        "Order shipped",
        16,
        "tracking_url",
        _order_vars,
        (
            _Version(
                1,
                52,
                {
                    "push": _Text(
                        title="Your order shipped 📦",
                        body="Hi {{first_name}}, {{order_id}} is on its way with {{carrier}}.",
                        buttons=(TRACK,),
                    ),
                    "sms": ORDER_SMS,
                    "email": ORDER_EMAIL,
                },
                ORDER_VARS,
            ),
            _Version(
                2,
                21,
                {
                    "push": _Text(
                        title="Your order shipped 📦",
                        body="Order {{order_id}} is on its way with {{carrier}}. Arrives {{eta}}.",
                        buttons=(TRACK,),
                    ),
                    "sms": ORDER_SMS,
                    "email": ORDER_EMAIL,
                    "alimtalk": ORDER_ALIMTALK,
                    "whatsapp": ORDER_WHATSAPP,
                },
                ORDER_VARS,
            ),
            _Version(
                3,
                6,
                {
                    "push": _Text(
                        title="On its way: {{order_id}}",
                        body="{{carrier}} has your package. Expected {{eta}}.",
                        buttons=(TRACK, _Button("options", "Delivery options", "{{tracking_url}}")),
                    ),
                    "sms": ORDER_SMS,
                    "email": ORDER_EMAIL,
                    "alimtalk": ORDER_ALIMTALK,
                    "whatsapp": ORDER_WHATSAPP,
                },
                ORDER_VARS,
            ),
        ),
    ),
    Template(
        "password_reset",
        "Password reset",
        6,
        "reset_url",
        _reset_vars,
        (
            _Version(1, 58, {"sms": RESET_SMS, "email": RESET_EMAIL}, RESET_VARS),
            _Version(
                2,
                12,
                {
                    "sms": RESET_SMS,
                    "email": RESET_EMAIL,
                    "push": _Text(
                        title="Password reset requested",
                        body="Tap to choose a new password. Your code is {{code}}.",
                        buttons=(_Button("reset", "Reset password", "{{reset_url}}"),),
                    ),
                },
                RESET_VARS,
            ),
        ),
    ),
    Template(
        "cart_reminder",
        "Abandoned cart reminder",
        14,
        "cart_url",
        _cart_vars,
        (
            _Version(
                1,
                40,
                {
                    "push": _Text(
                        title="Still thinking it over?",
                        body="{{item_name}} and {{item_count}} more item(s) are in your cart.",
                        buttons=(VIEW_CART,),
                    ),
                    "in_app": _Text(
                        title="Your cart misses you",
                        body="{{first_name}}, {{item_name}} is still in your cart. "
                        "Check out before it sells out.",
                        buttons=(_Button("checkout", "Checkout", "{{cart_url}}"), LATER),
                    ),
                    "email": _Text(
                        title="You left something behind",
                        body="Hi {{first_name}},\n\n{{item_name}} is waiting in your cart. "
                        "Pick up where you left off: {{cart_url}}",
                    ),
                },
                CART_V1_VARS,
            ),
            _Version(
                2,
                15,
                {
                    "push": _Text(
                        title="10% off what's in your cart",
                        body="{{item_name}} is waiting. Use {{discount_code}} at checkout.",
                        buttons=(VIEW_CART,),
                    ),
                    "in_app": _Text(
                        title="A little something for you",
                        body="Use {{discount_code}} for 10% off {{item_name}} and the rest of "
                        "your cart.",
                        buttons=(_Button("checkout", "Checkout", "{{cart_url}}"), LATER),
                    ),
                    "email": _Text(
                        title="{{first_name}}, here's 10% off your cart",
                        body="Hi {{first_name}},\n\n{{item_name}} is still in your cart. Use "
                        "{{discount_code}} for 10% off: {{cart_url}}",
                    ),
                    "whatsapp": _Text(
                        "Hi {{first_name}}, {{item_name}} is still in your cart 🛒 Use "
                        "*{{discount_code}}* for 10% off.",
                        buttons=(VIEW_CART,),
                    ),
                },
                CART_V2_VARS,
            ),
        ),
    ),
    Template(
        "weekly_digest",
        "Weekly digest",
        10,
        "digest_url",
        _digest_vars,
        (
            _Version(
                1,
                60,
                {
                    "email": _Text(
                        title="Your week at Acme: {{new_items}} new picks",
                        body="Hi {{first_name}},\n\nThis week ({{week}}) we found {{new_items}} "
                        "new items for you.\n\nTop story: {{top_story}}\n\n{{digest_url}}",
                    ),
                    "in_app": _Text(
                        title="This week for you",
                        body="{{new_items}} new items match your interests. "
                        "Top story: {{top_story}}",
                        buttons=(_Button("read", "Read digest", "{{digest_url}}"),),
                    ),
                },
                DIGEST_VARS,
            ),
        ),
    ),
    Template(
        "appointment_reminder",
        "Appointment reminder",
        9,
        "manage_url",
        _appointment_vars,
        (
            _Version(
                1,
                55,
                {
                    "sms": _Text(
                        "Reminder: {{first_name}}, your appointment at {{clinic}} is on "
                        "{{date}} at {{time}}. Reply C to confirm or R to reschedule."
                    ),
                    "push": _Text(
                        title="Appointment tomorrow",
                        body="{{clinic}}, {{date}} at {{time}}",
                        buttons=(CONFIRM, RESCHEDULE),
                    ),
                },
                APPOINTMENT_VARS,
            ),
            _Version(
                2,
                25,
                {
                    "sms": _Text(
                        "Reminder: {{first_name}}, your appointment at {{clinic}} is on "
                        "{{date}} at {{time}}. Reply C to confirm or R to reschedule."
                    ),
                    "push": _Text(
                        title="Appointment tomorrow",
                        body="{{clinic}}, {{date}} at {{time}}",
                        buttons=(CONFIRM, RESCHEDULE),
                    ),
                    "alimtalk": APPOINTMENT_ALIMTALK,
                    "whatsapp": APPOINTMENT_WHATSAPP,
                },
                APPOINTMENT_VARS,
            ),
            _Version(
                3,
                8,
                {
                    "sms": _Text(
                        "{{clinic}}: see you {{date}} {{time}}. C = confirm, R = reschedule."
                    ),
                    "push": _Text(
                        title="See you tomorrow at {{time}}",
                        body="{{clinic}} · {{date}}",
                        buttons=(CONFIRM, RESCHEDULE),
                    ),
                    "alimtalk": APPOINTMENT_ALIMTALK,
                    "whatsapp": APPOINTMENT_WHATSAPP,
                },
                APPOINTMENT_VARS,
            ),
        ),
    ),
    Template(
        "promo_black_friday",
        "Black Friday sale",
        12,
        "shop_url",
        _promo_vars,
        (
            _Version(
                1,
                28,
                {
                    "push": _Text(
                        title="Black Friday: {{discount}}% off everything 🛍️",
                        body="Use code {{promo_code}} before {{ends_at}}.",
                        buttons=(SHOP_NOW,),
                    ),
                    "in_app": _Text(
                        title="Black Friday is here",
                        body="{{discount}}% off everything with {{promo_code}}.",
                        buttons=(SHOP_NOW, _Button("remind", "Remind me later")),
                    ),
                    "email": _Text(
                        title="{{first_name}}, Black Friday starts now: {{discount}}% off",
                        body="Hi {{first_name}},\n\nEverything is {{discount}}% off with code "
                        "{{promo_code}} until {{ends_at}}.\n\n{{shop_url}}",
                    ),
                    "sms": _Text(
                        "Acme Black Friday: {{discount}}% off with code {{promo_code}} until "
                        "{{ends_at}}. {{shop_url}} Reply STOP to opt out"
                    ),
                },
                PROMO_VARS,
            ),
            _Version(
                2,
                10,
                {
                    "push": _Text(
                        title="Last chance: {{discount}}% off ⏰",
                        body="Black Friday ends {{ends_at}}. Code {{promo_code}}.",
                        buttons=(SHOP_NOW,),
                    ),
                    "in_app": _Text(
                        title="Last chance for {{discount}}% off",
                        body="Black Friday ends {{ends_at}}. Use {{promo_code}} at checkout.",
                        buttons=(SHOP_NOW, _Button("remind", "Remind me later")),
                    ),
                    "email": _Text(
                        title="Ends {{ends_at}}: {{discount}}% off everything",
                        body="Hi {{first_name}},\n\nBlack Friday is almost over. Use "
                        "{{promo_code}} for {{discount}}% off.\n\n{{shop_url}}",
                    ),
                    "sms": _Text(
                        "Acme: last chance, {{discount}}% off ends {{ends_at}}. Code "
                        "{{promo_code}} {{shop_url}} Reply STOP to opt out"
                    ),
                },
                PROMO_VARS,
            ),
        ),
    ),
    Template(
        "payment_failed",
        "Payment failed",
        5,
        "billing_url",
        _payment_vars,
        (
            _Version(
                1,
                58,
                {"email": PAYMENT_EMAIL, "sms": PAYMENT_SMS, "push": PAYMENT_PUSH},
                PAYMENT_VARS,
            ),
            _Version(
                2,
                18,
                {
                    "email": PAYMENT_EMAIL,
                    "sms": PAYMENT_SMS,
                    "push": PAYMENT_PUSH,
                    "alimtalk": _Text(
                        title="결제 실패 안내",
                        body="{{first_name}}님, {{card_last4}}로 끝나는 카드로 {{amount}} "
                        "{{currency}} 결제가 실패했습니다. 결제 수단을 변경해 주세요.",
                        buttons=(_Button("update_card", "결제 수단 변경", "{{billing_url}}"),),
                    ),
                },
                PAYMENT_VARS,
            ),
        ),
    ),
    Template(
        "survey_nps",
        "NPS survey",
        6,
        "survey_url",
        _survey_vars,
        (
            _Version(1, 35, {"in_app": SURVEY_IN_APP, "email": SURVEY_EMAIL}, SURVEY_VARS),
            _Version(
                2,
                14,
                {
                    "in_app": SURVEY_IN_APP,
                    "email": SURVEY_EMAIL,
                    "whatsapp": _Text(
                        "Hi {{first_name}}! From 0 to 10, how likely are you to recommend "
                        "{{product}}? Reply with a number or open the survey.",
                        buttons=(_Button("open_survey", "Open survey", "{{survey_url}}"),),
                    ),
                },
                SURVEY_VARS,
            ),
        ),
    ),
    Template(
        "welcome_onboarding",
        "Welcome",
        5,
        "app_url",
        _welcome_vars,
        (
            _Version(
                1,
                60,
                {
                    "in_app": _Text(
                        title="Welcome to Acme, {{first_name}}!",
                        body="Take a 1-minute tour to see what's new.",
                        buttons=(_Button("tour", "Take the tour", "{{app_url}}"), LATER),
                    ),
                    "push": _Text(
                        title="Welcome aboard 👋",
                        body="{{first_name}}, your account is ready.",
                        buttons=(_Button("open", "Open app", "{{app_url}}"),),
                    ),
                    "email": _Text(
                        title="Welcome to Acme",
                        body="Hi {{first_name}},\n\nThanks for joining Acme. Start here: "
                        "{{app_url}}",
                    ),
                },
                WELCOME_VARS,
            ),
        ),
    ),
    Template(
        "otp_login",
        "Login code",
        8,
        "login_url",
        _otp_vars,
        (
            _Version(
                1,
                60,
                {
                    "sms": _Text(
                        "{{code}} is your Acme login code. It expires in {{expires_minutes}} "
                        "minutes. Don't share it with anyone."
                    ),
                    "whatsapp": _Text(
                        "*{{code}}* is your verification code. For your security, do not share "
                        "this code.",
                        buttons=(_Button("copy_code", "Copy code"),),
                    ),
                    "alimtalk": _Text(
                        title="인증번호 안내",
                        body="[Acme] 인증번호는 {{code}}입니다. 타인에게 절대 알려주지 마세요.",
                        buttons=(_Button("open", "로그인하기", "{{login_url}}"),),
                    ),
                },
                OTP_VARS,
            ),
        ),
    ),
)
_TEMPLATES_BY_KEY = {template.key: template for template in TEMPLATES}

FAILURES: dict[str, tuple[tuple[str, str], ...]] = {
    "push": (
        (
            "device_unregistered",
            "The device token is no longer registered (app uninstalled or token expired).",
        ),
        ("invalid_token", "APNs rejected the device token: BadDeviceToken."),
        ("push_disabled", "The user turned off notifications for the app."),
    ),
    "sms": (
        ("invalid_number", "The destination is not a valid mobile number (carrier lookup)."),
        ("carrier_rejected", "The carrier filtered the message as spam (error 30007)."),
        ("unreachable", "The handset was unreachable for 72 hours; the carrier gave up."),
    ),
    "alimtalk": (
        (
            "template_rejected",
            "Kakao rejected the message: the content does not match the approved template.",
        ),
        ("not_kakao_user", "The phone number is not linked to a KakaoTalk account."),
        ("blocked_channel", "The user blocked the business channel in KakaoTalk."),
    ),
    "whatsapp": (
        ("template_rejected", "WhatsApp paused the template after low quality ratings (132015)."),
        ("not_on_whatsapp", "The phone number is not registered on WhatsApp (131026)."),
        ("outside_window", "Free-form message outside the 24-hour service window (131047)."),
    ),
    "email": (
        ("hard_bounce", "550 5.1.1 The email account that you tried to reach does not exist."),
        ("mailbox_full", "452 4.2.2 The recipient's mailbox is full."),
        ("suppressed", "The address is on the suppression list after an earlier bounce."),
    ),
    "in_app": (
        ("message_expired", "The in-app message expired before the user opened the app."),
        ("user_opted_out", "The user opted out of in-app messages."),
    ),
}

REPLIES = {
    "appointment_reminder": ("C", "R", "Confirm", "Can we move it to the afternoon?"),
    "promo_black_friday": ("STOP", "Does the code work in stores too?"),
    "order_shipped": ("Thanks!", "Can I change the delivery address?", "Where is my order?"),
    "survey_nps": ("10", "9", "8", "6", "3"),
    "*": ("Thanks!", "OK", "네, 확인했습니다", "Obrigado!", "¿Puedo cambiar la dirección?"),
}
COMMENTS = (
    "Fast delivery, great support.",
    "The app is easy to use.",
    "Prices went up a bit.",
    "Checkout was confusing on mobile.",
    "배송이 빨라서 좋아요!",
    "",
)

# alex's scripted history: (channel, template, how far the message got, response type).
ALEX_SCRIPT: tuple[tuple[str, str, str, str | None], ...] = (
    ("push", "order_shipped", "clicked", "button"),
    ("push", "cart_reminder", "read", None),
    ("push", "promo_black_friday", "delivered", None),
    ("push", "welcome_onboarding", "sent", None),
    ("push", "payment_failed", "failed", None),
    ("in_app", "survey_nps", "clicked", "form"),
    ("in_app", "cart_reminder", "read", None),
    ("in_app", "weekly_digest", "delivered", None),
    ("in_app", "promo_black_friday", "sent", None),
    ("in_app", "welcome_onboarding", "failed", None),
    ("sms", "appointment_reminder", "read", "reply"),
    ("sms", "password_reset", "clicked", None),
    ("sms", "otp_login", "delivered", None),
    ("sms", "order_shipped", "sent", None),
    ("sms", "promo_black_friday", "failed", None),
    ("alimtalk", "order_shipped", "clicked", "button"),
    ("alimtalk", "otp_login", "read", None),
    ("alimtalk", "appointment_reminder", "delivered", None),
    ("alimtalk", "payment_failed", "sent", None),
    ("alimtalk", "otp_login", "failed", None),
    ("whatsapp", "appointment_reminder", "read", "button"),
    ("whatsapp", "order_shipped", "clicked", None),
    ("whatsapp", "survey_nps", "read", "reply"),
    ("whatsapp", "otp_login", "delivered", None),
    ("whatsapp", "cart_reminder", "failed", None),
    ("email", "weekly_digest", "clicked", None),
    ("email", "order_shipped", "read", "reply"),
    ("email", "password_reset", "delivered", None),
    ("email", "payment_failed", "sent", None),
    ("email", "promo_black_friday", "failed", None),
)
_STAGES = ("sent", "delivered", "read", "clicked")


# --- messages -----------------------------------------------------------------------------------


def _render(text: str, variables: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        found = variables[match[1]]
        return f"{found:.2f}" if isinstance(found, float) else str(found)

    return _PLACEHOLDER.sub(value, text)


def version_at(template: Template, at: datetime, now: datetime) -> _Version | None:
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
            code, reason = rng.choice(FAILURES[plan.channel])
            self.add(at, stage("failed", at, code=code, reason=reason))
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
            "value": {"score": score, "comment": rng.choice(COMMENTS)},
            "label": "NPS survey",
        }
    replies = REPLIES.get(plan.template.key, REPLIES["*"])
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
    for channel, key, outcome, response in ALEX_SCRIPT:
        template = _TEMPLATES_BY_KEY[key]
        # At least a day old, so every stage of the script has happened by `now`.
        days_ago = rng.uniform(1.0, min(WINDOW_DAYS - 0.5, _earliest(template, channel) - 0.2))
        sent_at = now - timedelta(days=days_ago)
        plans.append(Plan(alex, template, channel, sent_at, outcome, response))
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
    if messages < len(ALEX_SCRIPT):
        raise ValueError(f"messages must be at least {len(ALEX_SCRIPT)} for alex's history")
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
