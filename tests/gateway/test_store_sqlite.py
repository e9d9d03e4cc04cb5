"""The SQLite sink: concurrent writers on one store do not interleave transactions."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.contract.urls import StoreUrl
from gateway.store.base import StoredReading
from gateway.store.sqlite import _COLUMNS, SCHEMA, SqliteStore, _row

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


async def test_pump_events_without_value_and_an_older_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    # A database made before pump events: `value` was NOT NULL. It must open, keep its
    # rows, and take a value-less event.
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.replace("value REAL,", "value REAL NOT NULL,"))
    old.execute(
        f"INSERT INTO readings ({_COLUMNS}, stored_at_ms) VALUES ({', '.join('?' * 19)})",
        (*_row(reading(1)), 1),
    )
    old.commit()
    old.close()
    store = await SqliteStore(StoreUrl.parse(f"sqlite:///{path}")).open()
    try:
        event = reading(2)._replace(
            kind="insulin_event",
            device_kind="insulin_pump",
            value=None,
            unit="",
            mg_dl=None,
            details={"annunciation": "reservoir_low"},
        )
        assert (await store.write([event])).written == 1
        rows = {r.key: r for r in await store.all_readings()}
        assert rows[reading(1).key] == reading(1)
        assert rows[event.key].value is None
        assert rows[event.key].details == {"annunciation": "reservoir_low"}
    finally:
        await store.close()
    # the table was rebuilt once, with its index
    with sqlite3.connect(path) as db:
        assert db.execute(
            "SELECT \"notnull\" FROM pragma_table_info('readings') WHERE name='value'"
        ).fetchone() == (0,)
        assert db.execute(
            "SELECT count(*) FROM sqlite_master WHERE name='ix_readings_patient_time'"
        ).fetchone() == (1,)
