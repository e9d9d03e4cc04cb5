"""Ops view: ingest figures, quarantine drill-down and hub status from a real broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import httpx
import pytest
from playwright.async_api import expect

from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.registry.service import QuarantineEntry
from gateway.store.influx1 import Influx1Store
from tests.asyncutil import until
from tests.web.conftest import cgm


async def _quarantine(web: Any) -> None:
    await web.registry.quarantine(
        [
            QuarantineEntry(
                "schema_violation",
                "readings.0.value: Input should be a finite number",
                "diatabase/v1/hubs/hub-1/readings",
                json.dumps({"schema": "diatabase.readings/v1", "note": "<b>not bold</b>"}).encode(),
                hub_id="hub-1",
            ),
            QuarantineEntry("future_time", "27 min ahead", "t", b"\xff\x00", hub_id="hub-1"),
            QuarantineEntry("future_time", "31 min ahead", "t", b"{}", hub_id="hub-2"),
        ]
    )


@pytest.mark.browser
async def test_ops_page_and_quarantine_drill_down(make_web: Any, page: Any) -> None:
    web = await make_web()
    now = datetime.now(UTC)
    # 30 readings in 3 batches, each stored just now with reading times 10 s .. 300 s ago
    await web.store.write(
        [
            cgm("P-1", now - timedelta(seconds=10 * (i + 1)), 110, batch=f"b{i % 3}")
            for i in range(30)
        ]
    )
    await _quarantine(web)

    await page.goto(web.url + "/ops")
    await expect(page.locator('[data-metric="rps"]')).to_have_text("0.50")  # 30 / 60 s
    await expect(page.locator('[data-metric="mps"]')).to_have_text("0.05")  # 3 / 60 s
    await expect(page.locator('[data-metric="quarantined"]')).to_have_text("3")
    await expect(page.locator('[data-reason="future_time"]')).to_have_text("2")
    # lag = stored_at - reading time: 10 .. 300 s (plus the write's own few ms); p50 ~ 155 s
    # (155 s and a few ms = 2.58 min)
    await expect(page.locator('[data-metric="lag_p50"]')).to_have_text("2.6 min")

    await page.get_by_role("link", name="future_time").click()
    await expect(page.locator("table.quarantine-list tbody tr")).to_have_count(2)
    await page.goto(web.url + "/ops/quarantine?reason=schema_violation")
    await page.locator("table.quarantine-list tbody tr a").first.click()
    await expect(page.locator('[data-field="detail"]')).to_have_text(
        "readings.0.value: Input should be a finite number"
    )
    # the payload is shown as text, never as markup
    await expect(page.locator('[data-field="payload"]')).to_contain_text(
        '"note": "<b>not bold</b>"'
    )
    await expect(page.locator("pre b")).to_have_count(0)

    async with httpx.AsyncClient(base_url=web.url) as client:
        metrics = (await client.get("/metrics")).text
        missing = await client.get("/ops/quarantine/999")
    assert 'diatabase_web_quarantine_entries{reason="future_time"} 2.0' in metrics
    assert "diatabase_web_store_readings_per_second 0.5" in metrics
    assert missing.status_code == 404


@pytest.mark.browser
async def test_hub_status_from_retained_mqtt_messages(
    make_web: Any, page: Any, mosquitto: Any
) -> None:
    url = MqttUrl.parse(mosquitto.url)
    status = {
        "schema": "diatabase.status/v1",
        "hub_id": "hub-7",
        "online": True,
        "version": "0.1.0",
        "sent_at": datetime.now(UTC).isoformat(),
        "outbox_depth": 42,
        "oldest_unsent_age_s": 95.0,
        "devices": [
            {"serial": "CGM-7", "kind": "cgm", "connected": True, "battery_pct": 64},
        ],
    }
    async with aiomqtt.Client(url.host, url.port, identifier="test-hub-7") as hub:
        await hub.publish(
            "diatabase/v1/hubs/hub-7/status", json.dumps(status).encode(), qos=1, retain=True
        )
    web = await make_web(mqtt=mosquitto.url)
    await web.registry.add_hub("hub-7")
    await web.registry.add_hub("hub-8")  # registered, never reported

    # the retained status reaches the app's monitor over MQTT, then the page shows it
    monitor = web.app.state.monitor
    await until(lambda: "hub-7" in monitor.hubs, 10, "hub-7 status received")
    await page.goto(web.url + "/ops")
    hub7 = page.locator('tr[data-hub="hub-7"]')
    await expect(hub7.locator(".state")).to_have_text("online")
    await expect(hub7.locator(".outbox")).to_contain_text("42")
    await expect(hub7).to_contain_text("battery 64 %")
    await expect(page.locator('tr[data-hub="hub-8"] .state')).to_have_text("no status")

    # the Last Will: the hub goes offline
    async with aiomqtt.Client(url.host, url.port, identifier="test-broker-will") as c:
        await c.publish(
            "diatabase/v1/hubs/hub-7/status",
            json.dumps({**status, "online": False}).encode(),
            qos=1,
            retain=True,
        )
    await until(lambda: not monitor.hubs["hub-7"].status.online, 10, "hub-7 offline received")
    await page.reload()
    await expect(hub7.locator(".state")).to_have_text("offline")


async def test_influx1_read_queries(influx_db: str) -> None:
    store = await Influx1Store(StoreUrl.parse(influx_db)).open()
    try:
        assert await store.latest_per_patient() == []
        before = await store.change_marker()
        now = datetime.now(UTC).replace(microsecond=0)
        await store.write(
            [cgm("P-1", now - timedelta(minutes=m), 100 + m, batch=f"b{m}") for m in (10, 5)]
            + [cgm("P-2", now - timedelta(minutes=7), 77, batch="b7")]
        )
        latest = {r.patient_id: (r.time, r.mg_dl) for r in await store.latest_per_patient()}
        assert latest == {
            "P-1": (now - timedelta(minutes=5), 105),
            "P-2": (now - timedelta(minutes=7), 77),
        }
        after = await store.change_marker()
        assert after != before
        assert await store.change_marker() == after  # nothing new: no change
        win = await store.ingest_window(900, now=now)
        assert (win.readings, win.messages, win.lags_s, win.by_stored_time) == (3, 3, None, False)
    finally:
        await store.close()


@pytest.mark.browser
async def test_screenshot_script_runs(tmp_path: Any, chromium_path: str) -> None:
    from tests.web.screenshots import main

    shots = await main(tmp_path)
    assert [p.name for p in shots] == ["clinic.png", "patient.png", "ops.png", "quarantine.png"]
    assert all(p.stat().st_size > 10_000 for p in shots)
