"""What a service hands to the process that hosts it: its routes and its lifecycle hooks, and
the chores it repeats in the background while it runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from prometheus_client.registry import Collector

Hook = Callable[[], Awaitable[object]]

log = logging.getLogger(__name__)


@dataclass
class ServiceParts:
    """Routes are mounted under /api/v1 by the host; hooks run at its start and stop."""

    router: APIRouter
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    collectors: list[Collector] = field(default_factory=list)
    """Metrics of the service's own, for the host's /metrics."""


def merged(*routers: APIRouter) -> APIRouter:
    """One router with the routes of `routers`, in their order, as including each of them
    without a prefix or settings would give, but with none of them included: `mount` takes it."""
    return APIRouter(routes=[route for router in routers for route in router.routes])


def mount(app: FastAPI, router: APIRouter, *, prefix: str) -> None:
    """Each route of `router` made again as a route of `app` itself, under `prefix`.

    FastAPI keeps an included router as one route of its parent and matches a request again at
    every level of inclusion; a request then paid more for finding its route than for its
    middleware. The routes keep all their settings but the path; `router` includes no other.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(
                f"only path operations can be mounted, not a {type(route).__name__}: combine "
                "routers with merged(), not include_router()"
            )
        app.router.add_api_route(
            prefix + route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            route_class_override=type(route),
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
            strict_content_type=route.strict_content_type,
            max_body_size=route.max_body_size,
            form_limits=route.form_limits,
        )


class Recurring:
    """A chore done in the background every `every` while the service runs.

    `start` begins it, at once or after the first interval (`first_at_start`); `stop` cancels
    it. A turn that raises is logged and the chore is tried again at the next one, so a passing
    outage of a server does not end it.
    """

    def __init__(
        self, chore: Hook, *, every: timedelta, name: str, first_at_start: bool = True
    ) -> None:
        self._chore = chore
        self._every = every.total_seconds()
        self._name = name
        self._first_at_start = first_at_start
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._forever(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _forever(self) -> None:
        if not self._first_at_start:
            await asyncio.sleep(self._every)
        while True:
            try:
                await self._chore()
            except Exception:
                log.exception("%s failed; trying again in %.0f s", self._name, self._every)
            await asyncio.sleep(self._every)
