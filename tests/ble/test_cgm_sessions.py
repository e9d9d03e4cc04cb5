"""A CGM's sync cursor is a time offset, which restarts at 0 in every sensor session: the
edge keeps the session with the cursor, so after a sensor change every record of both
sessions reaches the outbox exactly once (virtual CGM through the bleak API)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.devices import CgmDriver
from drivers.virtual import VirtualWorld
from drivers.virtual.cgm import VirtualCgm
from edge.device_task import STREAM, DeviceTask
from edge.outbox import Outbox, OutboxRow
from edge.settings import DeviceConfig
from tests.asyncutil import until, until_async

pytestmark = pytest.mark.ble


@asynccontextmanager
async def serving(world: VirtualWorld, cgm: VirtualCgm, box: Outbox) -> AsyncIterator[DeviceTask]:
    task = DeviceTask(
        config=DeviceConfig(kind="cgm", address=cgm.address, poll_interval_s=3600),
        address=cgm.address,
        outbox=box,
        client_factory=world.client_factory,
        driver_factory=CgmDriver,
        backoff_initial_s=0.05,
    )
    runner = asyncio.create_task(task.run())
    try:
        yield task
    finally:
        # A CGM task stays in its live phase: end it as the agent does at shutdown.
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(runner, 10)


def offsets(rows: list[OutboxRow]) -> list[tuple[str, int]]:
    readings = [json.loads(r.payload) for r in rows]
    return [(r["session_start"], r["time_offset_min"]) for r in readings]


def produced(cgm: VirtualCgm) -> list[tuple[str, int]]:
    out = []
    for p in cgm.produced:
        assert p.session_start is not None and p.time_offset_min is not None
        out.append((p.session_start.isoformat(), p.time_offset_min))
    return out


async def all_in(box: Outbox, cgm: VirtualCgm) -> bool:
    return len(await box.peek(100_000)) >= len(cgm.produced)


async def test_sensor_change_between_syncs(world: VirtualWorld, tmp_path: Path) -> None:
    cgm = await world.add_cgm("CGM-S", history=timedelta(hours=4))
    world.clock.pause()
    async with Outbox(tmp_path / "outbox.db") as box:
        async with serving(world, cgm, box) as task:
            await until(lambda: task.syncs >= 1, what="the first session synced")
        first = await box.cursor_state("CGM-S", STREAM)
        assert first == (cgm.records[-1].time_offset_min, cgm.session_start.isoformat())

        # A new sensor while the hub is away; it runs longer than the old cursor, so a
        # bare time-offset cursor would skip the new session's first 4 hours.
        cgm.change_sensor()
        world.clock.advance(timedelta(hours=8))
        await until(lambda: cgm.next_offset > 8 * 60, what="session 2 data")
        assert cgm.records[-1].time_offset_min > first[0]

        async with serving(world, cgm, box) as task:
            await until(lambda: task.syncs >= 1, what="the second session synced")
        rows = await box.peek(100_000)
        assert await box.cursor_state("CGM-S", STREAM) == (
            cgm.records[-1].time_offset_min,
            cgm.session_start.isoformat(),
        )
    assert offsets(rows) == produced(cgm)  # both sessions, every record, once, in order
    assert len({r.key for r in rows}) == len(rows)
    assert len({s for s, _ in offsets(rows)}) == 2


async def test_sensor_change_while_connected(world: VirtualWorld, tmp_path: Path) -> None:
    cgm = await world.add_cgm("CGM-L", history=timedelta(hours=2))
    world.clock.pause()
    async with Outbox(tmp_path / "outbox.db") as box, serving(world, cgm, box) as task:
        await until(lambda: task.syncs >= 1, what="the first session synced")
        world.clock.advance(timedelta(minutes=30))  # live readings of session 1
        await until_async(lambda: all_in(box, cgm), what="live readings of session 1")

        cgm.change_sensor()
        world.clock.advance(timedelta(hours=3))  # live readings of session 2
        await until_async(lambda: all_in(box, cgm), what="every reading of both sessions")
        rows = await box.peek(100_000)
        state = await box.cursor_state("CGM-L", STREAM)
    assert task.state.failures == 0
    assert offsets(rows) == produced(cgm)
    assert len({r.key for r in rows}) == len(rows)
    assert state == (cgm.records[-1].time_offset_min, cgm.session_start.isoformat())
