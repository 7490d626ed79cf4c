"""A service's routes mounted on the host's app as its own: same answers, same reference."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.routing import APIRoute
from pydantic import BaseModel

from insights_common.service import merged, mount

pytestmark = pytest.mark.unit


class Item(BaseModel):
    name: str


class NamedRoute(APIRoute):
    """A route class of the service's own, kept by the mounted route."""


def caller(x_caller: Annotated[str, Header()]) -> str:
    return x_caller


def service() -> APIRouter:
    items = APIRouter(tags=["items"], route_class=NamedRoute)

    @items.get("/items/{name}", response_model=Item, responses={404: {"description": "No."}})
    async def get_item(name: str, who: Annotated[str, Depends(caller)]) -> Item:
        return Item(name=f"{name} for {who}")

    others = APIRouter(tags=["others"])

    @others.post("/others", status_code=201)
    async def add_other() -> dict[str, bool]:
        return {"added": True}

    return merged(items, others)


def included() -> FastAPI:
    app = FastAPI()
    app.include_router(service(), prefix="/api/v1")
    return app


def mounted() -> FastAPI:
    app = FastAPI()
    mount(app, service(), prefix="/api/v1")
    return app


async def test_mounted_routes_answer_as_included_ones() -> None:
    for app in (included(), mounted()):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            got = await client.get("/api/v1/items/pen", headers={"x-caller": "ana"})
            assert (got.status_code, got.json()) == (200, {"name": "pen for ana"})
            assert (await client.get("/api/v1/items/pen")).status_code == 422
            assert (await client.post("/api/v1/others")).status_code == 201
            assert (await client.get("/items/pen")).status_code == 404


def test_mounted_routes_are_the_apps_own_with_the_same_reference() -> None:
    app = mounted()
    routes = [route for route in app.routes if isinstance(route, APIRoute)]
    assert [route.path for route in routes if route.path.startswith("/api")] == [
        "/api/v1/items/{name}",
        "/api/v1/others",
    ]
    assert isinstance(routes[-2], NamedRoute)
    assert mounted().openapi()["paths"] == included().openapi()["paths"]


def test_only_path_operations_are_mounted() -> None:
    outer = APIRouter()
    outer.include_router(service())
    with pytest.raises(TypeError, match="only path operations"):
        mount(FastAPI(), outer, prefix="/api/v1")
