"""The glucose meter driver through the bleak API against a virtual GLS meter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drivers.devices import ConnectionLost, GlucoseMeterDriver, PairingRequired, RacpError
from drivers.racp import RacpResponseCode
from drivers.records import DeviceRecord
from drivers.units import to_mg_dl
from drivers.virtual import VirtualMeter, VirtualWorld

pytestmark = pytest.mark.ble


def truth(meter: VirtualMeter) -> list[tuple[int | None, datetime, float]]:
    return [(p.sequence, p.device_time, p.value) for p in meter.produced]


def seen(records: list[DeviceRecord]) -> list[tuple[int | None, datetime, float | None]]:
    return [(r.sequence, r.device_time, r.value) for r in records]


async def test_full_then_incremental_sync_moves_only_new_records(world: VirtualWorld) -> None:
    world.clock.pause()
    meter = await world.add_meter("BG-1", history=timedelta(days=3))
    async with world.client_factory(meter.address) as client:
        driver = GlucoseMeterDriver(client)
        first = [r async for r in driver.sync(None)]
        assert len(first) >= 8 and seen(first) == truth(meter)
        assert all(r.unit == "kg/L" and r.cursor == r.sequence for r in first)
        assert [round(to_mg_dl(r.value or 0, r.unit), 6) for r in first] == [
            round(p.mg_dl or 0, 6) for p in meter.produced
        ]
        assert any(r.details.get("meal") == "preprandial" for r in first)  # context joined
        # Nothing new: "no records found" is not an error.
        assert [r async for r in driver.sync(first[-1].cursor)] == []
        meter.add_reading(world.clock.now())
        meter.add_reading(world.clock.now() + timedelta(minutes=1))
        fresh = [r async for r in driver.sync(first[-1].cursor)]
        assert await driver.count() == len(meter.produced)
    assert seen(fresh) == truth(meter)[len(first) :]


async def test_disconnect_mid_transfer_then_resync_yields_every_record_once(
    world: VirtualWorld,
) -> None:
    world.clock.pause()
    meter = await world.add_meter("BG-2", history=timedelta(days=4))
    meter.disconnect_after = 5
    got: list[DeviceRecord] = []
    async with world.client_factory(meter.address) as client:
        with pytest.raises(ConnectionLost):
            async for record in GlucoseMeterDriver(client).sync(None):
                got.append(record)
    assert 0 < len(got) <= 5
    async with world.client_factory(meter.address) as client:
        got += [r async for r in GlucoseMeterDriver(client).sync(got[-1].cursor)]
    assert seen(got) == truth(meter)


async def test_pairing_required_meter_syncs_after_pairing(world: VirtualWorld) -> None:
    world.clock.pause()
    meter = await world.add_meter("BG-3", require_pairing=True)
    async with world.client_factory(meter.address) as client:
        with pytest.raises(PairingRequired):
            _ = [r async for r in GlucoseMeterDriver(client).sync(None)]
    for _ in range(2):  # pairs, then reconnects on the stored bond
        async with world.client_factory(meter.address, pair=True) as client:
            records = [r async for r in GlucoseMeterDriver(client).sync(None)]
        assert seen(records) == truth(meter)


@pytest.mark.parametrize(
    "code",
    [
        c
        for c in RacpResponseCode
        if c not in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND)
    ],
)
async def test_racp_failure_codes_raise_typed(world: VirtualWorld, code: RacpResponseCode) -> None:
    meter = await world.add_meter("BG-4")
    meter.racp_error = code
    async with world.client_factory(meter.address) as client:
        with pytest.raises(RacpError) as err:
            _ = [r async for r in GlucoseMeterDriver(client).sync(None)]
    assert err.value.code == code


async def test_no_records_found_is_nothing_new(world: VirtualWorld) -> None:
    meter = await world.add_meter("BG-5")
    meter.racp_error = RacpResponseCode.NO_RECORDS_FOUND
    async with world.client_factory(meter.address) as client:
        assert [r async for r in GlucoseMeterDriver(client).sync(None)] == []


async def test_sequence_number_wrap(world: VirtualWorld) -> None:
    world.clock.pause()
    meter = await world.add_meter("BG-6", history=timedelta(days=2), first_sequence=65533)
    sequences = [p.sequence for p in meter.produced]
    assert 65535 in sequences and 0 in sequences
    async with world.client_factory(meter.address) as client:
        driver = GlucoseMeterDriver(client)
        assert seen([r async for r in driver.sync(None)]) == truth(meter)
        tail = [r async for r in driver.sync(65534)]  # cursor before the wrap
        assert seen(tail) == truth(meter)[2:]
        meter.add_reading(world.clock.now())
        new = [r async for r in driver.sync(tail[-1].cursor)]  # cursor after the wrap
    assert seen(new) == truth(meter)[-1:]


async def test_clock_offset_measured_and_carried_mol_per_litre(world: VirtualWorld) -> None:
    world.clock.pause()
    meter = await world.add_meter("BG-7", unit="mol/L", clock_error=timedelta(hours=-3))
    async with world.client_factory(meter.address) as client:
        driver = GlucoseMeterDriver(client)
        offset = await driver.read_clock_offset()
        expected = (datetime.now(UTC).replace(tzinfo=None) - meter.device_now()).total_seconds()
        records = [r async for r in driver.sync(None)]
        meter.dst_change()  # the device clock jumps an hour
        later = await driver.read_clock_offset()
    assert offset is not None and later is not None
    assert abs(offset - expected) < 2.0
    assert abs((offset - later) - 3600) < 2.0
    assert records and all(r.unit == "mol/L" and r.clock_offset_s == offset for r in records)
