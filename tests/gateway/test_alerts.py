"""Alert engine over a real registry: start, de-duplicate, clear, stale on a timer,
device annunciations, backfill does not ring, thresholds per patient."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.alerts import AlertConfig, AlertEngine
from gateway.cli.admin import registry_app
from gateway.contract.urls import StoreUrl
from gateway.registry.service import Registry
from gateway.store.base import StoredReading

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def reading(
    minutes_ago: float, mg: float, *, patient: str = "P-1", status: tuple[str, ...] = ()
) -> StoredReading:
    t = NOW - timedelta(minutes=minutes_ago)
    return StoredReading(
        key=f"{patient}-{minutes_ago}",
        patient_id=patient,
        hub_id="hub-1",
        serial="CGM1",
        device_kind="cgm",
        kind="cgm",
        time=t,
        device_time=t.replace(tzinfo=None),
        clock_offset_s=0.0,
        value=mg,
        unit="mg/dL",
        mg_dl=mg,
        status=status,
    )


class Published:
    """Collects what the engine hands to its MQTT publish seam."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, object], bool]] = []

    def __call__(self, topic: str, payload: bytes, retain: bool) -> bool:
        self.messages.append((topic, json.loads(payload), retain))
        return True


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    reg = Registry(StoreUrl.parse(f"sqlite:///{tmp_path}/r.db"))
    await reg.open()
    await reg.add_patient("P-1")
    await reg.add_patient("P-2")
    await reg.add_device("CGM1", "cgm")
    await reg.assign("CGM1", "P-1", NOW - timedelta(days=30))
    yield reg
    await reg.close()


async def kinds(reg: Registry, patient: str = "P-1") -> list[str]:
    return sorted(a.kind for a in await reg.open_alerts(patient))


async def test_low_starts_once_and_clears(registry: Registry) -> None:
    pub = Published()
    engine = AlertEngine(registry, pub, clock=lambda: NOW)
    await engine.on_stored([reading(10, 65)])
    await engine.on_stored([reading(5, 62)])  # still low: same episode
    assert await kinds(registry) == ["low"]
    assert len([m for m in pub.messages if m[1]["changed"]["change"] == "started"]) == 1  # type: ignore[index]
    topic, body, retain = pub.messages[-1]
    assert [a["kind"] for a in body["open"]] == ["low"]  # type: ignore[index,union-attr]
    assert topic == "diatabase/v1/alerts/P-1" and retain
    await engine.on_stored([reading(0, 95)])
    assert await kinds(registry) == []
    assert pub.messages[-1][1]["open"] == []


async def test_urgent_low_and_rapid_fall(registry: Registry) -> None:
    engine = AlertEngine(registry, clock=lambda: NOW)
    # 120 -> 50 over 15 minutes: about -4.7 mg/dL/min and below 54.
    await engine.on_stored([reading(15, 120), reading(10, 100), reading(5, 75), reading(0, 50)])
    assert await kinds(registry) == ["rapid_fall", "urgent_low"]


async def test_backfilled_old_low_does_not_ring(registry: Registry) -> None:
    engine = AlertEngine(registry, clock=lambda: NOW)
    await engine.on_stored([reading(6 * 60, 45)])  # six hours old
    assert await kinds(registry) == []


async def test_per_patient_high_threshold(registry: Registry) -> None:
    await registry.set_thresholds("P-1", low_mg_dl=None, high_mg_dl=200)
    engine = AlertEngine(registry, clock=lambda: NOW)
    await engine.on_stored([reading(0, 210)])
    await engine.on_stored([reading(0, 210, patient="P-2")])
    assert await kinds(registry, "P-1") == ["high"]
    assert await kinds(registry, "P-2") == []  # default 250


async def test_stale_is_checked_on_a_timer(registry: Registry) -> None:
    now = [NOW]
    engine = AlertEngine(registry, clock=lambda: now[0], config=AlertConfig())
    await engine.on_stored([reading(0, 100)])
    await engine.check_stale()
    assert await kinds(registry) == []
    now[0] = NOW + timedelta(minutes=21)  # no reading for 21 minutes
    await engine.check_stale()
    assert await kinds(registry) == ["stale"]
    await engine.on_stored([reading(-21, 110)])
    assert await kinds(registry) == []


