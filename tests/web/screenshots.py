"""Screenshots of the web views for docs/screenshots/, from synthetic data.

    .venv/bin/python -m tests.web.screenshots [OUT_DIR]    # default docs/screenshots

Serves the real app over temporary SQLite databases and drives Debian's Chromium.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import async_playwright

from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.registry.service import QuarantineEntry, Registry
from gateway.store.sqlite import SqliteStore
from gateway.web.app import ServeSettings, WebServer, create_app
from gateway.web.ops import HubMonitor
from tests.web.conftest import CHROMIUM_ARGS, cgm

ROOT = Path(__file__).resolve().parents[2]


class _StaticMonitor(HubMonitor):
    """Hub statuses set by hand: no broker for a screenshot."""

    async def run(self) -> None:
        self.connected = True
        await asyncio.Event().wait()


def curve(i: int, base: float, swing: float, phase: float) -> float:
    # two meal peaks a day and a slow drift, in 5-minute steps
    t = i / 288 * 2 * math.pi
    return base + swing * math.sin(2 * t + phase) + 0.4 * swing * math.sin(5 * t + 1.3 * phase)


async def seed(store: SqliteStore, registry: Registry, now: datetime) -> None:
    end = now.replace(second=0, microsecond=0)
    profiles = {
        "P-0007": (150, 60, 0.0, 0),  # in range mostly
        "P-0013": (180, 90, 1.0, 0),  # high excursions
        "P-0021": (110, 40, 2.0, 0),  # ends low (see below)
        "P-0034": (140, 50, 3.0, 45),  # sensor stopped 45 min ago
    }
    for pid, (base, swing, phase, gap_min) in profiles.items():
        await registry.add_patient(pid)
        n = 14 * 288
        readings = []
        for i in range(n):
            t = end - timedelta(minutes=5 * (n - i)) - timedelta(minutes=gap_min)
            readings.append(cgm(pid, t, round(max(40.0, curve(i, base, swing, phase)))))
        await store.write(readings)
    # P-0021 falls into an urgent low over the last 20 minutes
    await store.write(
        [
            cgm("P-0021", end - timedelta(minutes=m), v)
            for m, v in ((15, 75), (10, 64), (5, 57), (0, 51))
        ]
    )
    await registry.start_alert("P-0021", "urgent_low", "urgent", end, value_mg_dl=51)
    await registry.start_alert(
        "P-0013", "high", "warning", end - timedelta(minutes=25), value_mg_dl=262
    )
    await registry.start_alert("P-0034", "stale", "warning", end - timedelta(minutes=25))
    await registry.quarantine(
        [
            QuarantineEntry(
                "schema_violation",
                "readings.3.value: Input should be a finite number",
                "diatabase/v1/hubs/hub-0042/readings",
                json.dumps({"schema": "diatabase.readings/v1", "hub_id": "hub-0042"}).encode(),
                hub_id="hub-0042",
            ),
            QuarantineEntry(
                "future_time", "time 27 min after sent_at", "t", b"{}", hub_id="hub-0042"
            ),
            QuarantineEntry("hub_mismatch", "payload hub_id hub-9 on hub-0042's topic", "t", b"{}"),
        ]
    )


async def main(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    with tempfile.TemporaryDirectory() as tmp:
        su = StoreUrl.parse(f"sqlite:///{tmp}/readings.db")
        ru = StoreUrl.parse(f"sqlite:///{tmp}/registry.db")
        store = await SqliteStore(su).open()
        registry = await Registry(ru).open()
        try:
            now = datetime.now(UTC)
            await seed(store, registry, now)
            monitor = _StaticMonitor(MqttUrl.parse("mqtt://127.0.0.1:1883"))
            for hub, online, depth in (("hub-0042", True, 3), ("hub-0043", False, 118)):
                status = {
                    "schema": "diatabase.status/v1",
                    "hub_id": hub,
                    "online": online,
                    "version": "0.1.0",
                    "sent_at": (now - timedelta(seconds=40 if online else 3000)).isoformat(),
                    "outbox_depth": depth,
                    "oldest_unsent_age_s": 12.0 if online else 3100.0,
                    "devices": [
                        {
                            "serial": f"CGM-{hub[-2:]}",
                            "kind": "cgm",
                            "connected": online,
                            "last_contact": (
                                now - timedelta(minutes=1 if online else 52)
                            ).isoformat(),
                            "battery_pct": 76 if online else 9,
                        },
                    ],
                }
                monitor.handle(f"diatabase/v1/hubs/{hub}/status", json.dumps(status).encode())
            app = create_app(store, registry, ServeSettings(store=su, registry=ru), monitor=monitor)
            shots = []
            async with WebServer(app) as server, async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                try:
                    page = await browser.new_page(viewport={"width": 1200, "height": 760})
                    for name, path in (
                        ("clinic", "/"),
                        ("patient", "/patients/P-0013"),
                        ("ops", "/ops"),
                        ("quarantine", "/ops/quarantine/1"),
                    ):
                        await page.goto(server.url + path)
                        if name == "clinic":
                            await page.locator('#live[data-state="live"]').wait_for()
                        target = out / f"{name}.png"
                        await page.screenshot(path=str(target), full_page=True)
                        shots.append(target)
                finally:
                    await browser.close()
            return shots
        finally:
            await registry.close()
            await store.close()


if __name__ == "__main__":
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    for p in asyncio.run(main(dest)):
        print(p)
