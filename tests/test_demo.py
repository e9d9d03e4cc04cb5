"""The demo path end to end on embedded defaults: every reading the virtual devices
produced is stored exactly once, linked to the right patient, with the right mg/dL."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError
from rich.console import Console

from gateway.demo.run import Demo
from gateway.settings import DemoSettings
from tests.browser import CHROMIUM_ARGS

pytestmark = [pytest.mark.ble, pytest.mark.slow]


async def test_demo_stores_every_reading_once(tmp_path: Path) -> None:
    out = io.StringIO()
    demo = Demo(
        DemoSettings(duration=6, speed=300, patients=2, port=0, data_dir=tmp_path),
        Console(file=out, force_terminal=False, width=200),
    )
    summary = await demo.run()
    truth = demo.devices.truth()
    assert summary.produced == len(truth) > 50
    assert summary.lost == 0 and summary.quarantined == 0

    db = sqlite3.connect(tmp_path / "readings.db")
    rows = db.execute("SELECT key, patient_id, serial, mg_dl, value, unit FROM readings").fetchall()
    db.close()
    assert len(rows) == len({r[0] for r in rows}) == len(truth)  # exactly once
    stored = {r[0]: r for r in rows}
    for t in truth:
        _key, patient, serial, mg_dl, _value, unit = stored[t.key]
        assert (patient, serial) == (t.patient_id, t.serial)
        assert mg_dl == pytest.approx(t.mg_dl, abs=0.01), (serial, unit)
    units = {r[5] for r in rows}
    assert units == {"mg/dL", "kg/L", "mol/L"}  # CGM, and meters in both GLS units
    assert "t=6s read=" in out.getvalue()  # not a terminal: periodic plain lines


def test_demo_command_runs_and_exits_zero(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--duration",
            "4",
            "--speed",
            "600",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lost 0" in proc.stdout
    assert "t=" in proc.stdout  # periodic plain lines when stdout is not a terminal


def test_ctrl_c_drains_and_prints_the_summary(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--speed",
            "300",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # running once the first plain status line appears
        if line.startswith("t="):
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "stopping: draining" in out and "lost 0" in out


@pytest.mark.browser
async def test_live_page_shows_patients_and_counters(tmp_path: Path, chromium_path: str) -> None:
    from playwright.async_api import async_playwright, expect

    from gateway.demo.broker import free_port

    port = free_port()
    demo = Demo(
        DemoSettings(duration=20, speed=300, patients=2, port=port, data_dir=tmp_path),
        Console(file=io.StringIO(), force_terminal=False),
    )
    task = asyncio.create_task(demo.run())
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            async with asyncio.timeout(30):
                while True:  # the server starts once the broker and devices are up
                    try:
                        await page.goto(f"http://127.0.0.1:{port}/")
                        break
                    except PlaywrightError:
                        await asyncio.sleep(0.2)
            for patient in ("P-0001", "P-0002"):
                row = page.locator(f'tr[data-patient="{patient}"]')
                await expect(row).to_be_visible(timeout=15_000)
                await expect(row.locator("td.glucose")).to_have_text(
                    re.compile(r"^\d+$"), timeout=15_000
                )
            stored = page.locator('[data-counter="stored"] b')
            await expect(stored).not_to_have_text("0", timeout=15_000)
            # DIATABASE_SCREENSHOTS=1 refreshes the picture in docs/; otherwise it stays in tmp.
            shots = Path(__file__).parents[1] / "docs" / "screenshots"
            target = shots if os.environ.get("DIATABASE_SCREENSHOTS") else tmp_path
            await page.screenshot(path=str(target / "demo-live.png"))
            await browser.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
