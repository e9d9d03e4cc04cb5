"""A BLE drop in the middle of an RACP transfer: the next sync resumes from the committed
cursor; every record ends up in the outbox exactly once (edge device task + real outbox)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.devices import GlucoseMeterDriver
from drivers.virtual import VirtualWorld
from edge.device_task import DeviceTask
from edge.outbox import Outbox
from edge.settings import DeviceConfig
from tests.asyncutil import until

pytestmark = pytest.mark.ble


async def test_disconnect_mid_transfer_then_resync(world: VirtualWorld, tmp_path: Path) -> None:
    meter = await world.add_meter("BG-9", history=timedelta(days=5))
    world.clock.pause()
    meter.disconnect_after = 7  # the link drops after 7 records of the first transfer
    async with Outbox(tmp_path / "outbox.db") as box:
        task = DeviceTask(
            config=DeviceConfig(kind="glucose_meter", address=meter.address, poll_interval_s=3600),
            address=meter.address,
            outbox=box,
            client_factory=world.client_factory,
            driver_factory=GlucoseMeterDriver,
            backoff_initial_s=0.05,
        )
        runner = asyncio.create_task(task.run())
        try:
            await until(lambda: task.syncs >= 1, what="a complete sync after the drop")
        finally:
            task.stop()
            await asyncio.wait_for(runner, 10)
        rows = await box.peek(10_000)
    assert task.state.failures == 1  # the drop was seen and retried
    sequences = [json.loads(r.payload)["sequence"] for r in rows]
    assert sequences == [p.sequence for p in meter.produced]  # all, once, in order
    assert len({r.key for r in rows}) == len(rows)
