"""Durable outbox: every record read from a device waits here until its PUBACK.

SQLite in WAL mode with ``synchronous=FULL``: a commit is on disk (fsync of the WAL)
before it returns, so a power cut right after a device's sync cursor moves cannot lose
the records that moved it. (``NORMAL`` in WAL mode may lose the last transactions on
power loss; on a hub that is unplugged without warning that is not acceptable.)

A record and its device's new cursor are committed in one transaction. Rows leave only
through :meth:`Outbox.ack` after the broker acknowledged the batch that carried them.
The outbox is bounded: when full, :meth:`wait_for_space` blocks device syncs (devices
keep their own memory), nothing is ever dropped, not even by age.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    device_serial TEXT NOT NULL,
    live INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    device_serial TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    session TEXT,
    PRIMARY KEY (device_serial, stream)
);
CREATE TABLE IF NOT EXISTS contacts (
    device_serial TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    kind TEXT NOT NULL,
    last_contact REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str
    payload: str  # one contract Reading as JSON
    created_at: float


class Outbox:
    def __init__(self, path: Path, *, max_rows: int = 500_000) -> None:
        self.path = path
        self.max_rows = max_rows
        self._db: aiosqlite.Connection | None = None
        self._depth = 0
        self._changed = asyncio.Event()
        self._space = asyncio.Event()
        self._lock = asyncio.Lock()

    async def open(self) -> Outbox:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.executescript(SCHEMA)
        await self._migrate()
        async with self._db.execute("SELECT COUNT(*) FROM outbox") as cur:
            row = await cur.fetchone()
        self._depth = int(row[0]) if row else 0
        self._signal()
        return self

    async def _migrate(self) -> None:
        """Bring an outbox written by an older agent up to the current schema in place.

        ``cursors.session`` (the CGM session a time-offset cursor belongs to) arrived
        later: added as a nullable column, so every stored cursor is kept and reads as
        belonging to an unknown session until the next commit names it.
        """
        async with self.db.execute("PRAGMA table_info(cursors)") as cur:
            columns = {row[1] for row in await cur.fetchall()}
        if "session" not in columns:
            await self.db.execute("ALTER TABLE cursors ADD COLUMN session TEXT DEFAULT NULL")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def __aenter__(self) -> Outbox:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("outbox is not open")
        return self._db

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def full(self) -> bool:
        return self._depth >= self.max_rows

    def _signal(self) -> None:
        self._changed.set()
        if self.full:
            self._space.clear()
        else:
            self._space.set()

    async def wait_for_space(self) -> None:
        await self._space.wait()

    async def wait_for_rows(self) -> None:
        """Return once the outbox holds rows (possibly immediately)."""
        while self._depth == 0:
            self._changed.clear()
            await self._changed.wait()

    async def wait_for_change(self) -> None:
        """Return at the next put or ack."""
        self._changed.clear()
        await self._changed.wait()

    async def put(
        self,
        device_serial: str,
        readings: Sequence[tuple[str, str]],
        *,
        stream: str,
        cursor: int | None,
        session: str | None = None,
        live: bool = False,
    ) -> int:
        """Store ``(key, payload)`` readings and the device's new cursor in one transaction.

        ``session`` names what the cursor counts within (a CGM's session start time: its
        time offsets restart at 0 in every session); None for devices without sessions.
        A key already waiting is ignored (the same record read twice is one row).
        Returns the number of new rows.
        """
        now = time.time()
        async with self._lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                await db.executemany(
                    "INSERT OR IGNORE INTO outbox (key, device_serial, live, created_at, payload)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(k, device_serial, int(live), now, p) for k, p in readings],
                )
                added = db.total_changes - before
                if cursor is not None:
                    await db.execute(
                        "INSERT INTO cursors (device_serial, stream, cursor, updated_at, session)"
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_serial, stream)"
                        " DO UPDATE SET cursor = excluded.cursor,"
                        " updated_at = excluded.updated_at, session = excluded.session",
                        (device_serial, stream, cursor, now, session),
                    )
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            self._depth += added
            self._signal()
            return added

    async def cursor(self, device_serial: str, stream: str) -> int | None:
        async with self.db.execute(
            "SELECT cursor FROM cursors WHERE device_serial = ? AND stream = ?",
            (device_serial, stream),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else None

    async def cursor_state(self, device_serial: str, stream: str) -> tuple[int | None, str | None]:
        """The committed cursor and the session it belongs to (None, None when unknown)."""
        async with self.db.execute(
            "SELECT cursor, session FROM cursors WHERE device_serial = ? AND stream = ?",
            (device_serial, stream),
        ) as cur:
            row = await cur.fetchone()
        return (int(row[0]), row[1]) if row else (None, None)

    async def record_contact(self, device_serial: str, address: str, kind: str) -> None:
        async with self._lock:
            await self.db.execute(
                "INSERT INTO contacts (device_serial, address, kind, last_contact) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (device_serial) DO UPDATE SET address = excluded.address,"
                " kind = excluded.kind, last_contact = excluded.last_contact",
                (device_serial, address, kind, time.time()),
            )

    async def contacts(self) -> list[tuple[str, str, str, float]]:
        async with self.db.execute(
            "SELECT device_serial, address, kind, last_contact FROM contacts ORDER BY 1"
        ) as cur:
            return [(r[0], r[1], r[2], float(r[3])) for r in await cur.fetchall()]

    async def cursors(self) -> list[tuple[str, str, int, float, str | None]]:
        """Every cursor: serial, stream, cursor, when it moved, and its session (or None)."""
        async with self.db.execute(
            "SELECT device_serial, stream, cursor, updated_at, session FROM cursors ORDER BY 1, 2"
        ) as cur:
            return [(r[0], r[1], int(r[2]), float(r[3]), r[4]) for r in await cur.fetchall()]

    async def peek(self, limit: int, *, exclude: Iterable[int] = ()) -> list[OutboxRow]:
        """Oldest rows first, skipping ids already in flight."""
        skip = tuple(exclude)
        sql = "SELECT id, key, payload, created_at FROM outbox"
        if skip:
            sql += f" WHERE id NOT IN ({','.join('?' * len(skip))})"
        sql += " ORDER BY id LIMIT ?"
        async with self.db.execute(sql, (*skip, limit)) as cur:
            rows = await cur.fetchall()
        return [OutboxRow(int(r[0]), r[1], r[2], float(r[3])) for r in rows]

    async def ack(self, ids: Sequence[int]) -> None:
        """Remove rows whose batch the broker acknowledged."""
        if not ids:
            return
        async with self._lock:
            db = self.db
            await db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                await db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
                removed = db.total_changes - before
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            self._depth -= removed
            self._signal()

    async def oldest_age_s(self) -> float | None:
        async with self.db.execute("SELECT MIN(created_at) FROM outbox") as cur:
            row = await cur.fetchone()
        if not row or row[0] is None:
            return None
        return max(0.0, time.time() - float(row[0]))


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)
