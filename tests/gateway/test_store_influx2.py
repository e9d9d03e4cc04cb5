"""The influxdb2:// sink against a real server speaking InfluxDB's v2 write API
(VictoriaMetrics accepts /api/v2/write); read back through its export API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway.contract.urls import StoreUrl
from gateway.store.base import StoredReading, StoreError
from gateway.store.influx2 import TOKEN_ENV, Influx2Store
from tests.harness import VictoriaMetricsServer

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def reading(i: int) -> StoredReading:
    t = T0 + timedelta(minutes=5 * i)
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
        value=90.0 + i,
        unit="mg/dL",
        mg_dl=90.0 + i,
    )


async def test_write_then_export(
    victoria_metrics: VictoriaMetricsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "test-token")
    host_port = victoria_metrics.url.removeprefix("http://")
    store = Influx2Store(StoreUrl.parse(f"influxdb2://{host_port}?org=o&bucket=b"))
    await store.open()
    try:
        batch = [reading(i) for i in range(12)]
        assert (await store.write(batch)).written == 12
        assert (await store.write(batch[:6])).written == 6  # redelivery
    finally:
        await store.close()
    victoria_metrics.flush()
    async with httpx.AsyncClient() as http:
        resp = await http.get(
            f"{victoria_metrics.url}/api/v1/export",
            params={"match[]": '{__name__="glucose_mg_dl",patient="P-1"}'},
        )
    series = [json.loads(line) for line in resp.text.splitlines()]
    assert len(series) == 1
    assert series[0]["metric"]["device"] == "CGM1"
    # 12 distinct timestamps with the values as written (InfluxDB overwrites a redelivered
    # point; VictoriaMetrics may keep both samples unless deduplication is on).
    assert sorted(set(series[0]["timestamps"])) == [
        int((T0 + timedelta(minutes=5 * i)).timestamp() * 1000) for i in range(12)
    ]
    assert sorted(set(series[0]["values"])) == [90.0 + i for i in range(12)]


def test_token_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(StoreError, match=TOKEN_ENV):
        Influx2Store(StoreUrl.parse("influxdb2://127.0.0.1:1?org=o&bucket=b"))
