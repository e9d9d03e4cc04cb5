"""The CGM driver through the bleak API against a virtual CGMS sensor."""

from __future__ import annotations

from contextlib import aclosing
from datetime import timedelta

import pytest

from drivers.devices import CgmDriver
from drivers.records import DeviceRecord
from drivers.virtual import VirtualWorld

pytestmark = pytest.mark.ble


async def test_backfill_then_live(world: VirtualWorld) -> None:
    cgm = await world.add_cgm("CGM-1", history=timedelta(hours=2))
    async with world.client_factory(cgm.address) as client:
        driver = CgmDriver(client)
        await driver.read_identity()
        backfill = [r async for r in driver.sync(None)]
        assert len(backfill) >= 24  # two hours of 5-minute readings
        offsets = [r.time_offset_min for r in backfill]
        assert offsets == sorted(offsets) and offsets[0] == 0
        live = driver.live()
        first_live = await anext(live)
        await live.aclose()
    assert first_live.time_offset_min is not None and first_live.time_offset_min > offsets[-1]
    produced = {p.time_offset_min: p.mg_dl for p in cgm.produced}
    for r in [*backfill, first_live]:
        assert r.unit == "mg/dL" and r.value == produced[r.time_offset_min]
        assert r.session_start == cgm.session_start
        assert r.device_time == cgm.session_start + timedelta(minutes=r.cursor)


async def test_backfill_after_reconnect_moves_only_new_records(world: VirtualWorld) -> None:
    cgm = await world.add_cgm("CGM-2", history=timedelta(hours=1))
    async with world.client_factory(cgm.address) as client:
        first = [r async for r in CgmDriver(client).sync(None)]
    cursor = first[-1].cursor
    await cgm.wait_produced(len(cgm.produced) + 3)  # the sensor measures while we are away
    world.clock.pause()
    async with world.client_factory(cgm.address) as client:
        again = [r async for r in CgmDriver(client).sync(cursor)]
    assert [r.cursor for r in again] == [
        p.time_offset_min for p in cgm.produced if (p.time_offset_min or 0) > cursor
    ]
    assert len(again) >= 3


async def test_bad_crc_is_rejected_counted_and_refetched(world: VirtualWorld) -> None:
    cgm = await world.add_cgm("CGM-3", history=timedelta(minutes=30), crc=True)
    async with world.client_factory(cgm.address) as client:
        driver = CgmDriver(client)
        backfill = [r async for r in driver.sync(None)]
        assert backfill  # CRC-protected records decode when intact
        cgm.bad_crc_next = 2
        live: list[DeviceRecord] = []
        async with aclosing(driver.live()) as records:
            async for record in records:
                live.append(record)
                if len(live) == 3:
                    break
    assert driver.stats.crc_errors == 2
    # The corrupted notifications were never yielded; their records came again via RACP.
    got = [r.cursor for r in backfill + live]
    assert got == [p.time_offset_min for p in cgm.produced][: len(got)]
    assert len(set(got)) == len(got)


async def test_session_stop_and_start_then_sync_reads_the_new_session(
    world: VirtualWorld,
) -> None:
    world.clock.pause()
    cgm = await world.add_cgm("CGM-4", history=timedelta(hours=3), crc=True)
    async with world.client_factory(cgm.address) as client:
        driver = CgmDriver(client)
        old = [r async for r in driver.sync(None)]
        await driver.stop_session()
        await driver.start_session()
    assert cgm.records == [] and cgm.session_start >= old[-1].device_time
    cgm.history_span = timedelta(0)
    cgm._add(0)
    cgm._add(5)
    async with world.client_factory(cgm.address) as client:
        new = [r async for r in CgmDriver(client).sync(old[-1].cursor)]
    assert [(r.session_start, r.cursor) for r in new] == [
        (cgm.session_start, 0),
        (cgm.session_start, 5),
    ]
