"""Registry on SQLite and on a real PostgreSQL: assignments by time, no overlaps, audit,
quarantine and parked readings kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.contract.urls import StoreUrl
from gateway.registry.service import (
    AssignmentOverlapError,
    ParkedReading,
    QuarantineEntry,
    Registry,
    UnknownEntityError,
)

JAN, FEB, MAR = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3))


@pytest.fixture(params=["sqlite", "postgres"])
async def registry(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Registry]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/registry.db"
    else:
        url = request.getfixturevalue("pg_url")
    reg = Registry(StoreUrl.parse(url))
    await reg.open()
    yield reg
    await reg.close()


async def test_assignments_link_by_time_and_never_overlap(registry: Registry) -> None:
    await registry.add_hub("hub-1")
    for p in ("P-1", "P-2"):
        await registry.add_patient(p)
    await registry.add_device("CGM1", "cgm", hub_id="hub-1")
    await registry.assign("CGM1", "P-1", JAN, FEB)
    await registry.assign("CGM1", "P-2", FEB)  # the sensor changed hands on 1 February
    with pytest.raises(AssignmentOverlapError):
        await registry.assign("CGM1", "P-1", MAR)
    assert registry.link("CGM1", datetime(2025, 12, 31, tzinfo=UTC)) is None
    assert registry.link("CGM1", JAN) == "P-1"
    assert registry.link("CGM1", datetime(2026, 1, 31, 23, 59, tzinfo=UTC)) == "P-1"
    assert registry.link("CGM1", FEB) == "P-2"
    assert await registry.unassign("CGM1", MAR) == 1
    assert registry.link("CGM1", MAR) is None
    with pytest.raises(UnknownEntityError):
        await registry.assign("NOPE", "P-1", JAN)


async def test_another_process_change_is_seen_by_refresh(registry: Registry) -> None:
    other = Registry(registry.url)
    await other.open()
    try:
        await other.add_patient("P-9")
        await other.add_device("BG9", "glucose_meter")
        await other.assign("BG9", "P-9", JAN)
    finally:
        await other.close()
    assert registry.link("BG9", FEB) is None
    assert await registry.refresh() is True
    assert registry.link("BG9", FEB) == "P-9"
    assert await registry.refresh() is False


async def test_quarantine_and_parked_round_trip(registry: Registry) -> None:
    payload = b"\x00\xffnot json"
    await registry.quarantine(
        [QuarantineEntry("malformed_json", "bad", "diatabase/v1/hubs/h/readings", payload, "h")]
    )
    (row,) = await registry.quarantine_list()
    assert (row.reason, row.payload, row.hub_id) == ("malformed_json", payload, "h")
    assert await registry.quarantine_counts() == {"malformed_json": 1}
    parked = ParkedReading("a" * 32, "CGM1", JAN, "hub-1", "{}")
    await registry.park([parked, parked])
    assert await registry.parked_count() == 1
    await registry.unpark(["a" * 32])
    assert await registry.parked_count() == 0
