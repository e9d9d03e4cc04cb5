"""The web views: clinic (``/``), patient pages, ops, ``/metrics`` and the SSE feed.

``create_app`` takes stores that are already open; ``run_server`` (``diatabase serve``)
opens them, serves with uvicorn and closes them. Pages are rendered on the server as
plain HTML with inline SVG; the only script is ``static/clinic.js`` (no build step).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import uvicorn
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.alerts import ALERT_TOPIC, alert_state
from gateway.contract.urls import MqttUrl, MqttUrlField, StoreUrl, StoreUrlField
from gateway.registry.service import Registry
from gateway.report import as_json, load_agp
from gateway.settings import check_registry_url
from gateway.store.base import QueryStore
from gateway.web import clinic, ops, patient
from gateway.web.html import UNITS_COOKIE, Units, nav_links, page, unit_toggle, units_of
from gateway.web.nightscout import NightscoutApi
from gateway.web.publisher import PublishError, ReadingsPublisher
from gateway.web.sse import LiveFeed, sse_event, sse_stream

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIATABASE_", env_nested_delimiter="__", extra="forbid"
    )

    store: StoreUrlField = Field(default=StoreUrl.parse("sqlite:///var/diatabase/readings.db"))
    registry: StoreUrlField = Field(default=StoreUrl.parse("sqlite:///var/diatabase/registry.db"))
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535, description="0: any free port")
    mqtt: MqttUrlField | None = Field(default=None, description="watch hub status here")
    mqtt_client_id: str = Field(default="diatabase-web", min_length=1, max_length=64)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    units: Literal["mg/dL", "mmol/L"] = "mg/dL"
    poll_s: float = Field(default=0.5, gt=0, le=10, description="change polling period")
    refresh_s: float = Field(default=30.0, gt=0, description="re-send even without changes")
    stale_after_min: float = Field(default=20.0, gt=0)
    ops_window_s: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("store")
    @classmethod
    def _store_kind(cls, v: StoreUrl) -> StoreUrl:
        if v.scheme not in {"sqlite", "influxdb"}:
            raise ValueError(
                "the web views read sqlite:///path.db or influxdb://host:port/db "
                f"(influxdb2:// is write-only here), got {v.raw!r}"
            )
        return v

    @field_validator("registry")
    @classmethod
    def _registry_kind(cls, v: StoreUrl) -> StoreUrl:
        return check_registry_url(v)


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _html(
    request: Request, title: str, body: str, active: str, units: Units | None = None
) -> Response:
    resp = HTMLResponse(page(title, body, nav=nav_links(active)))
    if units is not None and "units" in request.query_params:
        resp.set_cookie(
            UNITS_COOKIE, "mmol" if units == "mmol/L" else "mg", max_age=365 * 86400, samesite="lax"
        )
    return _no_store(resp)


def _parse_end(raw: str | None) -> datetime | None:
    if not raw:
        return None
    # a "+" left unencoded in a query string arrives as a space
    dt = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _same_origin(request: Request) -> bool:
    """Browsers send Origin on POST; refuse one from another site (a cross-site form)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


