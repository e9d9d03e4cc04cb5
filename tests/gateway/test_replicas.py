"""Two `diatabase ingest` replicas on one MQTT v5 shared subscription: one is killed with
SIGKILL mid-stream and restarted with the same client id; every reading is stored exactly
once. (Mosquitto keeps a dead member's unacknowledged messages in its persistent session
and delivers them when the same client id reconnects: hence stable client ids.)"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.contract.v1 import topic_readings
from tests.asyncutil import until
from tests.gateway.test_ingest_crash import payloads, seed_registry, stored_count, wait_count
from tests.harness import MosquittoServer
from tests.mqttutil import publish_many

pytestmark = pytest.mark.slow


class Replica:
    def __init__(self, tmp: Path, n: int, mqtt: str, store: str, registry: str) -> None:
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
            f"ingest-{n}",
            "--shared-group",
            "ingest",
        ]
        self.log = (tmp / f"ingest-{n}.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.log.close()


async def test_replica_killed_and_restarted_loses_and_doubles_nothing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/readings.db"
    registry = f"sqlite:///{tmp_path}/registry.db"
    serials = [f"CGM{i}" for i in range(10)]
    await seed_registry(registry, serials)
    replicas = [Replica(tmp_path, n, mosquitto.url, store, registry) for n in (1, 2)]
    try:
        for r in replicas:
            r.start()
        # Both sessions must exist before the stream starts: probe until stored.
        async with asyncio.timeout(60):
            while await stored_count(store) == 0:
                await asyncio.to_thread(
                    publish_many,
                    mosquitto.url,
                    topic_readings("hub-1"),
                    [next(payloads(1, serials))],
                )
                await asyncio.sleep(0.2)
        # Both replicas connected (each subscribes right after its CONNACK).
        await until(
            lambda: all(f"as ingest-{n} " in mosquitto.log_text() for n in (1, 2)),
            what="both replicas connected",
        )
        n = 20_000
        publisher = asyncio.create_task(
            asyncio.to_thread(
                publish_many, mosquitto.url, topic_readings("hub-1"), payloads(n, serials)
            )
        )
        await wait_count(store, 4000, 60)
        victim = replicas[1].proc
        assert victim is not None
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        replicas[1].start()  # same client id: its session, and what it had not acked
        assert await publisher == n
        assert await wait_count(store, n, 180) == n
        assert await stored_count(store) == n  # once each (key is the primary key)
    finally:
        for r in replicas:
            r.close()
