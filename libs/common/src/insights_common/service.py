"""What a service hands to the process that hosts it: its routes and its lifecycle hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import APIRouter

Hook = Callable[[], Awaitable[None]]


@dataclass
class ServiceParts:
    """Routes are mounted under /api/v1 by the host; hooks run at its start and stop."""

    router: APIRouter
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