def create_app(
    store: QueryStore,
    registry: Registry,
    settings: ServeSettings,
    *,
    monitor: ops.HubMonitor | None = None,
) -> Starlette:
    """``monitor``: a hub status monitor to use; by default one is made when ``settings.mqtt``."""
    stale_after = timedelta(minutes=settings.stale_after_min)
    if monitor is None and settings.mqtt is not None:
        monitor = ops.HubMonitor(
            settings.mqtt,
            client_id=settings.mqtt_client_id,
            ca_file=settings.ca_file,
            cert_file=settings.cert_file,
            key_file=settings.key_file,
        )

    async def snapshot() -> clinic.ClinicSnapshot:
        return await clinic.build_snapshot(store, registry, stale_after=stale_after)

    async def marker() -> object:
        return (await store.change_marker(), await clinic.registry_marker(registry))

    # the Nightscout upload API publishes to the broker the hubs use (503 without one)
    publisher = (
        ReadingsPublisher(
            settings.mqtt,
            client_id=settings.mqtt_client_id,
            ca_file=settings.ca_file,
            cert_file=settings.cert_file,
            key_file=settings.key_file,
        )
        if settings.mqtt is not None
        else None
    )
    nightscout = NightscoutApi(store, registry, publisher)

    feed: LiveFeed[clinic.ClinicSnapshot] = LiveFeed(
        marker, snapshot, poll_s=settings.poll_s, refresh_s=settings.refresh_s
    )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(feed)
            if monitor is not None:
                await stack.enter_async_context(monitor)
            if publisher is not None:
                await stack.enter_async_context(publisher)
            yield

    # -- clinic -------------------------------------------------------------------------------
    async def index(request: Request) -> Response:
        units = units_of(request, settings.units)
        body = clinic.render_page_body(await snapshot(), units, unit_toggle(request, units))
        return _html(request, "Clinic", body, "clinic", units)

    async def api_clinic(request: Request) -> Response:
        snap = await snapshot()
        rows = []
        for r in snap.rows:
            d = asdict(r)
            d["age_s"] = r.age_s(snap.at)
            d["stale"] = r.stale(snap.at, snap.stale_after)
            rows.append(d)
        return _no_store(JSONResponse(_jsonable({"at": snap.at, "rows": rows})))

    async def events(request: Request) -> Response:
        units = units_of(request, settings.units)

        def render(snap: clinic.ClinicSnapshot) -> str:
            return sse_event(
                "clinic",
                {
                    "at": snap.at.isoformat(),
                    "rows": clinic.render_rows(snap, units),
                    "patients": len(snap.rows),
                },
            )

        return StreamingResponse(
            sse_stream(feed.subscribe(), render),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def ack(request: Request) -> Response:
        if not _same_origin(request):
            return PlainTextResponse("cross-origin request refused", status_code=403)
        alert_id = request.path_params["alert_id"]
        # who: the reverse proxy's authenticated user when there is one
        by = request.headers.get("x-forwarded-user") or "web"
        row = await registry.acknowledge_alert(alert_id, by, datetime.now(UTC))
        wants_json = "application/json" in request.headers.get("accept", "")
        if row is None:
            msg = {"error": f"alert {alert_id} is not open"}
            return (
                JSONResponse(msg, status_code=404)
                if wants_json
                else PlainTextResponse(msg["error"], 404)
            )
        if publisher is not None:
            # The retained alert state is what pagers and other clinics' screens watch.
            # The registry holds the acknowledgement either way; a broker that is down
            # only delays it there until the patient's next alert change.
            payload = await alert_state(registry, row.patient_id, row, "acknowledged")
            try:
                await publisher.publish(
                    ALERT_TOPIC.format(patient=row.patient_id), payload, retain=True
                )
            except PublishError as err:
                log.warning("alert %s acknowledged; not republished: %s", row.id, err)
        if wants_json:
            return JSONResponse(
                {
                    "id": row.id,
                    "acknowledged_at": row.acknowledged_at.isoformat()
                    if row.acknowledged_at
                    else None,
                    "acknowledged_by": row.acknowledged_by,
                }
            )
        return RedirectResponse("/", status_code=303)

    # -- patient ------------------------------------------------------------------------------
    def _period(request: Request) -> tuple[float, datetime | None]:
        days = float(request.query_params.get("days", "14"))
        if not 0 < days <= 366:
            raise ValueError("days must be in (0, 366]")
        return days, _parse_end(request.query_params.get("end"))

    async def patient_page(request: Request) -> Response:
        pid = request.path_params["patient_id"]
        units = units_of(request, settings.units)
        try:
            days, end = _period(request)
        except ValueError as err:
            return PlainTextResponse(f"bad query: {err}", status_code=400)
        end = end or datetime.now(UTC)
        start = end - timedelta(hours=24)
        series = await store.glucose_series(pid, start, end)
        agp = await load_agp(store, pid, days=days, end=end)
        known = {p.id for p in await registry.list_patients()}
        if pid not in known and not series and agp.readings == 0:
            return PlainTextResponse(f"unknown patient {pid!r}", status_code=404)
        alerts = await patient.patient_alerts(registry, pid)
        body = patient.render_body(
            pid,
            series=series,
            chart_start=start,
            chart_end=end,
            agp=agp,
            days=days,
            alerts=alerts,
            units=units,
            toggle=unit_toggle(request, units),
        )
        return _html(request, f"Patient {pid}", body, "clinic", units)

    async def api_agp(request: Request) -> Response:
        try:
            days, end = _period(request)
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        pid = request.path_params["patient_id"]
        agp = await load_agp(store, pid, days=days, end=end)
        return _no_store(Response(as_json(pid, agp), media_type="application/json"))

    # -- ops ----------------------------------------------------------------------------------
    async def figures() -> ops.OpsFigures:
        return await ops.gather(store, registry, monitor, window_s=settings.ops_window_s)

    async def ops_page(request: Request) -> Response:
        return _html(request, "Ops", ops.render_ops(await figures()), "ops")

    async def quarantine_list(request: Request) -> Response:
        reason = request.query_params.get("reason") or None
        rows = await registry.quarantine_list(reason=reason, limit=200)
        return _html(request, "Quarantine", ops.render_quarantine_list(reason, rows), "ops")

    async def quarantine_entry(request: Request) -> Response:
        row = await registry.quarantine_get(request.path_params["qid"])
        if row is None:
            return PlainTextResponse("no such quarantine entry", status_code=404)
        return _html(request, f"Quarantine {row.id}", ops.render_quarantine_entry(row), "ops")

    async def metrics(_: Request) -> Response:
        return Response(
            ops.prometheus_text(await figures()),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    static = StaticFiles(directory=str(files("gateway.web").joinpath("static")))
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/clinic", api_clinic),
            Route("/events", events),
            Route("/api/alerts/{alert_id:int}/ack", ack, methods=["POST"]),
            Route("/patients/{patient_id}", patient_page),
            Route("/api/patients/{patient_id}/agp", api_agp),
            Route("/ops", ops_page),
            Route("/ops/quarantine", quarantine_list),
            Route("/ops/quarantine/{qid:int}", quarantine_entry),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            *nightscout.routes(),
            Mount("/static", static, name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.feed = feed
    app.state.monitor = monitor
    return app


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


class WebServer:
    """uvicorn on a socket bound before it starts, so the port is known (``port=0`` works)
    and early connections wait in the backlog instead of failing."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.sock = socket.create_server((host, port), reuse_port=False)
        self.host, self.port = self.sock.getsockname()[:2]
        feed: LiveFeed[Any] = app.state.feed

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                # As uvicorn's, minus re-raising the signal after serving: that would kill
                # the process before run_server closes the stores; SIGTERM exits 0 instead.
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                old = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
                try:
                    yield
                finally:
                    for sig, handler in old.items():
                        signal.signal(sig, handler)

            def handle_exit(self, sig: int, frame: Any) -> None:
                # end the SSE streams first, or shutdown waits for them to time out
                with contextlib.suppress(RuntimeError):
                    asyncio.get_running_loop().call_soon_threadsafe(feed.close)
                super().handle_exit(sig, frame)

        self.server = _Server(
            uvicorn.Config(
                app,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=3,
                access_log=False,
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def serve(self) -> None:
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            self.sock.close()

    async def __aenter__(self) -> WebServer:
        self._task = asyncio.create_task(self.serve(), name="web server")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.app.state.feed.close()
        self.server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None


async def run_server(settings: ServeSettings) -> None:
    from gateway.store.base import open_store

    store: Any = open_store(settings.store)
    registry = Registry(settings.registry, actor="web")
    await store.open()
    try:
        await registry.open()
        try:
            server = WebServer(create_app(store, registry, settings), settings.host, settings.port)
            log.info("web views on %s (store %s)", server.url, settings.store)
            await server.serve()
        finally:
            await registry.close()
    finally:
        await store.close()


__all__ = ["MqttUrl", "ServeSettings", "WebServer", "create_app", "run_server"]
