"""Web view fixtures: real SQLite store and registry, the real app on uvicorn, Chromium.

The app opens its own connections to the two databases; tests write through separate
ones, as the ingester (another process) would.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.contract.urls import StoreUrl
from gateway.registry.service import Registry
from gateway.store.base import StoredReading
from gateway.store.sqlite import SqliteStore
from gateway.web.app import ServeSettings, WebServer, create_app
from tests.browser import CHROMIUM_ARGS


def cgm(
    patient: str, time: datetime, mg_dl: float, *, serial: str | None = None, batch: str = "b-1"
) -> StoredReading:
    """A stored CGM reading (synthetic), keyed by patient and time."""
    return StoredReading(
        key=hashlib.sha256(f"{patient}|{time.isoformat()}".encode()).hexdigest()[:32],
        patient_id=patient,
        hub_id="hub-1",
        serial=serial or f"CGM-{patient}",
        device_kind="cgm",
        kind="cgm",
        time=time,
        device_time=time.replace(tzinfo=None),
        clock_offset_s=0.0,
        value=mg_dl,
        unit="mg/dL",
        mg_dl=mg_dl,
        batch_id=batch,
    )


@dataclass
class Web:
    url: str
    store: SqliteStore  # the "ingester's" connection
    registry: Registry
    app: Any
    settings: ServeSettings
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def db_urls(tmp_path: Path) -> tuple[StoreUrl, StoreUrl]:
    return (
        StoreUrl.parse(f"sqlite:///{tmp_path}/readings.db"),
        StoreUrl.parse(f"sqlite:///{tmp_path}/registry.db"),
    )


@pytest.fixture
async def writer(db_urls: tuple[StoreUrl, StoreUrl]) -> AsyncIterator[tuple[SqliteStore, Registry]]:
    store = await SqliteStore(db_urls[0]).open()
    registry = await Registry(db_urls[1], actor="test").open()
    yield store, registry
    await registry.close()
    await store.close()


@pytest.fixture
async def make_web(
    db_urls: tuple[StoreUrl, StoreUrl], writer: tuple[SqliteStore, Registry]
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_web(**settings)``: the app served on a free port; stopped after the test."""
    opened: list[Any] = []

    async def make(**overrides: Any) -> Web:
        settings = ServeSettings(store=db_urls[0], registry=db_urls[1], **overrides)
        app_store = await SqliteStore(db_urls[0]).open()
        app_registry = await Registry(db_urls[1], actor="web").open()
        opened.extend([app_registry, app_store])
        server = WebServer(create_app(app_store, app_registry, settings))
        await server.__aenter__()
        opened.insert(0, server)
        return Web(server.url, writer[0], writer[1], server.app, settings)

    yield make
    for thing in opened:
        if isinstance(thing, WebServer):
            await thing.__aexit__(None, None, None)
        else:
            await thing.close()


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    p = await context.new_page()
    yield p
    await context.close()
