"""Backfill one year of 5-minute CGM records (about 105k) from virtual CGMs through the
bleak API, and compare with the raw notification rate of the same virtual link.

    .venv/bin/python benchmarks/ble_backfill.py [--days 365]

A CGMS Time Offset is uint16 minutes, so one session holds at most 45.5 days: a year is
nine sessions of ~40.6 days (one virtual sensor each), backfilled one after the other
with ``CgmDriver.sync(None)`` (RACP "all records"; the peripheral packs as many records
per notification as the negotiated ATT MTU allows, as CGMS permits).

Reference (same run, same link): bumble's own GATT client subscribed to the CGM
Measurement characteristic, receiving the same number of notifications of the same
packed payload with no bleak, no decoding and no records.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from datetime import datetime, timedelta

from bumble.device import Peer

from drivers import uuids
from drivers.bumble_backend.client import PREFERRED_MTU, peer_address
from drivers.devices import CgmDriver
from drivers.virtual import SimClock, VirtualWorld

SESSION_MAX_DAYS = 45.0


async def main(days: float) -> None:
    sessions = max(1, math.ceil(days / SESSION_MAX_DAYS))
    span = timedelta(days=days / sessions)
    clock = SimClock(datetime(2026, 1, 1), speed=1.0)
    async with VirtualWorld(clock, operation_timeout_s=60) as world:
        clock.pause()
        t0 = time.perf_counter()
        cgms = [await world.add_cgm(f"BENCH-{i}", history=span) for i in range(sessions)]
        n = sum(len(c.records) for c in cgms)
        print(
            f"{sessions} virtual sessions, {n} records generated in {time.perf_counter() - t0:.1f} s"
        )

        # Reference: raw notifications of the same packed payload over the same link.
        cgm = cgms[0]
        connection = await world.central.connect(peer_address(cgm.address))
        peer = Peer(connection)
        await peer.request_mtu(PREFERRED_MTU)
        await peer.discover_services()
        await peer.discover_characteristics()
        (char,) = peer.get_characteristics_by_uuid(uuids.CGM_MEASUREMENT[4:8])  # type: ignore[arg-type]
        payload = b""
        per = 0
        for record in cgm.records:  # packed as the peripheral packs an RACP transfer
            if len(payload) + len(bytes(record)) > connection.att_mtu - 3:
                break
            payload += bytes(record)
            per += 1
        count = math.ceil(n / per)
        got = 0
        done = asyncio.Event()

        def on_value(_v: bytes) -> None:
            nonlocal got
            got += 1
            if got == count:
                done.set()

        await peer.subscribe(char, on_value)
        server_side = cgm.connections[0]
        t0 = time.perf_counter()
        for _ in range(count):
            await cgm.device.notify_subscriber(server_side, cgm.measurement, payload)
        await asyncio.wait_for(done.wait(), 600)
        raw_s = time.perf_counter() - t0
        await connection.disconnect()
        await cgm.wait_disconnected()

        # Ours: bleak client on the bumble backend, CgmDriver RACP backfill, typed records.
        t0 = time.perf_counter()
        total = 0
        for cgm in cgms:
            async with world.client_factory(cgm.address) as client:
                records = [r async for r in CgmDriver(client).sync(None)]
                assert len(records) == len(cgm.records), (len(records), len(cgm.records))
                total += len(records)
        ours_s = time.perf_counter() - t0

    print(f"records per notification (ATT MTU {PREFERRED_MTU}): {per}")
    print(f"{'path':<48}{'records':>9}{'seconds':>9}{'records/s':>11}{'notif/s':>9}")
    print(
        f"{'raw bumble notifications (reference)':<48}{n:>9}{raw_s:>9.2f}"
        f"{n / raw_s:>11.0f}{count / raw_s:>9.0f}"
    )
    print(
        f"{'bleak API + CgmDriver RACP backfill':<48}{total:>9}{ours_s:>9.2f}"
        f"{total / ours_s:>11.0f}{count / ours_s:>9.0f}"
    )
    print(f"ratio ours / reference: {raw_s / ours_s:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=float, default=365.0)
    asyncio.run(main(parser.parse_args().days))
