"""Run the demo: virtual devices -> hub agent -> embedded broker -> ingester -> SQLite,
with a live terminal view and a live page; on ``--duration`` a summary and exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.live import Live

from edge.agent import EdgeAgent
from edge.settings import DeviceConfig, EdgeSettings, OutboxConfig
from gateway.contract.signing import Signer
from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.demo.broker import EmbeddedBroker, free_port
from gateway.demo.devices import DemoDevices
from gateway.demo.view import plain_line, render
from gateway.derived import ARROWS, direction, mmol_l, rate_mg_dl_per_min
from gateway.ingest.ingester import IngestConfig, Ingester
from gateway.ingest.mqtt_session import ReceiverConfig
from gateway.logs import setup_logging
from gateway.registry.service import Registry
from gateway.settings import DemoSettings
from gateway.store.sqlite import SqliteStore
from gateway.web.live import live_app

log = logging.getLogger(__name__)

HUB_ID = "demo-hub"
# Assignments start well before any simulated history.
ASSIGNED_FROM = datetime(2000, 1, 1, tzinfo=UTC)
DRAIN_DEADLINE_S = 60.0


@dataclass(frozen=True, slots=True)
class DemoSummary:
    produced: int
    read: int
    published: int
    stored: int
    duplicates: int
    quarantined: int
    lost: int
    data_dir: Path


class Demo:
    def __init__(self, settings: DemoSettings, console: Console) -> None:
        self.s = settings
        self.console = console
        self.started = time.monotonic()
        self.data_dir = settings.data_dir or Path(tempfile.mkdtemp(prefix="diatabase-demo-"))
        self.url = ""

    async def snapshot(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        patients = []
        for pid, devices in self.devices.by_patient().items():
            # The last day is all the view needs (and keeps this query small on long runs).
            series = await self.store.glucose_series(pid, now - timedelta(days=1))
            latest = series[-1] if series else None
            # Rate of change on the CGM's own clock: its intervals are real device minutes
            # even when simulated time runs faster than the hub's.
            cgm = [r for r in series if r.kind == "cgm" and r.mg_dl is not None][-6:]
            recent = [(r.device_time, r.mg_dl) for r in cgm if r.mg_dl is not None]
            trend = direction(rate_mg_dl_per_min(recent))
            patients.append(
                {
                    "patient_id": pid,
                    "mg_dl": latest.mg_dl if latest else None,
                    "mmol_l": round(mmol_l(latest.mg_dl), 1) if latest and latest.mg_dl else None,
                    "direction": trend.value,
                    "arrow": ARROWS[trend],
                    "age_s": (now - latest.time).total_seconds() if latest else None,
                    "readings": len(series),
                    "devices": devices,
                }
            )
        st = self.ingester.stats
        return {
            "speed": self.s.speed,
            "uptime_s": time.monotonic() - self.started,
            "url": self.url,
            "patients": patients,
            "counters": {
                "read": sum(t.state.records_read for t in self.agent.tasks),
                "published": self.agent.publisher.stats.readings,
                "stored": await self.store.count(),
                "duplicates": st.duplicates,
                "quarantined": st.quarantined_total,
                "parked": await self.registry.parked_count(),
                "outbox": self.agent.outbox.depth,
            },
        }

    async def run(self) -> DemoSummary:
        handler = setup_logging("INFO", self.data_dir / "demo.log")
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(_detach, handler)
            broker = await stack.enter_async_context(EmbeddedBroker())
            self.registry = Registry(StoreUrl.parse(f"sqlite:///{self.data_dir}/registry.db"))
            await self.registry.open()
            stack.push_async_callback(self.registry.close)
            self.store = SqliteStore(StoreUrl.parse(f"sqlite:///{self.data_dir}/readings.db"))
            await self.store.open()
            stack.push_async_callback(self.store.close)

            self.devices = await stack.enter_async_context(
                DemoDevices(
                    patients=self.s.patients, speed=self.s.speed, history_h=self.s.history_hours
                )
            )
            signer = Signer.load_or_create(self.data_dir / "hub-signing.key")
            await self.registry.add_hub(
                HUB_ID, public_key=signer.public_key_b64, require_signature=True, exist_ok=True
            )
            for dev in self.devices.devices:
                await self.registry.add_patient(dev.patient_id, exist_ok=True)
                await self.registry.add_device(dev.serial, dev.kind, hub_id=HUB_ID, exist_ok=True)
                if self.registry.link(dev.serial, datetime.now(UTC)) is None:
                    await self.registry.assign(dev.serial, dev.patient_id, ASSIGNED_FROM)

            edge_settings = EdgeSettings(
                hub_id=HUB_ID,
                mqtt=MqttUrl.parse(broker.url),
                mqtt_protocol="3.1.1",  # the embedded broker speaks only 3.1.1
                devices=[
                    DeviceConfig(kind=d.kind, address=d.address, poll_interval_s=d.poll_interval_s)
                    for d in self.devices.devices
                ],
                outbox=OutboxConfig(path=self.data_dir / "outbox.db"),
                signing_key=self.data_dir / "hub-signing.key",
            )
            self.agent = EdgeAgent(
                edge_settings,
                client_factory=self.devices.client_factory,
            )
            self.ingester = Ingester(
                ReceiverConfig(
                    mqtt=MqttUrl.parse(broker.url),
                    client_id="demo-ingester",
                    topics=Ingester.default_topics(),
                    receive_maximum=100,
                    protocol="3.1.1",
                ),
                self.store,
                self.registry,
                IngestConfig(linger_s=0.02),
            )
            port = self.s.port or free_port(self.s.host)
            self.url = f"http://{self.s.host}:{port}"
            server = uvicorn.Server(
                uvicorn.Config(
                    live_app(self.snapshot),
                    host=self.s.host,
                    port=port,
                    log_level="warning",
                    lifespan="off",
                )
            )
            tasks = [asyncio.create_task(self.ingester.run(), name="ingester")]
            # The ingester's session must exist before the hub publishes: a broker
            # delivers nothing to a subscription made after the fact.
            async with asyncio.timeout(30):
                while not self.ingester.receiver.connected:  # noqa: ASYNC110 - paho callback state
                    await asyncio.sleep(0.02)
            tasks += [
                asyncio.create_task(self.agent.run(), name="edge agent"),
                asyncio.create_task(server.serve(), name="web"),
            ]
            try:
                await self._show()
            except asyncio.CancelledError:
                # Ctrl-C: stop cleanly, drain, and still print the summary.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                self.console.print("[yellow]stopping: draining what the devices produced…[/]")
            finally:
                self.devices.pause()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._drain(), DRAIN_DEADLINE_S)
                server.should_exit = True
                self.ingester.stop()
                for t in tasks[1:2]:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            return await self._summary()

    async def _show(self) -> None:
        deadline = None if self.s.duration is None else time.monotonic() + self.s.duration
        self.console.print(
            f"[bold]Diatabase demo[/] · live page {self.url} · data in {self.data_dir}"
        )

        async def tick(period: float) -> bool:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            await asyncio.sleep(period if left is None else min(period, left))
            return True

        if self.console.is_terminal:
            with Live(
                render(await self.snapshot()), console=self.console, auto_refresh=False
            ) as live:
                while await tick(0.5):
                    live.update(render(await self.snapshot()), refresh=True)
        else:
            while await tick(5.0):
                self.console.print(plain_line(await self.snapshot()), soft_wrap=True)

    async def _drain(self) -> None:
        """Let every record the devices produced reach the store (bounded by the caller)."""
        await self.devices.sync_all(self.agent.tasks)
        truth = {t.key for t in self.devices.truth()}
        while True:
            stored = {r.key for r in await self.store.all_readings()}
            if truth <= stored and self.agent.outbox.depth == 0:
                return
            await asyncio.sleep(0.1)

    async def _summary(self) -> DemoSummary:
        store = SqliteStore(StoreUrl.parse(f"sqlite:///{self.data_dir}/readings.db"))
        await store.open()
        try:
            stored_rows = await store.all_readings()
        finally:
            await store.close()
        truth = self.devices.truth()
        stored = {r.key for r in stored_rows}
        summary = DemoSummary(
            produced=len(truth),
            read=sum(t.state.records_read for t in self.agent.tasks),
            published=self.agent.publisher.stats.readings,
            stored=len(stored_rows),
            duplicates=self.ingester.stats.duplicates,
            quarantined=self.ingester.stats.quarantined_total,
            lost=len({t.key for t in truth} - stored),
            data_dir=self.data_dir,
        )
        return summary


async def run_demo(settings: DemoSettings, console: Console) -> DemoSummary:
    summary = await Demo(settings, console).run()
    console.print(
        f"summary: produced {summary.produced}, read {summary.read}, "
        f"published {summary.published}, stored {summary.stored}, "
        f"duplicates {summary.duplicates}, quarantined {summary.quarantined}, lost {summary.lost}"
    )
    console.print(f"databases kept in {summary.data_dir}")
    return summary


def _detach(handler: logging.Handler) -> None:
    """Stop logging to this demo's file (it belongs to its data directory)."""
    logging.getLogger().removeHandler(handler)
    handler.close()
