"""The hub's retained status (every field operators see), its Last Will, and live CGM
readings leaving the hub within a second of arrival (issue 4, points 4 and 5), with a
real Mosquitto and virtual devices."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from drivers.virtual import SimClock, VirtualWorld
from edge.device_task import local_clock_estimate
from edge.settings import DeviceConfig, PublishConfig
from gateway import __version__
from gateway.contract.urls import MqttUrl
from gateway.contract.v1 import HubStatus, Reading, reading_key, topic_readings, topic_status
from tests.asyncutil import until
from tests.edge.test_durability import (
    edge_settings,
    quick_agent,
    running,
    start_hub,
    stop_hub,
    subscriber,
    truth_keys,
)
from tests.harness import MosquittoServer

pytestmark = pytest.mark.ble


class StatusWatcher:
    """Every status message on a hub's retained status topic, decoded."""

    def __init__(self, url: str, hub_id: str) -> None:
        self.seen: list[HubStatus] = []
        self._lock = threading.Lock()
        u = MqttUrl.parse(url)
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"watch-{hub_id}")
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(topic_status(hub_id), qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(u.host, u.port)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        status = HubStatus.model_validate_json(message.payload)
        with self._lock:
            self.seen.append(status)

    def last(self) -> HubStatus | None:
        with self._lock:
            return self.seen[-1] if self.seen else None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextmanager
def watching(url: str, hub_id: str) -> Iterator[StatusWatcher]:
    watcher = StatusWatcher(url, hub_id)
    try:
        yield watcher
    finally:
        watcher.close()


async def test_status_carries_every_field_and_readings_carry_the_clock_offset(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    clock = SimClock()  # real time: the device clocks differ from the hub's only by their error
    async with VirtualWorld(clock) as world:
        cgm = await world.add_cgm("CGM-ST", history=timedelta(minutes=30), battery_pct=55)
        meter = await world.add_meter(
            "BG-ST", history=timedelta(days=1), battery_pct=40, clock_error=timedelta(seconds=-90)
        )
        # No Current Time Service: the documented estimate (the hub's local wall time).
        plain = await world.add_meter("BG-NC", history=timedelta(days=1), has_cts=False)
        settings = edge_settings(
            tmp_path,
            mosquitto.url,
            [
                DeviceConfig(kind="cgm", address=cgm.address),
                DeviceConfig(kind="glucose_meter", address=meter.address, poll_interval_s=3600),
                DeviceConfig(kind="glucose_meter", address=plain.address, poll_interval_s=3600),
            ],
            publish=PublishConfig(status_interval_s=1),
        )
        agent = quick_agent(settings, world)

        def synced() -> HubStatus | None:
            last = watcher.last()
            if last is None or len(last.devices) != 3:
                return None
            return last if all(d.last_sync is not None for d in last.devices) else None

        with watching(mosquitto.url, settings.hub_id) as watcher:
            async with (
                subscriber(mosquitto.url, topic_readings(settings.hub_id)) as sub,
                running(agent),
            ):
                await until(lambda: synced() is not None, 30, "a status after every sync")
                expected = {
                    reading_key(
                        p.serial,
                        p.kind,
                        sequence=p.sequence,
                        session_start=p.session_start,
                        time_offset_min=p.time_offset_min,
                        device_time=p.device_time,
                    )
                    for p in world.produced()
                    if p.serial in {"BG-ST", "BG-NC"}
                }
                await until(lambda: expected <= sub.keys(), 30, "the meters' readings")
                readings = [r for b in sub.batches for r in b.readings]
        status = synced()
    assert status is not None and status.online
    assert status.version == __version__
    assert status.uptime_s is not None and status.uptime_s > 0
    assert status.outbox_depth is not None and status.outbox_depth >= 0
    assert status.oldest_unsent_age_s is None or status.oldest_unsent_age_s >= 0
    assert status.sent_at is not None
    by_serial = {d.serial: d for d in status.devices}
    assert set(by_serial) == {"CGM-ST", "BG-ST", "BG-NC"}
    assert by_serial["CGM-ST"].kind == "cgm" and by_serial["BG-ST"].kind == "glucose_meter"
    assert by_serial["CGM-ST"].battery_pct == 55 and by_serial["BG-ST"].battery_pct == 40
    for d in by_serial.values():
        assert d.last_contact is not None and d.last_sync is not None
        assert d.last_contact <= status.sent_at and d.cursor is not None
    # The meter's clock runs 90 s behind the hub's, measured through its Current Time.
    offset = by_serial["BG-ST"].clock_offset_s
    assert offset is not None and abs(offset - 90) < 3, offset

    # Every reading carries the offset measured at its sync, its corrected time, and the
    # key from the device's own fields (truth_keys: the virtual devices' ground truth).
    by_device: dict[str, list[Reading]] = {}
    for r in readings:
        by_device.setdefault(r.device.serial, []).append(r)
    assert {r.key for r in by_device["BG-ST"] + by_device["BG-NC"]} == expected
    for r in by_device["BG-ST"]:
        assert r.clock_offset_s == offset
        assert r.time == (r.device_time + timedelta(seconds=offset)).replace(tzinfo=UTC)
    for r in by_device["BG-NC"]:
        assert r.clock_offset_s == local_clock_estimate(r.device_time)


@pytest.mark.slow
async def test_the_last_will_says_offline_when_the_hub_dies(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    with watching(mosquitto.url, "hub-kill") as watcher:
        hub = start_hub(tmp_path, mosquitto.url, 1)  # the real `diatabase edge run`
        try:
            await until(lambda: watcher.last() is not None, 60, "the hub's first status")
            first = watcher.last()
            assert first is not None and first.online and first.version == __version__
            os.kill(hub.pid, signal.SIGKILL)  # no DISCONNECT: the broker sends the will
            hub.wait(10)
            await until(lambda: not getattr(watcher.last(), "online", True), 30, "the will")
        finally:
            stop_hub(hub)
    last = watcher.last()
    assert last is not None and not last.online and last.hub_id == "hub-kill"


async def test_live_cgm_readings_leave_the_hub_within_a_second(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    clock = SimClock(datetime.now(UTC), speed=60)  # a CGM reading every 5 s
    async with VirtualWorld(clock) as world:
        cgm = await world.add_cgm("CGM-LV", history=timedelta(hours=1))
        settings = edge_settings(
            tmp_path, mosquitto.url, [DeviceConfig(kind="cgm", address=cgm.address)]
        )
        agent = quick_agent(settings, world)
        async with (
            subscriber(mosquitto.url, topic_readings(settings.hub_id)) as sub,
            running(agent),
        ):
            await until(lambda: truth_keys(world) <= sub.keys(), 30, "the backfill delivered")
            delays = []
            for _ in range(3):
                before = truth_keys(world)
                await cgm.wait_produced(len(cgm.produced) + 1)  # the sensor measures
                arrived = time.monotonic()
                new = truth_keys(world) - before
                await until(lambda n=new: n <= sub.keys(), 10, "the live reading")
                delays.append(time.monotonic() - arrived)
    assert max(delays) < 1.0, delays
