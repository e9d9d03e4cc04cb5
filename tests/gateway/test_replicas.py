"""Two `diatabase ingest` replicas on one MQTT v5 shared subscription: one is killed with
SIGKILL mid-stream and restarted with the same client id; every reading is stored exactly
once. (Mosquitto keeps a dead member's unacknowledged messages in its persistent session
and delivers them when the same client id reconnects: hence stable client ids.)"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import pytest

from gateway.contract.v1 import topic_readings
from tests.asyncutil import until
from tests.gateway.test_ingest_crash import (
    IngestProcess,
    payloads,
    seed_registry,
    stored_count,
    wait_count,
)
from tests.harness import MosquittoServer
from tests.mqttutil import publish_many

pytestmark = pytest.mark.slow


async def test_replica_killed_and_restarted_loses_and_doubles_nothing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/readings.db"
    registry = f"sqlite:///{tmp_path}/registry.db"
    serials = [f"CGM{i}" for i in range(10)]
    await seed_registry(registry, serials)
    with contextlib.ExitStack() as stack:
        replicas = [
            stack.enter_context(
                IngestProcess(
                    tmp_path,
                    mosquitto.url,
                    store,
                    registry,
                    client_id=f"ingest-{n}",
                    shared_group="ingest",
                )
            )
            for n in (1, 2)
        ]
        await _kill_one_mid_stream(replicas, mosquitto, store, serials)


async def _kill_one_mid_stream(
    replicas: list[IngestProcess], mosquitto: MosquittoServer, store: str, serials: list[str]
) -> None:
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
