"""InfluxDB 1.x disk bytes per stored reading, our schema (issue 8: disk sizing input).

    .venv/bin/python benchmarks/influx_storage.py [--devices 1000] [--days 3]

Writes ``devices x days x 288`` synthetic CGM readings (5-minute interval, the fields the
ingester writes: value, mg_dl, unit, key, hub, device_kind, device_time, clock_offset_s,
details, raw, batch, signed_by) through the real ``Influx1Store`` into a harness InfluxDB
whose cache is snapshotted to TSM and fully compacted after a few idle seconds, waits until
the WAL is empty and the shard has stopped changing, then reports the TSM bytes per reading.
A reference in the same run: the same points with only ``value`` and the three tags, the
floor of any schema that keeps a number per reading.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.contract.urls import StoreUrl  # noqa: E402
from gateway.store.base import StoredReading  # noqa: E402
from gateway.store.influx1 import Influx1Store  # noqa: E402
from tests.harness import InfluxDB1Server  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
COLD = """  index-version = "inmem"
  cache-snapshot-write-cold-duration = "2s"
  compact-full-write-cold-duration = "4s"
"""


class CompactingInfluxDB(InfluxDB1Server):
    """The harness server, with the cache written to TSM and compacted after seconds."""

    def _prepare(self) -> None:
        super()._prepare()
        text = self.config_path.read_text()
        self.config_path.write_text(text.replace('  index-version = "inmem"\n', COLD))


def readings(devices: int, days: int, *, minimal: bool) -> list[list[StoredReading]]:
    """Per 5-minute step, one reading per device (a batch as the ingester would write)."""
    steps = days * 288
    batches = []
    for step in range(steps):
        t = START + timedelta(minutes=5 * step)
        batch_id = str(uuid.uuid4())
        batch = []
        for d in range(devices):
            serial = f"CGM-{d:06d}"
            mg = 100 + 60 * ((step * 7 + d * 13) % 97) / 97
            r = StoredReading(
                key=hashlib.sha256(f"{serial}|{step}".encode()).hexdigest()[:32],
                patient_id=f"P-{d:06d}",
                hub_id=f"hub-{d:06d}",
                serial=serial,
                device_kind="cgm",
                kind="cgm",
                time=t,
                device_time=(t + timedelta(hours=1)).replace(tzinfo=None),
                clock_offset_s=-3600.0 + (d % 7) * 0.5,
                value=round(mg, 0),
                unit="mg/dL",
                mg_dl=round(mg, 3),
                details={"trend_mg_dl_min": round((d % 9 - 4) * 0.3, 1), "quality_pct": 95.0},
                raw=hashlib.md5(f"{serial}{step}".encode()).hexdigest()[:26],
                batch_id=batch_id,
                signed_by="0123456789abcdef",
            )
            if minimal:
                r = r._replace(
                    unit="", key="", hub_id="", device_kind="", mg_dl=None, details={},
                    raw="", batch_id="", signed_by="",
                )  # fmt: skip
            batch.append(r)
        batches.append(batch)
    return batches


def du(path: Path, suffix: str = "") -> int:
    return sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and (not suffix or f.name.endswith(suffix))
    )


def settle(server: InfluxDB1Server, db: str, deadline_s: float = 300) -> int:
    """Wait until the WAL of ``db`` is empty and its TSM size stopped changing; the size."""
    shard_dir = server.workdir / "data" / db
    wal_dir = server.workdir / "wal" / db
    last, stable_since = -1, time.monotonic()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        size = du(shard_dir, ".tsm")
        if size != last:
            last, stable_since = size, time.monotonic()
        elif du(wal_dir, ".wal") == 0 and time.monotonic() - stable_since > 10:
            return size
        time.sleep(1)
    raise SystemExit(f"{db}: TSM size did not settle within {deadline_s} s")


async def write(server: InfluxDB1Server, db: str, batches: list[list[StoredReading]]) -> float:
    store = await Influx1Store(StoreUrl.parse(server.url_for(db))).open()
    t0 = time.perf_counter()
    try:
        for batch in batches:
            result = await store.write(batch)
            assert result.written == len(batch), result
    finally:
        await store.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--days", type=int, default=3)
    args = ap.parse_args()
    n = args.devices * args.days * 288
    results = {}
    with CompactingInfluxDB() as server:
        server.start()
        for name, minimal in (("ours", False), ("value + tags only", True)):
            db = server.new_database("storage")
            batches = readings(args.devices, args.days, minimal=minimal)
            seconds = asyncio.run(write(server, db, batches))
            size = settle(server, db)
            results[name] = {"bytes": size, "bytes_per_reading": size / n, "write_s": seconds}
            print(f"{name:<20} {n:>10,} readings  {size / 1e6:8.1f} MB TSM  "
                  f"{size / n:6.1f} bytes/reading  (written in {seconds:.1f} s)")  # fmt: skip
    ratio = results["ours"]["bytes"] / results["value + tags only"]["bytes"]
    print(f"ours / value-only: {ratio:.1f}x")
    out = Path(__file__).with_name("influx_storage.json")
    out.write_text(json.dumps({"readings": n, **results, "ratio": ratio}, indent=2) + "\n")
    print(f"figures in {out}")
    os.sync()


if __name__ == "__main__":
    main()