async def test_device_annunciation_and_acknowledge(registry: Registry) -> None:
    engine = AlertEngine(registry, clock=lambda: NOW)
    await engine.on_stored([reading(0, 100, status=("sensor_malfunction",))])
    (alert,) = await registry.open_alerts("P-1")
    assert alert.kind == "sensor_fault"
    acked = await registry.acknowledge_alert(alert.id, "nurse-7", NOW)
    assert acked is not None and acked.acknowledged_by == "nurse-7"
    assert (await registry.open_alerts("P-1"))[0].acknowledged_at is not None


class Receiver:
    """A real HTTP endpoint on loopback for the webhook: answers each POST with the next
    status of ``statuses`` (then 204), after ``release`` is set."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict[str, object]] = []
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = int(re.search(r"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        assert head.startswith("POST /hook ") and "application/json" in head
        self.bodies.append(json.loads(await reader.readexactly(length)))
        self.arrived.set()
        await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else 204
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()


async def test_webhook_gets_every_alert_change_and_retries(registry: Registry) -> None:
    async with Receiver(statuses=[500]) as hook:
        engine = AlertEngine(
            registry,
            config=AlertConfig(webhook_url=hook.url, webhook_retry_s=0.01),
            clock=lambda: NOW,
        )
        await engine.on_stored([reading(5, 65)])  # low starts
        await engine.on_stored([reading(0, 72)])  # low clears
        await engine.close()  # waits for the queued notices
        # the first POST got a 500 and was sent again: three POSTs for two changes
        changes = [(b["changed"]["kind"], b["changed"]["change"]) for b in hook.bodies]  # type: ignore[index]
        assert changes == [("low", "started"), ("low", "started"), ("low", "cleared")]
        assert hook.bodies[0]["patient"] == "P-1"
        assert (engine.webhook.sent, engine.webhook.retries, engine.webhook.failed) == (2, 1, 0)


async def test_a_stuck_webhook_does_not_hold_up_ingest(registry: Registry) -> None:
    async with Receiver() as hook:
        hook.release.clear()  # the receiver takes the request and does not answer
        engine = AlertEngine(registry, config=AlertConfig(webhook_url=hook.url), clock=lambda: NOW)
        await engine.on_stored([reading(5, 65)])
        await hook.arrived.wait()
        # on_stored returned while the POST is still unanswered
        await engine.on_stored([reading(0, 72)])
        assert await kinds(registry) == []
        assert engine.webhook.sent == 0
        hook.release.set()
        await engine.close()
        assert engine.webhook.sent == 2


async def test_device_alert_clears_when_the_same_device_reports_without_it(
    registry: Registry,
) -> None:
    await registry.add_device("BG1", "glucose_meter")
    await registry.assign("BG1", "P-1", NOW - timedelta(days=30))
    engine = AlertEngine(registry, clock=lambda: NOW)
    await engine.on_stored([reading(10, 100, status=("device_battery_low",))])
    assert await kinds(registry) == ["battery_low"]
    # an older backfilled reading, or another device of the patient, does not clear it
    await engine.on_stored([reading(20, 100)])
    meter = reading(5, 100)._replace(serial="BG1", kind="bg", device_kind="glucose_meter")
    await engine.on_stored([meter._replace(key="bg-5")])
    assert await kinds(registry) == ["battery_low"]
    # a restarted engine knows the open episode from the registry
    engine = AlertEngine(registry, clock=lambda: NOW)
    await engine.on_stored([reading(0, 100)])
    assert await kinds(registry) == []


def test_thresholds_cli_sets_what_the_engine_uses(tmp_path: Path) -> None:
    reg = ["--registry", f"sqlite:///{tmp_path}/cli.db"]
    runner = CliRunner()
    assert runner.invoke(registry_app, ["patient", "add", "P-9", *reg]).exit_code == 0
    out = runner.invoke(registry_app, ["patient", "thresholds", "P-9", "--high", "180", *reg])
    assert out.exit_code == 0, out.output
    assert "high 180 mg/dL" in out.output
    args = ["patient", "thresholds", "P-9", "--low", "150", "--high", "130", *reg]
    bad = runner.invoke(registry_app, args)
    assert bad.exit_code == 2 and "must be below" in bad.output
    unknown = runner.invoke(registry_app, ["patient", "thresholds", "P-X", "--low", "80", *reg])
    assert unknown.exit_code == 2 and "P-X" in unknown.output

    async def check() -> tuple[float | None, float | None]:
        async with Registry(StoreUrl.parse(f"sqlite:///{tmp_path}/cli.db")) as r:
            await r.refresh(force=True)
            return r.thresholds("P-9")

    assert asyncio.run(check()) == (None, 180.0)
