"""Unit tests of the clinic's urgency order and the ops figures (no browser)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.contract.v1 import HubStatus
from gateway.registry.models import Device
from gateway.store.sqlite import SqliteStore
from gateway.web.app import ServeSettings
from gateway.web.clinic import AlertView, PatientRow, sort_rows, urgency
from gateway.web.ops import (
    HubMonitor,
    HubSeen,
    OpsFigures,
    hub_health,
    percentile,
    prometheus_text,
)
from gateway.web.sse import sse_event
from tests.web.conftest import cgm

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def row(pid: str, mg: float | None, age_min: float | None, *alerts: AlertView) -> PatientRow:
    t = None if age_min is None else NOW - timedelta(minutes=age_min)
    return PatientRow(pid, mg_dl=mg, time=t, kind="cgm", alerts=alerts)


def alert(kind: str, severity: str, *, acked: bool = False, i: int = 1) -> AlertView:
    return AlertView(
        id=i,
        kind=kind,
        severity=severity,
        started_at=NOW - timedelta(minutes=3),
        acknowledged_at=NOW if acked else None,
    )


def test_urgency_order() -> None:
    rows = [
        row("in-range", 120, 2),
        row("far-high", 320, 2),
        row("near-high", 200, 2),
        row("low-by-distance", 60, 2),  # 10 below the range
        row("stale-long", 150, 90),
        row("stale-short", 150, 30),
        row("never", None, None),
        row("high-alert-acked", 260, 2, alert("high", "warning", acked=True)),
        row("high-alert", 255, 2, alert("high", "warning")),
        row("info-alert", 190, 2, alert("rapid_rise", "info")),
        row("urgent-engine", 52, 2, alert("urgent_low", "urgent")),
        row("urgent-fresh", 45, 1),  # below 54 and fresh: urgent before the engine says so
        row("urgent-stale-reading", 40, 60),  # an old low is stale data, not an urgent low now
        row("stale-alert", 150, 5, alert("stale", "warning")),
    ]
    order = [r.patient_id for r in sort_rows(rows, NOW)]
    assert order == [
        # 0: urgent lows, lowest first
        "urgent-fresh",
        "urgent-engine",
        # 1: other open alerts: warning before info, unacknowledged before acknowledged
        "high-alert",
        "high-alert-acked",
        "info-alert",
        # 2: stale, longest silent first, never-seen last
        "stale-long",
        "urgent-stale-reading",
        "stale-short",
        "stale-alert",
        "never",
        # 3: by distance from 70-180: 140, 20, 10, 0
        "far-high",
        "near-high",
        "low-by-distance",
        "in-range",
    ]


def test_urgency_ties_break_on_patient_id() -> None:
    a, b = row("B", 120, 1), row("A", 130, 1)
    assert urgency(b, NOW) < urgency(a, NOW)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.99) == 7.0
    # ranks 0..4 of 1..5: p50 = 3, p90 at rank 3.6 = 4.6
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.9) == pytest.approx(4.6)


async def test_sqlite_ingest_window_walks_the_tail(tmp_path: Any) -> None:
    store = await SqliteStore(StoreUrl.parse(f"sqlite:///{tmp_path}/r.db")).open()
    try:
        now_ms = round(NOW.timestamp() * 1000)
        # 12,000 rows: 2,000 stored two minutes ago, then 10,000 within the last minute
        # (more than two 5,000-row chunks), each 2.5 s after its reading time, 10 per batch.
        rows = []
        for i in range(12_000):
            recent = i >= 2_000
            stored = now_ms - (50_000 if recent else 120_000) + i
            reading = cgm("P-1", NOW - timedelta(seconds=i), 100, batch=f"b{i // 10}")
            rows.append((reading, stored, stored - 2_500))
        await store.db.execute("BEGIN")
        await store.db.executemany(
            "INSERT INTO readings (key, patient_id, hub_id, serial, device_kind, kind, time_ms,"
            " device_time, clock_offset_s, value, unit, mg_dl, flags, status, details, raw,"
            " batch_id, stored_at_ms) VALUES (?, ?, '', '', 'cgm', 'cgm', ?, '', 0, 1, '', 1,"
            " '[]', '[]', '{}', '', ?, ?)",
            [(r.key, r.patient_id, t, r.batch_id, s) for r, s, t in rows],
        )
        await store.db.execute("COMMIT")
        win = await store.ingest_window(60, now=NOW)
        assert (win.readings, win.messages, win.by_stored_time) == (10_000, 1_000, True)
        assert win.lags_s is not None and set(win.lags_s) == {2.5}
        assert await store.change_marker() == 12_000
        # a duplicate key adds no row: the marker stays
        await store.write([rows[-1][0]])
        assert await store.change_marker() == 12_000
    finally:
        await store.close()


def _status(hub: str, **kw: Any) -> bytes:
    body = {
        "schema": "diatabase.status/v1",
        "hub_id": hub,
        "online": True,
        "version": "0.1.0",
        "sent_at": "2026-11-28T11:59:00Z",
        "outbox_depth": 12,
        "devices": [
            {
                "serial": "CGM-1",
                "kind": "cgm",
                "connected": True,
                "last_contact": "2026-11-28T11:58:00Z",
                "battery_pct": 81,
            }
        ],
    }
    body.update(kw)
    return json.dumps(body).encode()


def test_hub_monitor_keeps_valid_statuses_only() -> None:
    mon = HubMonitor(MqttUrl.parse("mqtt://127.0.0.1:1"))
    mon.handle("diatabase/v1/hubs/hub-1/status", _status("hub-1"), now=NOW)
    mon.handle("diatabase/v1/hubs/hub-2/status", _status("hub-X"), now=NOW)  # wrong hub
    mon.handle("diatabase/v1/hubs/hub-3/status", b"{not json", now=NOW)
    mon.handle("diatabase/v1/hubs/hub-4/events", _status("hub-4"), now=NOW)  # not a status
    assert set(mon.hubs) == {"hub-1"}
    assert mon.invalid == 2
    mon.handle("diatabase/v1/hubs/hub-1/status", b"", now=NOW)  # retained message cleared
    assert mon.hubs == {}


def test_hub_health_merges_registry_and_status() -> None:
    status = HubStatus.model_validate_json(_status("hub-1"))
    registered = {
        "hub-1": [
            Device(serial="CGM-1", kind="cgm", hub_id="hub-1"),
            Device(serial="BGM-9", kind="glucose_meter", hub_id="hub-1"),
        ],
        "hub-quiet": [],
    }
    h1, quiet = hub_health(registered, {"hub-1": HubSeen(status, NOW)})
    assert (h1.hub_id, h1.online, h1.outbox_depth, h1.registered) == ("hub-1", True, 12, True)
    assert [(d.serial, d.battery_pct, d.connected) for d in h1.devices] == [
        ("BGM-9", None, None),  # registered, not reported by the hub
        ("CGM-1", 81, True),
    ]
    assert (quiet.hub_id, quiet.online, quiet.status_at) == ("hub-quiet", None, None)


def test_prometheus_text_has_the_ops_figures() -> None:
    status = HubStatus.model_validate_json(_status("hub-1"))
    full = HubStatus.model_validate_json(_status("hub-2", outbox_full=True, outbox_depth=500))
    fig = OpsFigures(
        at=NOW,
        window_s=60,
        readings=300,
        messages=30,
        by_stored_time=True,
        lag_quantiles={0.5: 1.5, 0.9: 3.0, 0.99: 9.0},
        lag_max_s=12.0,
        quarantine={"schema_violation": 2, "future_time": 1},
        parked=4,
        open_alerts={"urgent": 1},
        hubs=hub_health({}, {"hub-1": HubSeen(status, NOW), "hub-2": HubSeen(full, NOW)}),
        mqtt=True,
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(prometheus_text(fig).decode())
        for s in fam.samples
    }
    assert samples[("diatabase_web_store_readings_per_second", ())] == 5.0
    assert samples[("diatabase_web_store_messages_per_second", ())] == 0.5
    assert samples[("diatabase_web_store_lag_seconds", (("quantile", "0.9"),))] == 3.0
    assert samples[("diatabase_web_quarantine_entries", (("reason", "future_time"),))] == 1
    assert samples[("diatabase_web_parked_readings", ())] == 4
    assert samples[("diatabase_web_open_alerts", (("severity", "urgent"),))] == 1
    assert samples[("diatabase_web_hub_online", (("hub", "hub-1"),))] == 1
    assert samples[("diatabase_web_hub_outbox_depth", (("hub", "hub-1"),))] == 12
    assert samples[("diatabase_web_hub_outbox_full", (("hub", "hub-1"),))] == 0
    assert samples[("diatabase_web_hub_outbox_full", (("hub", "hub-2"),))] == 1
    assert samples[("diatabase_web_hub_status_age_seconds", (("hub", "hub-1"),))] == 60
    battery = ("diatabase_web_device_battery_percent", (("hub", "hub-1"), ("serial", "CGM-1")))
    assert samples[battery] == 81
    assert samples[("diatabase_web_mqtt_connected", ())] == 1


def test_sse_event_is_one_data_line() -> None:
    frame = sse_event("clinic", {"rows": "<tr>\n</tr>"})
    assert frame == 'event: clinic\ndata: {"rows":"<tr>\\n</tr>"}\n\n'


def test_serve_settings_refuse_a_write_only_store() -> None:
    with pytest.raises(ValueError, match="write-only"):
        ServeSettings(store="influxdb2://h:8086?org=o&bucket=b")
    s = ServeSettings(store="influxdb://h:8086/diatabase", mqtt="mqtt://broker:1883")
    assert s.store.database == "diatabase"
    assert s.mqtt is not None and s.mqtt.port == 1883
