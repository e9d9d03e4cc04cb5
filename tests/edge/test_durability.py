"""Issue 4 durability: the hub agent loses nothing and stores nothing twice across a broker
outage, a kill -9 of the agent in the middle of a backlog, a full outbox and a week offline.

Real Mosquitto (tests/harness), virtual BLE peripherals on bumble, the real outbox and
publisher; the ingester, SQLite store and SQLite registry run in-process as in the demo.
Ground truth is what the virtual devices produced (``VirtualWorld.produced``), keyed with
``gateway.contract.v1.reading_key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from drivers.virtual import SimClock, VirtualWorld
from edge.agent import EdgeAgent
from edge.device_task import DeviceTask
from edge.outbox import Outbox
from edge.settings import DeviceConfig, EdgeSettings, OutboxConfig, PublishConfig
from gateway.contract.signing import Signer
from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.contract.v1 import ReadingsBatch, reading_key, topic_readings
from gateway.ingest.ingester import IngestConfig, Ingester
from gateway.ingest.mqtt_session import ReceiverConfig
from gateway.registry.service import Registry
from gateway.store.sqlite import SqliteStore
from tests.asyncutil import until
from tests.factories import cgm_reading
from tests.harness import MosquittoServer

pytestmark = pytest.mark.ble

ROOT = Path(__file__).resolve().parents[2]
ASSIGNED_FROM = datetime(2000, 1, 1, tzinfo=UTC)
START = datetime(2026, 3, 1, 8, 0)


def truth_keys(world: VirtualWorld) -> set[str]:
    return {
        reading_key(
            p.serial,
            p.kind,
            sequence=p.sequence,
            session_start=p.session_start,
            time_offset_min=p.time_offset_min,
            device_time=p.device_time,
        )
        for p in world.produced()
    }


class Subscriber:
    """A paho subscriber with a persistent session (it survives broker restarts and
    resubscribes on every connect) that keeps every readings batch it receives."""

    def __init__(self, url: str, topic: str, client_id: str = "durability-collector") -> None:
        self.batches: list[ReadingsBatch] = []
        self._lock = threading.Lock()
        u = MqttUrl.parse(url)
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.reconnect_delay_set(1, 1)
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(u.host, u.port)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        batch = ReadingsBatch.model_validate_json(message.payload)
        with self._lock:
            self.batches.append(batch)

    def keys(self) -> set[str]:
        with self._lock:
            return {r.key for b in self.batches for r in b.readings}

    def count(self) -> int:
        with self._lock:
            return sum(len(b.readings) for b in self.batches)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextlib.asynccontextmanager
async def subscriber(url: str, topic: str) -> AsyncIterator[Subscriber]:
    sub = Subscriber(url, topic)
    try:
        await until(sub.subscribed.is_set, what="collector subscribed")
        yield sub
    finally:
        sub.close()


def edge_settings(
    tmp_path: Path, url: str, devices: Iterable[DeviceConfig], **kw: object
) -> EdgeSettings:
    return EdgeSettings(
        hub_id="hub-dur",
        mqtt=MqttUrl.parse(url),
        devices=list(devices),
        outbox=kw.pop("outbox", OutboxConfig(path=tmp_path / "outbox.db")),  # type: ignore[arg-type]
        signing_key=tmp_path / "hub-signing.key",
        **kw,  # type: ignore[arg-type]
    )


def quick_agent(settings: EdgeSettings, world: VirtualWorld) -> EdgeAgent:
    """The agent as shipped; only its reconnect backoff is capped at 1 s so that the test
    does not wait for a 30 s backoff step after the broker is back."""
    agent = EdgeAgent(settings, client_factory=world.client_factory)
    agent.publisher.config = replace(
        agent.publisher.config, backoff_initial_s=0.2, backoff_max_s=1.0
    )
    return agent


@contextlib.asynccontextmanager
async def running(agent: EdgeAgent) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(agent.run(), name="edge agent")
    try:
        yield task
    finally:
        for t in agent.tasks:
            t.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def sync_polled(tasks: Iterable[DeviceTask]) -> None:
    """One more complete sync of every polled device (the clock is paused by then)."""
    polled = [t for t in tasks if t.config.kind != "cgm"]
    before = {id(t): t.syncs for t in polled}
    for t in polled:
        t.wake()
    await until(lambda: all(t.syncs > before[id(t)] for t in polled), 30, "polled devices synced")


@dataclass
class Backend:
    store: SqliteStore
    registry: Registry
    ingester: Ingester

    async def stored_keys(self) -> list[str]:
        return [r.key for r in await self.store.all_readings()]


@contextlib.asynccontextmanager
async def backend(tmp_path: Path, url: str) -> AsyncIterator[Backend]:
    """Ingester over the real broker into SQLite, registry on SQLite (as the demo)."""
    registry = Registry(StoreUrl.parse(f"sqlite:///{tmp_path}/registry.db"))
    await registry.open()
    store = SqliteStore(StoreUrl.parse(f"sqlite:///{tmp_path}/readings.db"))
    await store.open()
    ingester = Ingester(
        ReceiverConfig(
            mqtt=MqttUrl.parse(url),
            client_id="durability-ingester",
            topics=Ingester.default_topics(),
            receive_maximum=100,
        ),
        store,
        registry,
        IngestConfig(linger_s=0.02, backoff_max_s=1.0),
    )
    task = asyncio.create_task(ingester.run(), name="ingester")
    try:
        await until(lambda: ingester.receiver.connected, what="ingester connected")
        yield Backend(store, registry, ingester)
    finally:
        ingester.stop()
        await asyncio.wait_for(task, 30)
        await store.close()
        await registry.close()


async def register(b: Backend, hub_id: str, signing_key: Path, world: VirtualWorld) -> None:
    signer = Signer.load_or_create(signing_key)
    await b.registry.add_hub(hub_id, public_key=signer.public_key_b64, require_signature=True)
    await b.registry.add_patient("P-1")
    for p in world.peripherals:
        await b.registry.add_device(p.serial, p.kind.value, hub_id=hub_id)
        await b.registry.assign(p.serial, "P-1", ASSIGNED_FROM)


# -- (a) broker outage while the devices keep producing --------------------------------


@pytest.mark.slow
async def test_broker_outage_loses_nothing_and_stores_nothing_twice(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    # 300x: the CGM produces a reading every simulated 5 min = every real second.
    clock = SimClock(START, speed=300)
    async with VirtualWorld(clock) as world, backend(tmp_path, mosquitto.url) as b:
        cgm = await world.add_cgm("CGM-A", history=timedelta(hours=2))
        meter = await world.add_meter("BG-A", history=timedelta(days=2), tests_per_day=5)
        settings = edge_settings(
            tmp_path,
            mosquitto.url,
            [
                DeviceConfig(kind="cgm", address=cgm.address),
                DeviceConfig(kind="glucose_meter", address=meter.address, poll_interval_s=2),
            ],
        )
        await register(b, settings.hub_id, tmp_path / "hub-signing.key", world)
        agent = quick_agent(settings, world)
        async with running(agent):
            await until(
                lambda: agent.publisher.stats.readings > 0 and agent.outbox.depth == 0,
                30,
                "first syncs published",
            )
            mosquitto.stop()
            produced_before = len(cgm.produced)
            await asyncio.sleep(30)  # the outage itself
            during = len(cgm.produced) - produced_before
            assert during >= 20, during  # the CGM kept producing
            assert not agent.publisher.stats.connected
            assert agent.outbox.depth >= during  # held in the outbox, not lost
            connects = agent.publisher.stats.connects
            mosquitto.start()

            await until(lambda: agent.publisher.stats.connects > connects, 30, "reconnected")
            clock.pause()
            await sync_polled(agent.tasks)
            truth = truth_keys(world)
            stored: list[str] = []

            async def all_stored() -> bool:
                nonlocal stored
                stored = await b.stored_keys()
                return set(stored) >= truth

            async with asyncio.timeout(60):
                while not await all_stored():  # noqa: ASYNC110 - rows in a database
                    await asyncio.sleep(0.1)
            await until(lambda: agent.outbox.depth == 0, what="outbox drained")
        assert set(stored) == truth
        assert len(stored) == len(truth)  # none twice in storage
        assert b.ingester.stats.quarantined_total == 0


# -- (b) kill -9 of the agent in the middle of publishing a backlog --------------------

BACKLOG = 20_000


def outbox_keys(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT key FROM outbox")}
    finally:
        db.close()


def start_hub(tmp_path: Path, url: str, run: int) -> subprocess.Popen[bytes]:
    """The real ``diatabase edge run`` (no devices) on the pre-filled outbox."""
    config = tmp_path / "hub.toml"
    config.write_text(
        f'hub_id = "hub-kill"\nmqtt = "{url}"\nsigning_key = "{tmp_path}/hub.key"\n'
        f'[outbox]\npath = "{tmp_path}/outbox.db"\n'
        "[publish]\nmax_batch_readings = 10\nmax_in_flight = 2\n",
        encoding="utf-8",
    )
    log = (tmp_path / f"hub-{run}.log").open("wb")
    with log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "edge", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_hub(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
async def test_agent_killed_mid_backlog_then_restarted(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    readings = [cgm_reading("CGM-K", i * 5, 100.0 + i % 50) for i in range(BACKLOG)]
    everything = {r["key"] for r in readings}
    async with Outbox(tmp_path / "outbox.db") as box:
        await box.put(
            "CGM-K",
            [(r["key"], json.dumps(r)) for r in readings],
            stream="records",
            cursor=BACKLOG - 1,
        )
    async with subscriber(mosquitto.url, topic_readings("hub-kill")) as sub:
        hub = start_hub(tmp_path, mosquitto.url, 1)
        try:
            await until(lambda: sub.count() >= BACKLOG // 5, 60, "part of the backlog received")
            os.kill(hub.pid, signal.SIGKILL)
            hub.wait(10)
        finally:
            stop_hub(hub)
        received = sub.keys()
        kept = outbox_keys(tmp_path / "outbox.db")
        assert 0 < len(received) < BACKLOG, len(received)  # killed in the middle
        assert everything - received <= kept  # every unacknowledged row was kept
        assert kept < everything  # acknowledged rows were deleted

        hub = start_hub(tmp_path, mosquitto.url, 2)
        try:
            await until(lambda: sub.keys() == everything, 120, "every key received")
            await until(
                lambda: not outbox_keys(tmp_path / "outbox.db"), 30, "outbox drained after restart"
            )
        finally:
            stop_hub(hub)
        resent = sub.count() - BACKLOG
        assert 0 <= resent <= 2 * 10  # at most the batches in flight at the kill, again


# -- (d) a full outbox pauses the device, drops nothing --------------------------------

MAX_ROWS = 30


@pytest.mark.slow
async def test_full_outbox_pauses_the_device_and_loses_nothing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    clock = SimClock(START, speed=1)
    async with VirtualWorld(clock) as world:
        meter = await world.add_meter("BG-F", history=timedelta(days=40), tests_per_day=4)
        clock.pause()
        held = truth_keys(world)
        assert len(held) > 4 * MAX_ROWS
        async with subscriber(mosquitto.url, topic_readings("hub-dur")) as sub:
            mosquitto.stop()
            settings = edge_settings(
                tmp_path,
                mosquitto.url,
                [DeviceConfig(kind="glucose_meter", address=meter.address, poll_interval_s=3600)],
                outbox=OutboxConfig(path=tmp_path / "outbox.db", max_rows=MAX_ROWS),
            )
            agent = quick_agent(settings, world)
            async with running(agent):
                await until(lambda: agent.outbox.full, 30, "outbox full")
                (task,) = agent.tasks
                await until(lambda: not task.state.connected, 30, "sync paused")
                status = await agent.status()
                assert status.outbox_full
                assert status.outbox_depth == agent.outbox.depth == MAX_ROWS  # at its bound
                # Paused, not dropping: everything read is in the outbox, the cursor is at
                # the last record stored, the meter still holds the rest.
                assert task.state.records_read == MAX_ROWS
                assert task.state.cursor == meter.produced[MAX_ROWS - 1].sequence
                assert agent.publisher.stats.connects == 0

                mosquitto.start()
                await until(lambda: sub.keys() >= held, 90, "everything the meter held")
                await until(lambda: agent.outbox.depth == 0, 30, "outbox drained")
                assert not (await agent.status()).outbox_full
        assert sub.keys() == held


@pytest.mark.slow
async def test_full_outbox_cgm_resumes_backfill_before_going_live(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """A CGM whose backfill a full outbox cut short must not go live: a live record would
    move its cursor past the records it has not read yet (they would never be asked for)."""
    clock = SimClock(START, speed=300)  # a new CGM reading every real second
    async with VirtualWorld(clock) as world:
        cgm = await world.add_cgm("CGM-F", history=timedelta(hours=12))
        async with subscriber(mosquitto.url, topic_readings("hub-dur")) as sub:
            mosquitto.stop()
            settings = edge_settings(
                tmp_path,
                mosquitto.url,
                [DeviceConfig(kind="cgm", address=cgm.address)],
                outbox=OutboxConfig(path=tmp_path / "outbox.db", max_rows=MAX_ROWS),
            )
            agent = quick_agent(settings, world)
            async with running(agent):
                await until(lambda: agent.outbox.full, 30, "outbox full")
                # The CGM goes on producing while the outbox is full.
                await cgm.wait_produced(len(cgm.produced) + 3)
                assert agent.outbox.depth == MAX_ROWS
                mosquitto.start()
                await until(lambda: len(sub.keys()) > 2 * MAX_ROWS, 60, "draining")
                clock.pause()
                truth = truth_keys(world)
                await until(lambda: sub.keys() >= truth, 90, "every CGM reading")
        assert sub.keys() == truth


# -- (e) a week offline: delivered after reconnect in bounded batches ------------------

BATCH = 100


@pytest.mark.slow
async def test_week_offline_then_delivered_in_bounded_batches(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    clock = SimClock(START, speed=1)
    async with VirtualWorld(clock) as world:
        await world.add_cgm("CGM-W", history=timedelta(days=7))
        clock.pause()
        truth = truth_keys(world)
        assert len(truth) >= 7 * 288
        async with subscriber(mosquitto.url, topic_readings("hub-dur")) as sub:
            mosquitto.stop()
            settings = edge_settings(
                tmp_path,
                mosquitto.url,
                [DeviceConfig(kind="cgm", address=world.peripherals[0].address)],
                publish=PublishConfig(max_batch_readings=BATCH),
            )
            agent = quick_agent(settings, world)
            async with running(agent):
                await until(lambda: agent.outbox.depth == len(truth), 60, "the week in the outbox")
                assert agent.publisher.stats.connects == 0
                mosquitto.start()
                await until(lambda: sub.keys() == truth, 60, "the week delivered")
                await until(lambda: agent.outbox.depth == 0, 30, "outbox drained")
        sizes = [len(b.readings) for b in sub.batches]
        assert max(sizes) <= BATCH
        assert len(sizes) >= len(truth) // BATCH
