"""Drivers through a bleak backend whose BLE host runs behind a Unix socket
(drivers.ble_rpc), as an agent reaches BlueZ: same records, same errors, same drops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from bleak import BleakClient
from bleak.exc import BleakError

from drivers import uuids
from drivers.ble_rpc import RemoteBleakClient, remote_backend
from drivers.ble_rpc.server import serve
from drivers.devices import CgmDriver, GlucoseMeterDriver, PairingRequired
from drivers.virtual import VirtualWorld

pytestmark = pytest.mark.ble


@pytest.fixture
async def backend(world: VirtualWorld, tmp_path: Path) -> AsyncIterator[type[RemoteBleakClient]]:
    path = tmp_path / "ble-host.sock"
    server = await serve(world.client_backend, path)
    yield remote_backend(str(path))
    server.close()
    await server.wait_closed()


async def test_records_and_live_notifications_match_the_local_backend(
    world: VirtualWorld, backend: type[RemoteBleakClient]
) -> None:
    cgm = await world.add_cgm("CGM-R", history=timedelta(hours=1))
    async with BleakClient(cgm.address, backend=backend, timeout=3) as client:
        assert client.mtu_size == 517  # negotiated by the host, reported here
        driver = CgmDriver(client)
        backfill = [r async for r in driver.sync(None)]
        live = driver.live()
        first_live = await anext(live)
        await live.aclose()
    produced = {p.time_offset_min: p.value for p in cgm.produced}
    assert len(backfill) >= 12
    assert [r.cursor for r in backfill] == sorted(produced)[: len(backfill)]
    for r in [*backfill, first_live]:
        assert r.value == produced[r.time_offset_min]
    assert first_live.time_offset_min is not None
    assert first_live.time_offset_min > backfill[-1].time_offset_min


async def test_pairing_and_the_att_error_without_it(
    world: VirtualWorld, backend: type[RemoteBleakClient]
) -> None:
    world.clock.pause()
    meter = await world.add_meter("BG-R", history=timedelta(days=2), require_pairing=True)
    async with BleakClient(meter.address, backend=backend, timeout=3) as client:
        with pytest.raises(PairingRequired):  # an ATT insufficient-authentication error
            _ = [r async for r in GlucoseMeterDriver(client).sync(None)]
    async with BleakClient(meter.address, backend=backend, pair=True, timeout=3) as client:
        records = [r async for r in GlucoseMeterDriver(client).sync(None)]
    assert [(r.sequence, r.value) for r in records] == [
        (p.sequence, p.value) for p in meter.produced
    ]


async def test_a_dropped_link_reaches_bleak(
    world: VirtualWorld, backend: type[RemoteBleakClient]
) -> None:
    meter = await world.add_meter("BG-D")
    dropped = asyncio.Event()
    client = BleakClient(meter.address, lambda _c: dropped.set(), backend=backend, timeout=3)
    async with client:
        assert (await client.read_gatt_char(uuids.BATTERY_LEVEL))[0] == meter.battery_pct
        await meter.drop_connections()
        await asyncio.wait_for(dropped.wait(), 5)
        assert not client.is_connected
        with pytest.raises(BleakError):
            await client.read_gatt_char(uuids.BATTERY_LEVEL)


async def test_an_unreachable_host_is_a_bleak_error(tmp_path: Path) -> None:
    backend = remote_backend(str(tmp_path / "nobody.sock"))
    with pytest.raises(BleakError, match="unreachable"):
        await BleakClient("F1:00:00:00:00:01", backend=backend, timeout=1).connect()
