"""``DeviceTask.wake()`` means "sync now": a wake that comes while a session is ending
(after its records, before the pause) must bring another sync, not be lost until the
next poll (found as a CI flake of tests/edge/test_pump_end_to_end.py)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient

from drivers.devices import GlucoseMeterDriver
from drivers.virtual import VirtualWorld
from edge.device_task import DeviceTask
from edge.outbox import Outbox
from edge.settings import DeviceConfig
from tests.asyncutil import until

pytestmark = pytest.mark.ble


async def test_a_wake_during_the_end_of_a_session_brings_another_sync(
    world: VirtualWorld, tmp_path: Path
) -> None:
    world.clock.pause()
    meter = await world.add_meter("BG-W", history=timedelta(days=1))
    task: DeviceTask | None = None
    sessions = 0

    class WakingClient(BleakClient):
        """Wakes the task from inside the first session's teardown: the race window."""

        async def __aexit__(self, *exc: Any) -> None:
            nonlocal sessions
            sessions += 1
            if sessions == 1 and task is not None:
                task.wake()
            await super().__aexit__(*exc)

    def factory(address: str, *, pair: bool = False, **kw: Any) -> BleakClient:
        return WakingClient(address, backend=world.client_backend, pair=pair, timeout=3)

    async with Outbox(tmp_path / "outbox.db") as box:
        task = DeviceTask(
            config=DeviceConfig(kind="glucose_meter", address=meter.address, poll_interval_s=3600),
            address=meter.address,
            outbox=box,
            client_factory=factory,
            driver_factory=GlucoseMeterDriver,
        )
        runner = asyncio.create_task(task.run())
        try:
            # Without the fix the task sleeps out its hour-long poll after the first one.
            await until(lambda: task is not None and task.syncs >= 2, 10, "a second sync")
        finally:
            task.stop()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    assert sessions >= 2
