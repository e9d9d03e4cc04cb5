"""Embedded sink: one SQLite file (WAL, synchronous=FULL), the key as primary key."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

import aiosqlite

from gateway.contract.urls import StoreUrl
from gateway.store.base import IngestWindow, StoredReading, StoreError, WriteResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    key TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    hub_id TEXT NOT NULL,
    serial TEXT NOT NULL,
    device_kind TEXT NOT NULL,
    kind TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    device_time TEXT NOT NULL,
    clock_offset_s REAL NOT NULL,
    value REAL,
    unit TEXT NOT NULL,
    mg_dl REAL,
    flags TEXT NOT NULL,
    status TEXT NOT NULL,
    details TEXT NOT NULL,
    raw TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    signed_by TEXT NOT NULL DEFAULT '',
    stored_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_readings_patient_time ON readings (patient_id, time_ms);
"""

_COLUMNS = (
    "key, patient_id, hub_id, serial, device_kind, kind, time_ms, device_time, clock_offset_s,"
    " value, unit, mg_dl, flags, status, details, raw, batch_id, signed_by"
)


def _ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def _row(r: StoredReading) -> tuple[object, ...]:
    return (
        r.key,
        r.patient_id,
        r.hub_id,
        r.serial,
        r.device_kind,
        r.kind,
        _ms(r.time),
        r.device_time.isoformat(),
        r.clock_offset_s,
        r.value,
        r.unit,
        r.mg_dl,
        json.dumps(list(r.flags)),
        json.dumps(list(r.status)),
        json.dumps(r.details, sort_keys=True),
        r.raw,
        r.batch_id,
        r.signed_by,
    )


def _reading(row: sqlite3.Row) -> StoredReading:
    return StoredReading(
        key=row["key"],
        patient_id=row["patient_id"],
        hub_id=row["hub_id"],
        serial=row["serial"],
        device_kind=row["device_kind"],
        kind=row["kind"],
        time=datetime.fromtimestamp(row["time_ms"] / 1000, UTC),
        device_time=datetime.fromisoformat(row["device_time"]),
        clock_offset_s=row["clock_offset_s"],
        value=row["value"],
        unit=row["unit"],
        mg_dl=row["mg_dl"],
        flags=tuple(json.loads(row["flags"])),
        status=tuple(json.loads(row["status"])),
        details=json.loads(row["details"]),
        raw=row["raw"],
        batch_id=row["batch_id"],
        signed_by=row["signed_by"],
    )


