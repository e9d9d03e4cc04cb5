"""Patient page AGP figures against a hand-computed fixture; the JSON API and
``diatabase report agp`` give the same numbers (one function computes them)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import typer
from playwright.async_api import expect
from typer.testing import CliRunner

from gateway.cli.web import report_app
from tests.web.conftest import cgm

# registered as in gateway/cli/app.py: ``diatabase report agp``
cli = typer.Typer()
cli.add_typer(report_app, name="report")

END = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
DAYS = 14

# One day of 5-minute CGM readings (288), repeated for 14 days = 4032 readings covering
# [END - 14 d, END) completely: each reading stands for 300 s (the last one too: it is
# 5 min before END), so every share below is a share of readings.
DAY = [45] * 6 + [62] * 12 + [130] * 192 + [220] * 48 + [280] * 30
assert len(DAY) == 288

# Hand-computed expectations:
#   very low  < 54      6/288 = 2.083 %  -> 2.1
#   low       54-69    12/288 = 4.167 %  -> 4.2
#   in range  70-180  192/288 = 66.667 % -> 66.7
#   high      181-250  48/288 = 16.667 % -> 16.7
#   very high > 250    30/288 = 10.417 % -> 10.4
#   mean = (6*45 + 12*62 + 192*130 + 48*220 + 30*280) / 288
#        = (270 + 744 + 24960 + 10560 + 8400) / 288 = 44934 / 288 = 156.021 -> 156.0 mg/dL
#   E[x^2] = (6*2025 + 12*3844 + 192*16900 + 48*48400 + 30*78400) / 288
#          = 7978278 / 288 = 27702.354;  var = 27702.354 - 156.021^2 = 3359.85
#   SD = 57.964 -> 58.0;  CV = 57.964 / 156.021 = 37.15 % -> 37.2
#   GMI = 3.31 + 0.02392 * 156.021 = 7.042 -> 7.0 %  (CGM active 100 % >= 70 %)
#   mean in mmol/L: 156.021 / 18.01559 = 8.660 -> 8.7
EXPECTED = {
    "very_low": "2.1 %",
    "low": "4.2 %",
    "in_range": "66.7 %",
    "high": "16.7 %",
    "very_high": "10.4 %",
    "mean": "156 mg/dL",
    "sd": "58.0 mg/dL",
    "cv": "37.2 %",
    "gmi": "7.0 %",
    "active": "100.0 %",
    "readings": "4032",
}


def fixture_readings(patient: str) -> list[Any]:
    start = END - timedelta(days=DAYS)
    return [cgm(patient, start + timedelta(minutes=5 * i), DAY[i % 288]) for i in range(DAYS * 288)]


# Three days of 100 mg/dL every 5 min in a 14-day window: 864 * 300 s / 1,209,600 s
# = 21.43 % CGM active, below 70 %: no GMI, and the page says why.
def sparse_readings(patient: str) -> list[Any]:
    start = END - timedelta(days=3)
    return [cgm(patient, start + timedelta(minutes=5 * i), 100) for i in range(3 * 288)]


@pytest.mark.browser
async def test_patient_page_shows_the_hand_computed_agp(make_web: Any, page: Any) -> None:
    web = await make_web()
    await web.registry.add_patient("P-AGP")
    await web.registry.add_patient("P-SPARSE")
    await web.store.write(fixture_readings("P-AGP"))
    await web.store.write(sparse_readings("P-SPARSE"))

    await page.goto(
        f"{web.url}/patients/P-AGP?days={DAYS}&end={END.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )
    agp = page.locator("#agp")
    for metric, text in EXPECTED.items():
        await expect(agp.locator(f'[data-metric="{metric}"]')).to_have_text(text)
    await expect(agp.locator('[data-metric="gmi_note"]')).to_have_count(0)
    # the last 24 h are drawn: 288 points, over the shaded target band
    chart = page.locator("svg.chart")
    await expect(chart).to_have_attribute("data-points", "288")
    await expect(chart.locator("rect.target")).to_have_count(1)

    await page.goto(
        f"{web.url}/patients/P-AGP?days={DAYS}&end={END.strftime('%Y-%m-%dT%H:%M:%SZ')}&units=mmol"
    )
    await expect(agp.locator('[data-metric="mean"]')).to_have_text("8.7 mmol/L")

    await page.goto(
        f"{web.url}/patients/P-SPARSE?days={DAYS}&end={END.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )
    await expect(agp.locator('[data-metric="active"]')).to_have_text("21.4 %")
    await expect(agp.locator('[data-metric="gmi"]')).to_have_text("not shown")
    await expect(agp.locator('[data-metric="gmi_note"]')).to_have_text(
        "GMI not shown: CGM active 21.4 % of the period, below the 70 % needed for GMI"
    )


async def test_report_cli_and_api_give_the_same_numbers(make_web: Any) -> None:
    web = await make_web()
    await web.registry.add_patient("P-AGP")
    await web.store.write(fixture_readings("P-AGP"))

    async with httpx.AsyncClient(base_url=web.url) as client:
        resp = await client.get(
            "/api/patients/P-AGP/agp",
            params={"days": DAYS, "end": END.strftime("%Y-%m-%dT%H:%M:%SZ")},
        )
    assert resp.status_code == 200
    api = resp.json()
    assert api["time_in_ranges_pct"] == {
        "very_low": 2.1,
        "low": 4.2,
        "in_range": 66.7,
        "high": 16.7,
        "very_high": 10.4,
    }
    assert (api["mean_mg_dl"], api["sd_mg_dl"], api["cv_pct"], api["gmi_pct"]) == (
        156.0,
        58.0,
        37.2,
        7.0,
    )
    assert api["active_pct"] == 100.0

    store_url = str(web.settings.store)
    args = ["--patient", "P-AGP", "--days", str(DAYS), "--end", END.strftime("%Y-%m-%dT%H:%M:%S")]
    # in a thread: the command runs its own event loop
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["report", "agp", *args, "--store", store_url]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == api

    html = await asyncio.to_thread(
        CliRunner().invoke, cli, ["report", "agp", *args, "--store", store_url, "--format", "html"]
    )
    assert html.exit_code == 0, html.output
    assert 'data-metric="gmi">7.0 %<' in html.output
    assert 'data-metric="in_range">66.7 %<' in html.output


def test_report_cli_rejects_a_missing_store(tmp_path: Any) -> None:
    result = CliRunner().invoke(
        cli, ["report", "agp", "--patient", "P", "--store", f"sqlite:///{tmp_path}/none.db"]
    )
    assert result.exit_code == 2
    assert "does not exist" in result.output
