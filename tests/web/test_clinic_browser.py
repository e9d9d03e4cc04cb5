"""The clinic view in headless Chromium against the real app and real SQLite databases."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from tests.web.conftest import cgm

pytestmark = pytest.mark.browser


async def test_new_readings_appear_live_with_their_trend(make_web: Any, page: Any) -> None:
    web = await make_web()
    now = datetime.now(UTC).replace(microsecond=0)
    await web.registry.add_patient("P-A")
    await web.registry.add_patient("P-B")
    # P-A flat at 100 for 15 minutes; P-B has no data yet
    await web.store.write([cgm("P-A", now - timedelta(minutes=m), 100) for m in (20, 15, 10, 5)])

    await page.goto(web.url + "/")
    row = page.locator('tr[data-patient="P-A"]')
    await expect(row.locator(".value")).to_have_text("100")
    await expect(row.locator(".arrow")).to_have_attribute("data-direction", "Flat")
    await expect(page.locator('tr[data-patient="P-B"] .age')).to_have_text("never")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")

    # The ingester stores a new reading: the four points at -15, -10, -5, 0 min are
    # 100, 100, 100, 130, a least-squares slope of
    #   sum((x - -7.5)(y - 107.5)) / sum((x - -7.5)^2) = 225 / 125 = 1.8 mg/dL/min,
    # which is FortyFiveUp (1 < rate <= 2).
    await web.store.write([cgm("P-A", now, 130)])
    started = time.monotonic()
    await expect(row.locator(".value")).to_have_text("130", timeout=2_000)
    await expect(row.locator(".arrow")).to_have_attribute(
        "data-direction", "FortyFiveUp", timeout=2_000
    )
    print(f"new reading shown after {time.monotonic() - started:.2f} s")
    await expect(row.locator(".arrow")).to_have_text("↗")

    # A second fast rise: 100, 100, 130, 160 at -15..0 gives 3.6 mg/dL/min: DoubleUp.
    await web.store.write([cgm("P-A", now + timedelta(minutes=5), 160)])
    await expect(row.locator(".value")).to_have_text("160", timeout=2_000)
    await expect(row.locator(".arrow")).to_have_attribute("data-direction", "DoubleUp")


async def test_alerts_appear_sort_first_and_clear(make_web: Any, page: Any) -> None:
    web = await make_web()
    now = datetime.now(UTC).replace(microsecond=0)
    for pid, mg in (("P-A", 190), ("P-B", 120), ("P-C", 260)):
        await web.registry.add_patient(pid)
        await web.store.write([cgm(pid, now - timedelta(minutes=m), mg) for m in (10, 5)])

    await page.goto(web.url + "/")
    rows = page.locator("#patients tr")
    # no alerts: by distance from 70-180, furthest first (260 is 80 out, 190 is 10 out)
    await expect(rows).to_have_count(3)
    order = [await r.get_attribute("data-patient") for r in await rows.all()]
    assert order == ["P-C", "P-A", "P-B"]

    low = await web.registry.start_alert("P-B", "urgent_low", "urgent", now, value_mg_dl=50)
    assert low is not None
    badge = page.locator('tr[data-patient="P-B"] .alert[data-kind="urgent_low"]')
    await expect(badge).to_be_visible(timeout=2_000)
    await expect(badge).to_contain_text("Urgent low")
    await expect(rows.first).to_have_attribute("data-patient", "P-B")

    await web.registry.clear_alert("P-B", "urgent_low", datetime.now(UTC))
    await expect(badge).to_have_count(0, timeout=2_000)
    await expect(rows.first).to_have_attribute("data-patient", "P-C")


async def test_acknowledge_from_the_page(make_web: Any, page: Any) -> None:
    web = await make_web()
    now = datetime.now(UTC).replace(microsecond=0)
    await web.registry.add_patient("P-A")
    await web.store.write([cgm("P-A", now - timedelta(minutes=m), 280) for m in (10, 5)])
    alert = await web.registry.start_alert("P-A", "high", "warning", now, value_mg_dl=280)
    assert alert is not None

    await page.goto(web.url + "/")
    row = page.locator('tr[data-patient="P-A"]')
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(row.locator(".acked")).to_have_text("acknowledged by web", timeout=2_000)
    await expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)
    (stored,) = await web.registry.open_alerts("P-A")
    assert stored.id == alert.id
    assert stored.acknowledged_at is not None
    assert stored.acknowledged_by == "web"


async def test_units_toggle_is_remembered(make_web: Any, page: Any) -> None:
    web = await make_web()
    now = datetime.now(UTC).replace(microsecond=0)
    await web.registry.add_patient("P-A")
    await web.store.write([cgm("P-A", now - timedelta(minutes=5), 130)])

    await page.goto(web.url + "/")
    value = page.locator('tr[data-patient="P-A"] .value')
    await expect(value).to_have_text("130")
    await page.get_by_role("link", name="show mmol/L").click()
    # 130 / 18.01559 = 7.216 mmol/L
    await expect(value).to_have_text("7.2")
    await expect(page.locator('tr[data-patient="P-A"] .unit')).to_have_text("mmol/L")
    # the cookie keeps the choice, and the live stream renders in it too
    await page.goto(web.url + "/")
    await expect(value).to_have_text("7.2")
    await web.store.write([cgm("P-A", now, 144)])
    await expect(value).to_have_text("8.0", timeout=2_000)  # 144 / 18.01559 = 7.993

    await page.get_by_role("link", name="show mg/dL").click()
    await expect(value).to_have_text("144")
