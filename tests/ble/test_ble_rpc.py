"""Drivers through a bleak backend whose BLE host runs behind a Unix socket
(drivers.ble_rpc), as an agent reaches BlueZ: same records, same errors, same drops."""

from __future__ import annotations

import asyncio
import json
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
from tests.asyncutil import until

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


async def test_bad_requests_get_an_answer_and_bad_lines_end_the_session(
    world: VirtualWorld, backend: type[RemoteBleakClient]
) -> None:
    meter = await world.add_meter("BG-X")
    reader, writer = await asyncio.open_unix_connection(backend.socket_path)
    try:
        writer.write(b'{"id": 1, "op": "read", "handle": 3}\n')
        assert json.loads(await reader.readline()) == {
            "id": 1,
            "error": "not connected",
            "att": None,
        }
        writer.write(json.dumps({"id": 2, "op": "connect", "address": meter.address}).encode())
        writer.write(b"\n")
        assert "services" in json.loads(await reader.readline())["ok"]
        writer.write(b'{"id": 3, "op": "read", "handle": 65000}\n')
        assert "no characteristic" in json.loads(await reader.readline())["error"]
        writer.write(b'{"id": 4, "op": "reboot"}\n')
        assert "unknown operation" in json.loads(await reader.readline())["error"]
        writer.write(b"not json\n")
        assert await reader.readline() == b""  # the host closed the session
    finally:
        writer.close()
    # ... and dropped its link to the peripheral.
    await until(lambda: not world.central.connections)
