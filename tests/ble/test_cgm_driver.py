"""The CGM driver through the bleak API against a virtual CGMS sensor."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drivers.devices import CgmDriver
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


async def test_reconnect_backfills_only_what_is_new(world: VirtualWorld) -> None:
    cgm = await world.add_cgm("CGM-2", history=timedelta(hours=1))
    async with world.client_factory(cgm.address) as client:
        first = [r async for r in CgmDriver(client).sync(None)]
    cursor = first[-1].cursor
    seen = len(cgm.produced)
    while len(cgm.produced) < seen + 3:  # the sensor keeps measuring while we are away
        await world.clock.sleep_until(world.clock.now() + timedelta(minutes=5))
    async with world.client_factory(cgm.address) as client:
        again = [r async for r in CgmDriver(client).sync(cursor)]
    assert [r.cursor for r in again] == [
        p.time_offset_min for p in cgm.produced if (p.time_offset_min or 0) > cursor
    ][: len(again)]
    assert len(again) >= 3


async def test_bad_crc_is_counted_not_yielded(world: VirtualWorld) -> None:
    cgm = await world.add_cgm("CGM-3", history=timedelta(minutes=30), crc=True)
    async with world.client_factory(cgm.address) as client:
        driver = CgmDriver(client)
        backfill = [r async for r in driver.sync(None)]
        assert backfill  # CRC-protected records decode when intact
        cgm.bad_crc_next = 2
        live = driver.live()
        good = await anext(live)
        await live.aclose()
    assert driver.stats.crc_errors == 2
    # The two corrupted notifications were skipped: the first yielded one is the third.
    assert good.cursor == backfill[-1].cursor + 15
