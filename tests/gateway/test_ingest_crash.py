"""Crash and outage tests with the real `diatabase ingest` process: SIGKILL mid-stream and
a store outage lose nothing and double nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.contract.urls import StoreUrl
from gateway.contract.v1 import topic_readings
from gateway.registry.service import Registry
from gateway.store import open_store
from tests.asyncutil import until
from tests.factories import batch, cgm_reading
from tests.harness import InfluxDB1Server, MosquittoServer
from tests.mqttutil import publish_many

pytestmark = pytest.mark.slow


async def seed_registry(url: str, serials: list[str]) -> None:
    async with Registry(StoreUrl.parse(url)) as reg:
        await reg.add_hub("hub-1")
        for i, serial in enumerate(serials):
            await reg.add_patient(f"P-{i}")
            await reg.add_device(serial, "cgm", hub_id="hub-1")
            await reg.assign(serial, f"P-{i}", datetime(2026, 1, 1, tzinfo=UTC))


def payloads(n: int, serials: list[str]) -> Iterator[bytes]:
    for i in range(n):
        serial = serials[i % len(serials)]
        yield batch("hub-1", [cgm_reading(serial, (i // len(serials)) * 5, 40.0 + i % 300)])


class IngestProcess:
    """`diatabase ingest` as a child process; use as a context manager (always reaped)."""

    def __init__(
        self,
        tmp: Path,
        mqtt: str,
        store: str,
        registry: str,
        *,
        client_id: str = "ingest-under-test",
        shared_group: str | None = None,
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "gateway.cli",
            "ingest",
            "--mqtt",
            mqtt,
            "--store",
            store,
            "--registry",
            registry,
            "--client-id",
            client_id,
        ]
        if shared_group:
            self.args += ["--shared-group", shared_group]
        self.log = (tmp / f"{client_id}.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def term(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def __enter__(self) -> IngestProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


async def stored_count(url: str) -> int:
    store = open_store(StoreUrl.parse(url))
    await store.open()
    try:
        return await store.count()
    finally:
        await store.close()


async def wait_subscribed(mqtt: str, store: str, probe: bytes) -> None:
    """Publish the first message of the stream until it is stored: from then on the
    ingester's session holds everything published (before it, nothing would)."""
    async with asyncio.timeout(60):
        while await stored_count(store) == 0:
            await asyncio.to_thread(publish_many, mqtt, topic_readings("hub-1"), [probe])
            await asyncio.sleep(0.2)


async def wait_count(url: str, n: int, deadline_s: float) -> int:
    last = -1

    async def poll() -> None:
        nonlocal last
        while (last := await stored_count(url)) < n:  # noqa: ASYNC110 - another process writes
            await asyncio.sleep(0.2)

    try:
        await asyncio.wait_for(poll(), deadline_s)
    except TimeoutError:
        raise AssertionError(f"stored {last} of {n} within {deadline_s} s") from None
    return last


@pytest.mark.parametrize("sink", ["sqlite", "influxdb"])
async def test_sigkill_mid_stream_loses_and_doubles_nothing(
    sink: str, mosquitto: MosquittoServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = (
        f"sqlite:///{tmp_path}/readings.db"
        if sink == "sqlite"
        else request.getfixturevalue("influx_db")
    )
    registry = f"sqlite:///{tmp_path}/registry.db"
    serials = [f"CGM{i}" for i in range(10)]
    await seed_registry(registry, serials)
    with IngestProcess(tmp_path, mosquitto.url, store, registry) as ingest:
        await _kill_and_resume(ingest, mosquitto, store, serials)


async def _kill_and_resume(
    ingest: IngestProcess, mosquitto: MosquittoServer, store: str, serials: list[str]
) -> None:
    ingest.start()
    n = 20_000
    await wait_subscribed(mosquitto.url, store, next(payloads(1, serials)))
    publisher = asyncio.create_task(
        asyncio.to_thread(
            publish_many, mosquitto.url, topic_readings("hub-1"), payloads(n, serials)
        )
    )
    await wait_count(store, 3000, 60)
    ingest.kill()  # mid-stream: some messages received, written, not yet acked
    ingest.start()  # same client id: the persistent session is resumed
    assert await publisher == n
    assert await wait_count(store, n, 120) == n
    assert ingest.term() == 0  # SIGTERM drains and exits 0
    assert await stored_count(store) == n


async def test_influxdb_outage_holds_acks_and_loses_nothing(
    mosquitto: MosquittoServer, make_influxdb: object, tmp_path: Path
) -> None:
    influx: InfluxDB1Server = make_influxdb()  # type: ignore[operator]
    store = influx.url
    registry = f"sqlite:///{tmp_path}/registry.db"
    serials = ["CGM0", "CGM1"]
    await seed_registry(registry, serials)
    with IngestProcess(tmp_path, mosquitto.url, store, registry) as ingest:
        await _outage(ingest, mosquitto, influx, store, serials)


async def _outage(
    ingest: IngestProcess,
    mosquitto: MosquittoServer,
    influx: InfluxDB1Server,
    store: str,
    serials: list[str],
) -> None:
    ingest.start()
    await wait_subscribed(mosquitto.url, store, next(payloads(1, serials)))
    first = await asyncio.to_thread(
        publish_many, mosquitto.url, topic_readings("hub-1"), payloads(1000, serials)
    )
    await wait_count(store, first, 60)
    influx.stop()
    outage = int(os.environ.get("DIATABASE_TEST_OUTAGE_S", "60"))
    # Publish while the database is down: the ingester must not acknowledge these.
    rest = list(payloads(3000, serials))[1000:]
    await asyncio.to_thread(publish_many, mosquitto.url, topic_readings("hub-1"), rest)
    await asyncio.sleep(outage)  # the outage itself is the thing under test
    influx.start()
    assert await wait_count(store, 3000, 120) == 3000
    assert ingest.term() == 0


async def test_wait_helper_is_bounded() -> None:
    with pytest.raises(AssertionError):
        await until(lambda: False, deadline_s=0.1)
