"""The InfluxDB 1.x sink against a real influxd: idempotent points, isolated rejects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.contract.urls import StoreUrl
from gateway.store.base import StoredReading
from gateway.store.influx1 import MAX_POINTS_PER_POST, Influx1Store
from gateway.store.lineprotocol import line
from tests.harness import InfluxDB1Server

T0 = datetime(2026, 11, 28, 8, 0, 0, 123456, tzinfo=UTC)


def reading(i: int, mg: float = 100.0, patient: str = "P-1") -> StoredReading:
    return StoredReading(
        key=f"{i:032x}",
        patient_id=patient,
        hub_id="hub-1",
        serial="CGM 1,x=y",  # needs tag escaping
        device_kind="cgm",
        kind="cgm",
        time=T0 + timedelta(minutes=5 * i),
        device_time=(T0 + timedelta(minutes=5 * i)).replace(tzinfo=None),
        clock_offset_s=0.0,
        value=mg,
        unit="mg/dL",
        mg_dl=mg,
        status=("calibration_recommended",),
        details={"note": 'quote " and \\ backslash'},
    )


@pytest.fixture
async def store(influx_db: str) -> AsyncIterator[Influx1Store]:
    s = Influx1Store(StoreUrl.parse(influx_db))
    await s.open()
    yield s
    await s.close()


def test_line_protocol_escapes_and_keeps_microseconds() -> None:
    text = line(reading(0))
    assert text.startswith("glucose,device=CGM\\ 1\\,x\\=y,kind=cgm,patient=P-1 value=100.0,")
    assert 'details="{\\"note\\": \\"quote \\\\\\" and \\\\\\\\ backslash\\"}"' in text
    assert text.endswith(" 1795852800123456000")


async def test_same_reading_twice_is_one_point(store: Influx1Store) -> None:
    batch = [reading(i, 100.0 + i) for i in range(10)]
    assert (await store.write(batch)).written == 10
    assert (await store.write(batch[:5])).written == 5
    assert await store.count() == 10
    series = await store.glucose_series("P-1", T0 - timedelta(hours=1))
    assert [r.mg_dl for r in series] == [100.0 + i for i in range(10)]
    assert series[0] == batch[0]


async def test_a_rejected_point_does_not_take_its_neighbours(
    store: Influx1Store, influxdb: InfluxDB1Server
) -> None:
    # Another writer made "flags" a float field; our string "flags" now conflicts.
    resp = await store.http.post(
        f"{influxdb.http_url}/write",
        params={"db": store.database},
        content=b'glucose,device=OTHER,kind=cgm,patient=P-9 value=1.0,flags=1.0,key="other" 1795852800000000000',
    )
    assert resp.status_code == 204
    good = [reading(i) for i in range(1, 8)]
    bad = reading(99)._replace(flags=("out_of_range",))
    result = await store.write([*good[:3], bad, *good[3:]])
    assert result.written == 7
    assert [r.key for r, _ in result.rejected] == [bad.key]
    assert "conflict" in result.rejected[0][1]
    assert await store.count() == 8


async def test_a_large_batch_goes_out_in_concurrent_chunks_and_keeps_its_rejects(
    store: Influx1Store, influxdb: InfluxDB1Server
) -> None:
    """Several POSTs in flight: every good point lands, the one bad point (in a later
    chunk) is rejected alone, and a reading's duplicate in another chunk is one point."""
    n = 3 * MAX_POINTS_PER_POST + 7
    batch = [reading(i, 40.0 + i % 300) for i in range(n)]
    bad = reading(n + 1)._replace(flags=("out_of_range",))
    # Field types are per shard (a week): the other writer's float "flags" sits in bad's.
    resp = await store.http.post(
        f"{influxdb.http_url}/write",
        params={"db": store.database},
        content=b'glucose,device=OTHER,kind=cgm,patient=P-9 value=1.0,flags=1.0,key="other" '
        + line(bad).rsplit(" ", 1)[1].encode(),
    )
    assert resp.status_code == 204
    batch.insert(2 * MAX_POINTS_PER_POST + 11, bad)
    batch.append(batch[5])  # redelivered within the same batch, in the last chunk
    result = await store.write(batch)
    assert [r.key for r, _ in result.rejected] == [bad.key]
    assert await store.count() == n + 1  # ours plus the other writer's point


async def test_pump_events_are_points_without_a_value(store: Influx1Store) -> None:
    event = reading(1)._replace(
        kind="insulin_event",
        device_kind="insulin_pump",
        value=None,
        unit="",
        mg_dl=None,
        details={"annunciation": "occlusion_detected"},
    )
    text = line(event)
    assert text.startswith("insulin,device=CGM\\ 1\\,x\\=y,kind=insulin_event,patient=P-1 unit=")
    assert "value=" not in text
    assert (await store.write([event, event])).written == 2
    assert await store.count() == 1  # counted by key: the same event twice is one point
    rows = await store.query("SELECT * FROM insulin WHERE kind = 'insulin_event'")
    assert len(rows) == 1 and rows[0].get("value") is None
