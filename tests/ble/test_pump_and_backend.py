"""The insulin pump driver, the scanner backend and peripheral-side disconnects."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from drivers import uuids
from drivers.devices import InsulinPumpDriver
from drivers.records import RecordKind
from drivers.virtual import VirtualWorld

pytestmark = pytest.mark.ble


async def test_pump_history_full_and_incremental(world: VirtualWorld) -> None:
    world.clock.pause()
    pump = await world.add_pump("PUMP-1", history=timedelta(days=2))
    async with world.client_factory(pump.address) as client:
        driver = InsulinPumpDriver(client)
        records = [r async for r in driver.sync(None)]
        insulin = [r for r in records if r.kind is not RecordKind.INSULIN_EVENT]
        assert [(r.kind.value, r.sequence, r.device_time, r.value) for r in insulin] == [
            (p.kind, p.sequence, p.device_time, p.value) for p in pump.produced
        ]
        assert {r.unit for r in insulin} == {"IU", "IU/h"}
        pump.bolus(world.clock.now(), 4.5)
        new = [r async for r in driver.sync(records[-1].cursor)]
        status = await driver.read_status()
    assert [(r.kind, r.value, r.device_time) for r in new] == [
        (RecordKind.INSULIN_BOLUS, 4.5, pump.produced[-1].device_time)
    ]
    assert status.reservoir_remaining_iu.to_float() == pytest.approx(pump.reservoir_iu, abs=0.1)


async def test_scanner_sees_every_peripheral(world: VirtualWorld) -> None:
    devices = [await world.add_meter("BG-S"), await world.add_cgm("CGM-S")]
    seen: dict[str, AdvertisementData] = {}
    everyone = asyncio.Event()

    def found(device: BLEDevice, ad: AdvertisementData) -> None:
        seen[device.address] = ad
        if len(seen) == len(devices):
            everyone.set()

    async with world.scanner(detection_callback=found):
        await asyncio.wait_for(everyone.wait(), 5)
    assert uuids.GLUCOSE_SERVICE in seen[devices[0].address].service_uuids
    assert seen[devices[1].address].local_name == "Virtual CGM CGM-S"


async def test_peripheral_disconnect_reaches_bleak(world: VirtualWorld) -> None:
    meter = await world.add_meter("BG-D")
    dropped = asyncio.Event()

    def on_disconnect(_client: BleakClient) -> None:
        dropped.set()

    client = BleakClient(meter.address, on_disconnect, backend=world.client_backend, timeout=3)
    async with client:
        assert client.is_connected
        await meter.drop_connections()
        await asyncio.wait_for(dropped.wait(), 5)
        assert not client.is_connected
        with pytest.raises(BleakError):
            await client.read_gatt_char(uuids.BATTERY_LEVEL)
