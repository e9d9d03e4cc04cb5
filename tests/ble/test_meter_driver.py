"""The glucose meter driver through the bleak API against a virtual GLS meter."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drivers.devices import GlucoseMeterDriver, RacpError
from drivers.racp import RacpResponseCode
from drivers.units import to_mg_dl
from drivers.virtual import VirtualWorld

pytestmark = pytest.mark.ble


async def test_full_then_incremental_sync(world: VirtualWorld) -> None:
    meter = await world.add_meter("BG-1", history=timedelta(days=3))
    world.clock.pause()
    async with world.client_factory(meter.address) as client:
        driver = GlucoseMeterDriver(client)
        first = [r async for r in driver.sync(None)]
        assert len(first) == len(meter.produced) >= 8
        assert [r.sequence for r in first] == [p.sequence for p in meter.produced]
        # value and unit as reported; canonical mg/dL matches what the device generated
        assert all(r.unit == "kg/L" for r in first)
        assert [round(to_mg_dl(r.value or 0, r.unit), 6) for r in first] == [
            round(p.mg_dl, 6) for p in meter.produced
        ]
        assert [r.device_time for r in first] == [p.device_time for p in meter.produced]
        # Nothing new: RACP answers "no records found", which is not an error.
        assert [r async for r in driver.sync(first[-1].cursor)] == []
        meter.measure_now()
        meter.measure_now()
        fresh = [r async for r in driver.sync(first[-1].cursor)]
    # Only the two new records moved.
    assert [r.sequence for r in fresh] == [p.sequence for p in meter.produced[len(first) :]]
    assert len(fresh) == 2


async def test_mol_per_litre_and_clock_offset(world: VirtualWorld) -> None:
    meter = await world.add_meter("BG-2", unit="mol/L", clock_error=timedelta(hours=3))
    world.clock.pause()
    async with world.client_factory(meter.address) as client:
        driver = GlucoseMeterDriver(client)
        offset = await driver.read_clock_offset()
        records = [r async for r in driver.sync(None)]
    assert records and all(r.unit == "mol/L" for r in records)
    # The device clock runs 3 h ahead of simulated time; the hub measures UTC - device.
    expected = (
        world.clock.now().astimezone() - (world.clock.now() + timedelta(hours=3)).astimezone()
    ).total_seconds()
    assert offset is not None
    assert all(r.clock_offset_s == offset for r in records)
    del expected


async def test_racp_error_code_is_raised_typed(world: VirtualWorld) -> None:
    meter = await world.add_meter("BG-3")
    meter.racp_error = RacpResponseCode.PROCEDURE_NOT_COMPLETED
    async with world.client_factory(meter.address) as client:
        with pytest.raises(RacpError) as err:
            _ = [r async for r in GlucoseMeterDriver(client).sync(None)]
    assert err.value.code == RacpResponseCode.PROCEDURE_NOT_COMPLETED
