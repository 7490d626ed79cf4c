"""The demo app's catalogue: its people, templates and content, read from the JSON files beside.

The files are data a product team can edit without touching Python: the locales people are drawn
from (`people.json`), the templates with their versions and texts per channel (`templates.json`;
a text or a variable list several versions share is named once and referred to by name), and the
values messages are filled with, the failures, replies and alex's scripted history
(`content.json`). How values are drawn stays in `insights.demo_data`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from insights.demo_data import User


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


@dataclass(frozen=True)
class Button:
    id: str
    label: str
    url: str | None = None


@dataclass(frozen=True)
class Text:
    body: str
    title: str | None = None
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True)
class Version:
    version: int
    days_ago: float
    channels: Mapping[str, Text]
    # (key, type, name) of each variable, as the template event's variable_schema gives them
    variables: tuple[tuple[str, str, str], ...]


VariableMaker = Callable[[random.Random, "User", datetime], dict[str, Any]]


@dataclass(frozen=True)
class Template:
    key: str
    name: str
    weight: int
    # The link a click on an sms or email lands on.
    link_variable: str
    make_variables: VariableMaker
    versions: tuple[Version, ...]


@dataclass(frozen=True)
class Failure:
    code: str
    reason: str


@dataclass(frozen=True)
class ScriptedMessage:
    """One message of alex's history: how far it got and how alex responded."""

    channel: str
    template: str
    outcome: str
    response: str | None


@dataclass(frozen=True)
class Content:
    carriers: Mapping[str, tuple[str, ...]]
    clinics: tuple[str, ...]
    kr_clinics: tuple[str, ...]
    products: tuple[str, ...]
    items: tuple[str, ...]
    stories: tuple[str, ...]
    amounts: Mapping[str, tuple[float, float] | tuple[int, int]]
    failures: Mapping[str, tuple[Failure, ...]]
    replies: Mapping[str, tuple[str, ...]]
    comments: tuple[str, ...]
    alex_script: tuple[ScriptedMessage, ...]


@cache
def _read(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


def _names(entries: list[str | list[str]]) -> tuple[tuple[str, str], ...]:
    # A plain string is a name written the same way in Latin script and natively.
    return tuple((e, e) if isinstance(e, str) else (e[0], e[1]) for e in entries)


def locales() -> tuple[Locale, ...]:
    return tuple(
        Locale(
            region=entry["region"],
            weight=entry["weight"],
            currency=entry["currency"],
            first=_names(entry["first"]),
            last=_names(entry["last"]),
            native_family_first=entry.get("native_family_first", False),
            native_separator=entry.get("native_separator", " "),
        )
        for entry in _read("people.json")["locales"]
    )


def emoji() -> tuple[str, ...]:
    return tuple(_read("people.json")["emoji"])


def us_area_codes() -> tuple[str, ...]:
    return tuple(_read("people.json")["us_area_codes"])


def _text(entry: Mapping[str, Any]) -> Text:
    return Text(
        body=entry["body"],
        title=entry.get("title"),
        buttons=tuple(Button(b["id"], b["label"], b.get("url")) for b in entry.get("buttons", ())),
    )


def templates(makers: Mapping[str, VariableMaker]) -> tuple[Template, ...]:
    """The templates, each drawing its variables with the maker named by its key in `makers`."""
    data = _read("templates.json")
    shared = {name: _text(entry) for name, entry in data["texts"].items()}
    variables = {
        name: tuple((v["key"], v["type"], v["name"]) for v in entries)
        for name, entries in data["variables"].items()
    }
    missing = [t["key"] for t in data["templates"] if t["key"] not in makers]
    if missing:
        raise ValueError(f"no variable maker for the demo templates {missing}")
    return tuple(
        Template(
            key=t["key"],
            name=t["name"],
            weight=t["weight"],
            link_variable=t["link_variable"],
            make_variables=makers[t["key"]],
            versions=tuple(
                Version(
                    version=v["version"],
                    days_ago=v["days_ago"],
                    channels={
                        channel: shared[text] if isinstance(text, str) else _text(text)
                        for channel, text in v["channels"].items()
                    },
                    variables=variables[v["variables"]],
                )
                for v in t["versions"]
            ),
        )
        for t in data["templates"]
    )


def content() -> Content:
    data = _read("content.json")
    return Content(
        carriers={region: tuple(names) for region, names in data["carriers"].items()},
        clinics=tuple(data["clinics"]),
        kr_clinics=tuple(data["kr_clinics"]),
        products=tuple(data["products"]),
        items=tuple(data["items"]),
        stories=tuple(data["stories"]),
        amounts={currency: (low, high) for currency, (low, high) in data["amounts"].items()},
        failures={
            channel: tuple(Failure(f["code"], f["reason"]) for f in failures)
            for channel, failures in data["failures"].items()
        },
        replies={key: tuple(replies) for key, replies in data["replies"].items()},
        comments=tuple(data["comments"]),
        alex_script=tuple(
            ScriptedMessage(s["channel"], s["template"], s["outcome"], s["response"])
            for s in data["alex_script"]
        ),
    )
