"""`diatabase loadgen` against Mosquitto, a real `diatabase ingest` and a SQLite store:
every generated reading is stored once, and the report counts what it sent."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.contract.urls import StoreUrl
from gateway.contract.v1 import ReadingsBatch
from gateway.loadgen.readback import Percentiles
from gateway.loadgen.register import register
from gateway.loadgen.synth import SENT_FIELD, BatchFactory, envelope, make_hubs
from gateway.registry.service import Registry
from gateway.store.sqlite import SqliteStore
from tests.factories import batch, cgm_reading
from tests.gateway.test_ingest_crash import IngestProcess, seed_registry, wait_subscribed
from tests.harness import MosquittoServer

pytestmark = pytest.mark.slow


def loadgen(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "loadgen", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_every_generated_reading_is_stored_once(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path}/readings.db"
    registry = f"sqlite:///{tmp_path}/registry.db"
    await seed_registry(registry, ["CGM0"])  # the probe's device only
    with IngestProcess(tmp_path, mosquitto.url, store, registry) as ingest:
        ingest.start()
        await wait_subscribed(mosquitto.url, store, batch("hub-1", [cgm_reading("CGM0", 0, 99)]))
        args = [
            "--mqtt", mosquitto.url, "--hubs", "5", "--devices-per-hub", "2",
            "--rate", "400", "--duration", "3", "--backfill-fraction", "0.25",
            "--live-batch", "2", "--backfill-batch", "50", "--window", "20",
            "--store", store, "--register", registry,
            "--sign-key", str(tmp_path / "loadgen.pem"), "--json", "-",
        ]  # fmt: skip
        done = await asyncio.to_thread(loadgen, *args)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        ingest.term()

    # 400/s for 3 s = 1,200 readings; 25 % backfill in batches of 50, live in pairs.
    assert report["readings"] == 1200
    assert (report["live_readings"], report["backfill_readings"]) == (900, 300)
    assert report["messages"] == 900 // 2 + 300 // 50
    assert report["acked_readings"] == 1200
    assert (report["refused_messages"], report["unacked_messages"]) == (0, 0)
    assert (report["stored"], report["missing"]) == (1200, 0)
    assert report["registered_devices"] == 10
    latency = report["latency_s"]
    assert latency["all"]["n"] == 1200 and latency["live"]["n"] == 900
    assert 0 <= latency["all"]["p50"] <= latency["all"]["p99"] <= latency["all"]["max"] < 60
    # Paced, not bursted: 3 s of publishing at the set rate, within scheduling slack.
    assert 2.9 <= report["publish_s"] < 6 and report["achieved_rate"] > 200

    s = await SqliteStore(StoreUrl.parse(store)).open()
    try:
        rows = [r for r in await s.all_readings() if r.hub_id.startswith("lg-hub-")]
        assert await s.count() == 1 + 1200  # the probe + every generated reading, once each
    finally:
        await s.close()
    assert len(rows) == len({r.key for r in rows}) == 1200
    assert {r.patient_id for r in rows} == {f"lg-P{h:05d}-{d}" for h in range(1, 6) for d in (1, 2)}
    assert all(r.signed_by for r in rows)  # signed, and the hubs require it
    assert sum(r.time < datetime.now(UTC) - timedelta(hours=1) for r in rows) == 300  # backfill
    assert all(isinstance(r.details.get(SENT_FIELD), float) for r in rows)
    async with Registry(StoreUrl.parse(registry)) as reg:
        assert await reg.quarantine_counts() == {}
        assert await reg.parked_count() == 0


async def test_registration_is_idempotent(tmp_path: Path) -> None:
    url = StoreUrl.parse(f"sqlite:///{tmp_path}/registry.db")
    hubs = make_hubs("lg", 3, 2)
    assert await register(url, hubs, public_key=None) == 6
    assert await register(url, hubs, public_key=None) == 0
    async with Registry(url) as reg:
        assert len(await reg.assignments()) == 6
        assert len(await reg.list_patients()) == 6


def test_batches_are_valid_v1_with_distinct_keys_per_run() -> None:
    hub = make_hubs("lg", 1, 1)[0]
    dev = hub.devices[0]
    now = datetime.now(UTC)
    keys: set[str] = set()
    for start in (now, now + timedelta(microseconds=1)):  # two runs
        f = BatchFactory(start, backlog=timedelta(hours=1))
        docs = [f.live(dev, now)[0] for _ in range(3)] + [f.backfill(dev)[0] for _ in range(30)]
        parsed = ReadingsBatch.model_validate_json(envelope(hub, docs, now))
        keys |= {r.key for r in parsed.readings}
        backfill = [r for r in parsed.readings if r.time < now]
        # 12 per hour-long backfill session, older sessions as the backlog grows; never ahead
        assert len(backfill) == 30 and all(r.time >= now - timedelta(hours=3) for r in backfill)
    assert len(keys) == 66


def test_percentiles_nearest_rank() -> None:
    p = Percentiles.of([float(i) for i in range(1, 101)])
    assert (p.n, p.p50, p.p95, p.p99, p.max) == (100, 50.0, 95.0, 99.0, 100.0)
    assert Percentiles.of([]).p50 is None


def test_bad_window_is_one_clear_error(tmp_path: Path) -> None:
    done = loadgen("--mqtt", "mqtt://127.0.0.1:1", "--window", "70000", "--verify", "none")
    assert done.returncode == 2
    assert "--window must be 1..65000" in done.stderr
