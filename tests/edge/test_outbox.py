"""The outbox keeps records and cursors together, survives reopening, and is bounded."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from pathlib import Path

from rich.console import Console

from edge.outbox import Outbox
from edge.status import print_status


async def test_records_and_cursor_commit_together_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with Outbox(path) as box:
        added = await box.put("BG1", [("k1", "{}"), ("k2", "{}")], stream="records", cursor=2)
        assert added == 2
        # The same record read twice is one row.
        assert await box.put("BG1", [("k2", "{}")], stream="records", cursor=2) == 0
    async with Outbox(path) as box:
        assert box.depth == 2
        assert await box.cursor("BG1", "records") == 2
        rows = await box.peek(10)
        assert [r.key for r in rows] == ["k1", "k2"]
        await box.ack([rows[0].id])
    async with Outbox(path) as box:
        assert [r.key for r in await box.peek(10)] == ["k2"]


async def test_failed_transaction_moves_neither_records_nor_cursor(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db") as box:
        await box.put("BG1", [("k1", "{}")], stream="records", cursor=1)
        bad_payload: object = object()  # not bindable: the INSERT fails mid-transaction
        try:
            await box.put("BG1", [("k2", bad_payload)], stream="records", cursor=2)  # type: ignore[list-item]
        except Exception:
            pass
        else:
            raise AssertionError("expected the insert to fail")
        assert await box.cursor("BG1", "records") == 1
        assert box.depth == 1


async def test_full_outbox_blocks_producers_until_acked(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db", max_rows=10) as box:
        await box.put("CGM1", [(f"k{i}", "{}") for i in range(10)], stream="records", cursor=10)
        assert box.full
        waiter = asyncio.create_task(box.wait_for_space())
        await asyncio.sleep(0)
        assert not waiter.done()
        rows = await box.peek(3)
        await box.ack([r.id for r in rows])
        await asyncio.wait_for(waiter, 1)
        assert box.depth == 7 and not box.full


async def test_peek_skips_rows_in_flight(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.db") as box:
        await box.put("CGM1", [(f"k{i}", "{}") for i in range(5)], stream="records", cursor=5)
        first = await box.peek(2)
        second = await box.peek(10, exclude=[r.id for r in first])
        assert [r.key for r in second] == ["k2", "k3", "k4"]


OLD_CURSORS = """
CREATE TABLE cursors (
    device_serial TEXT NOT NULL,
    stream TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (device_serial, stream)
);
INSERT INTO cursors VALUES ('CGM1', 'records', 355, 1.0);
"""


async def test_an_older_outbox_gains_the_session_column_and_keeps_its_cursor(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # an outbox written before cursors had sessions
        db.executescript(OLD_CURSORS)
    db.close()
    async with Outbox(path) as box:
        assert await box.cursor_state("CGM1", "records") == (355, None)
        await box.put("CGM1", [("k1", "{}")], stream="records", cursor=5, session="S2")
        assert await box.cursor_state("CGM1", "records") == (5, "S2")
    async with Outbox(path) as box:  # reopening migrates nothing twice
        assert await box.cursor_state("CGM1", "records") == (5, "S2")
        assert await box.cursor("CGM1", "records") == 5


async def test_status_shows_each_cursor_with_its_session(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    async with Outbox(path) as box:
        await box.record_contact("CGM1", "F1:00:00:00:00:01", "cgm")
        await box.put(
            "CGM1", [("k1", "{}")], stream="records", cursor=35, session="2026-03-01T08:30:00"
        )
        await box.record_contact("BG1", "F1:00:00:00:00:02", "glucose_meter")
        await box.put("BG1", [("k2", "{}")], stream="records", cursor=7)
    out = io.StringIO()
    await print_status(path, Console(file=out, width=200))
    text = out.getvalue()
    assert "2 readings waiting" in text
    assert "35 in session 2026-03-01T08:30:00" in text
    assert " 7 " in text and "7 in session" not in text