class SqliteStore:
    def __init__(self, url: StoreUrl) -> None:
        assert url.path is not None
        self.path = url.path
        self._db: aiosqlite.Connection | None = None
        # One connection: concurrent writers (a batch flush and a relink, or two ingesters
        # in one process) must not interleave their BEGIN ... COMMIT on it.
        self._write_lock = asyncio.Lock()

    async def open(self) -> SqliteStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.execute("PRAGMA busy_timeout=10000")
        await self._db.executescript(SCHEMA)
        await self._migrate()
        return self

    async def _migrate(self) -> None:
        """Databases made before pump events (``value`` was NOT NULL): rebuild the table."""
        async with self.db.execute("PRAGMA table_info(readings)") as cur:
            notnull = {row["name"]: row["notnull"] for row in await cur.fetchall()}
        if not notnull.get("value"):
            return
        # SQLite cannot drop a NOT NULL constraint in place; copy in one transaction.
        await self.db.executescript(
            "BEGIN IMMEDIATE;"
            "DROP INDEX IF EXISTS ix_readings_patient_time;"
            "ALTER TABLE readings RENAME TO readings_before_v2;"
            f"{SCHEMA}"
            f"INSERT INTO readings ({_COLUMNS}, stored_at_ms)"
            f" SELECT {_COLUMNS}, stored_at_ms FROM readings_before_v2;"
            "DROP TABLE readings_before_v2;"
            "COMMIT;"
        )

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def write(self, readings: Sequence[StoredReading]) -> WriteResult:
        if not readings:
            return WriteResult(0, 0)
        async with self._write_lock:
            return await self._write(readings)

    async def _write(self, readings: Sequence[StoredReading]) -> WriteResult:
        now = _ms(datetime.now(UTC))
        db = self.db
        try:
            await db.execute("BEGIN IMMEDIATE")
            before = db.total_changes
            await db.executemany(
                f"INSERT INTO readings ({_COLUMNS}, stored_at_ms)"
                f" VALUES ({', '.join('?' * 19)}) ON CONFLICT (key) DO NOTHING",
                [(*_row(r), now) for r in readings],
            )
            written = db.total_changes - before
            await db.execute("COMMIT")
        except sqlite3.Error as err:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise StoreError(f"sqlite write failed: {err}") from err
        return WriteResult(written=written, duplicates=len(readings) - written)

    async def glucose_series(
        self, patient_id: str, since: datetime, until: datetime | None = None
    ) -> list[StoredReading]:
        sql = "SELECT * FROM readings WHERE patient_id = ? AND mg_dl IS NOT NULL AND time_ms >= ?"
        args: list[object] = [patient_id, _ms(since)]
        if until is not None:
            sql += " AND time_ms < ?"
            args.append(_ms(until))
        async with self.db.execute(sql + " ORDER BY time_ms", args) as cur:
            return [_reading(r) for r in await cur.fetchall()]

    async def all_readings(self) -> list[StoredReading]:
        async with self.db.execute("SELECT * FROM readings ORDER BY time_ms") as cur:
            return [_reading(r) for r in await cur.fetchall()]

    async def latest_per_patient(self) -> list[StoredReading]:
        sql = (
            "SELECT r.* FROM readings r JOIN (SELECT patient_id, MAX(time_ms) AS t FROM readings"
            " WHERE mg_dl IS NOT NULL GROUP BY patient_id) m"
            " ON r.patient_id = m.patient_id AND r.time_ms = m.t AND r.mg_dl IS NOT NULL"
        )
        async with self.db.execute(sql) as cur:
            return [_reading(r) for r in await cur.fetchall()]

    async def count(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM readings") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- read side of the web views ------------------------------------------------------
    async def change_marker(self) -> object:
        # MAX(rowid) is a b-tree lookup: it moves with every new row and costs nothing
        # to poll; a duplicate (ON CONFLICT DO NOTHING) adds no row and changes nothing.
        async with self.db.execute("SELECT MAX(rowid) FROM readings") as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def ingest_window(
        self, window_s: float = 60.0, *, now: datetime | None = None, max_rows: int = 1_000_000
    ) -> IngestWindow:
        """Readings stored in the last ``window_s`` s, their batches and lags.

        Rows are appended, so stored_at_ms grows with rowid: the window is the table's
        tail, read backwards in chunks (stored_at_ms has no index and needs none).
        """
        cutoff = _ms(now or datetime.now(UTC)) - round(window_s * 1000)
        lags: list[float] = []
        batches: set[str] = set()
        below: int | None = None
        while len(lags) < max_rows:
            sql = "SELECT rowid, stored_at_ms, time_ms, batch_id FROM readings"
            args: list[object] = []
            if below is not None:
                sql += " WHERE rowid < ?"
                args.append(below)
            async with self.db.execute(sql + " ORDER BY rowid DESC LIMIT 5000", args) as cur:
                rows = await cur.fetchall()
            if not rows:
                break
            for rowid, stored_at, time_ms, batch_id in rows:
                if stored_at < cutoff:
                    rows = []
                    break
                lags.append((stored_at - time_ms) / 1000)
                batches.add(batch_id)
                below = rowid
            if not rows:
                break
        return IngestWindow(
            window_s=window_s,
            readings=len(lags),
            messages=len(batches),
            lags_s=tuple(lags),
            by_stored_time=True,
        )
