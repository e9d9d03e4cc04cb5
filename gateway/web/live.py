"""The live page: per patient latest glucose, trend, age of the last reading; counters.

Serves ``/`` (a static page, no build step) and ``/api/live`` (the JSON snapshot the page
polls every second; the terminal view renders the same snapshot).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

Snapshot = Callable[[], Awaitable[dict[str, Any]]]


def live_app(snapshot: Snapshot) -> Starlette:
    page = files("gateway.web").joinpath("static/live.html").read_text()

    async def index(_: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def api_live(_: Request) -> JSONResponse:
        return JSONResponse(await snapshot(), headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route("/", index), Route("/api/live", api_live)])
