"""The per-device task through the bleak API against virtual devices: failures are
classified, backed off (capped) and logged once when they start and once when they
recover; ``wake()`` means "sync now" even while a session is ending."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient
from bleak.exc import BleakError

from drivers.devices import ConnectionLost, GlucoseMeterDriver, PairingRequired, RacpError
from drivers.errors import DecodeError
from drivers.virtual import VirtualWorld
from edge.device_task import DeviceTask, Failure, backoff, classify
from edge.outbox import Outbox
from edge.settings import DeviceConfig
from tests.asyncutil import until

pytestmark = pytest.mark.ble


def test_failures_are_classified() -> None:
    assert classify(BleakError("not found"), reached=False) is Failure.UNREACHABLE
    assert classify(TimeoutError(), reached=False) is Failure.UNREACHABLE
    assert classify(BleakError("disconnected"), reached=True) is Failure.LINK_LOST
    assert classify(ConnectionLost("dropped"), reached=True) is Failure.LINK_LOST
    assert classify(PairingRequired("pair first", 0x05), reached=True) is Failure.REFUSED
    assert classify(RacpError(0x06, "operand not supported"), reached=True) is Failure.REFUSED
    assert classify(DecodeError("glucose_measurement", b"\x00", "too short"), reached=True) is (
        Failure.REFUSED
    )


def test_backoff_doubles_to_the_cap_and_a_refusal_waits_the_cap() -> None:
    waits, delay = [], 1.0
    for _ in range(6):
        wait, delay = backoff(Failure.UNREACHABLE, delay, 10.0)
        waits.append(wait)
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff(Failure.REFUSED, 1.0, 10.0) == (10.0, 10.0)
    assert backoff(Failure.LINK_LOST, 1.0, 10.0) == (1.0, 2.0)


async def test_unreachable_device_is_logged_once_then_once_recovered(
    world: VirtualWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world.clock.pause()
    meter = await world.add_meter("BG-U", history=timedelta(days=1))
    attempts = 0

    class OutOfRange(BleakClient):
        """The first four connects fail as a device out of range does."""

        async def connect(self, **kw: Any) -> None:
            nonlocal attempts
            attempts += 1
            if attempts <= 4:
                raise BleakError(f"device {meter.address} not found")
            await super().connect(**kw)

    def factory(address: str, *, pair: bool = False, **kw: Any) -> BleakClient:
        return OutOfRange(address, backend=world.client_backend, pair=pair, timeout=3)

    caplog.set_level(logging.DEBUG, logger="edge.device_task")
    async with Outbox(tmp_path / "outbox.db") as box:
        task = DeviceTask(
            config=DeviceConfig(kind="glucose_meter", address=meter.address, poll_interval_s=3600),
            address=meter.address,
            outbox=box,
            client_factory=factory,
            driver_factory=GlucoseMeterDriver,
            backoff_initial_s=0.01,
            backoff_max_s=0.05,
        )
        runner = asyncio.create_task(task.run())
        try:
            await until(lambda: task.syncs >= 1, 10, "a sync after the device came back")
        finally:
            task.stop()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    assert task.state.failures == 4
    assert task.state.last_error is not None and task.state.last_error.startswith("unreachable")
    ours = [r for r in caplog.records if r.name == "edge.device_task"]
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    infos = [
        r.getMessage() for r in ours if r.levelno == logging.INFO and "recovered" in r.getMessage()
    ]
    assert len(warnings) == 1 and "failed (unreachable)" in warnings[0]
    assert len(infos) == 1 and "(unreachable)" in infos[0]
    assert sum(r.levelno == logging.DEBUG and "still failing" in r.getMessage() for r in ours) == 3


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
