"""Backfill one year of 5-minute CGM records (about 105k) from a virtual CGM through the
bleak API, and compare with the raw notification rate of the same virtual link.

    .venv/bin/python benchmarks/ble_backfill.py [--days 365]

Reference (same run): bumble's own GATT client subscribed to the same characteristic,
receiving the same number of notifications with no bleak, no decoding, no records.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime, timedelta

from bumble.device import Peer
from bumble.hci import Address

from drivers import uuids
from drivers.devices import CgmDriver
from drivers.virtual import SimClock, VirtualWorld


async def main(days: float) -> None:
    clock = SimClock(datetime.now(), speed=1.0)
    async with VirtualWorld(clock, operation_timeout_s=60) as world:
        t0 = time.perf_counter()
        cgm = await world.add_cgm("BENCH-CGM", history=timedelta(days=days))
        clock.pause()
        n = len(cgm.records)
        print(f"virtual CGM generated {n} records in {time.perf_counter() - t0:.1f} s")

        # Reference: raw notifications over the same link, bumble client, no decoding.
        connection = await world.central.connect(Address(cgm.address))
        peer = Peer(connection)
        await peer.discover_services()
        await peer.discover_characteristics()
        (char,) = peer.get_characteristics_by_uuid(uuids.CGM_MEASUREMENT[4:8])  # type: ignore[arg-type]
        got = 0
        done = asyncio.Event()

        def on_value(_v: bytes) -> None:
            nonlocal got
            got += 1
            if got == n:
                done.set()

        await peer.subscribe(char, on_value)
        payload = bytes(cgm.records[0])
        t0 = time.perf_counter()
        for _ in range(n):
            await cgm.device.notify_subscribers(cgm.measurement, payload)
        await asyncio.wait_for(done.wait(), 600)
        raw_s = time.perf_counter() - t0
        await connection.disconnect()

        # Ours: bleak client on the bumble backend, CgmDriver RACP backfill, typed records.
        t0 = time.perf_counter()
        async with world.client_factory(cgm.address) as client:
            driver = CgmDriver(client)
            await driver.read_identity()
            records = [r async for r in driver.sync(None)]
        ours_s = time.perf_counter() - t0
        assert len(records) == n, (len(records), n)

    print(f"{'path':<44}{'records':>9}{'seconds':>9}{'per s':>10}")
    print(f"{'raw bumble notifications (reference)':<44}{n:>9}{raw_s:>9.1f}{n / raw_s:>10.0f}")
    print(f"{'bleak API + CgmDriver RACP backfill':<44}{n:>9}{ours_s:>9.1f}{n / ours_s:>10.0f}")
    print(f"ratio ours / reference: {raw_s / ours_s:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=365.0)
    asyncio.run(main(parser.parse_args().days))
