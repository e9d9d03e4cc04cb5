"""``diatabase edge status``: read the outbox file of a (running or stopped) agent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge.outbox import Outbox


async def print_status(path: Path, console: Console) -> None:
    async with Outbox(path) as outbox:
        age = await outbox.oldest_age_s()
        console.print(f"outbox [bold]{path}[/]: {outbox.depth} readings waiting")
        console.print(
            "oldest unsent reading: " + (f"{age:.0f} s old" if age is not None else "none")
        )
        cursors = {
            serial: (cursor if session is None else f"{cursor} in session {session}", at)
            for serial, _stream, cursor, at, session in await outbox.cursors()
        }
        table = Table("device", "kind", "address", "sync cursor", "last sync", "last contact")
        for serial, address, kind, contact in await outbox.contacts():
            cursor, synced = cursors.get(serial, (None, None))
            table.add_row(
                serial,
                kind,
                address,
                "-" if cursor is None else str(cursor),
                _when(synced),
                _when(contact),
            )
        console.print(table)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
