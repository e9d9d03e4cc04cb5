"""The SQLite sink: concurrent writers on one store do not interleave transactions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.contract.urls import StoreUrl
from gateway.store.base import StoredReading
from gateway.store.sqlite import SqliteStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def reading(i: int) -> StoredReading:
    t = T0 + timedelta(minutes=i)
    return StoredReading(
        key=f"{i:032x}",
        patient_id="P-1",
        hub_id="hub-1",
        serial="CGM1",
        device_kind="cgm",
        kind="cgm",
        time=t,
        device_time=t.replace(tzinfo=None),
        clock_offset_s=0.0,
        value=100.0,
        unit="mg/dL",
        mg_dl=100.0,
    )


async def test_concurrent_writes_all_land(tmp_path: Path) -> None:
    store = SqliteStore(StoreUrl.parse(f"sqlite:///{tmp_path}/r.db"))
    await store.open()
    try:
        # A batch flush and a relink (or two ingesters in one process) write at once.
        chunks = [[reading(c * 200 + i) for i in range(200)] for c in range(8)]
        results = await asyncio.gather(*(store.write(chunk) for chunk in chunks))
        assert sum(r.written for r in results) == 1600
        assert await store.count() == 1600
    finally:
        await store.close()
