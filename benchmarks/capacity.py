"""Capacity model for docs/scaling.md, from the costs benchmarks/scale.py measured.

    .venv/bin/python benchmarks/capacity.py [--json benchmarks/scale.json] [--markdown]

Per-reading CPU cost of the ingester, the broker and InfluxDB is taken from the
1-replica drains (least contention on the 2-core machine): *live* (one reading per
message) for the steady stream, *backfill* (500 readings per message) for the burst
after an outage. Everything else is an assumption, named in ASSUMPTIONS and printed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.store.base import StoredReading  # noqa: E402
from gateway.store.lineprotocol import line  # noqa: E402

WEARERS = (100_000, 500_000, 1_000_000)
INTERVALS_MIN = (1, 5)
ASSUMPTIONS = {
    "outage_share": 0.10,  # of wearers behind one regional outage
    "backlog_h": 12.0,  # hours of readings each of them has queued on its hub
    "reconnect_window_s": 1800.0,  # they come back spread over 30 minutes
    "target_utilisation": 0.7,  # plan cores at 70 % busy
    "replica_cores": 1.0,  # one ingester replica = one Python process = at most ~1 core
    "spare_replicas": 1,  # N+1: one replica may be down (PodDisruptionBudget 1)
    "min_broker_nodes": 3,  # EMQX core nodes: an odd number, survives one loss
    "connections_per_broker_node": 250_000,  # planning figure, see docs/scaling.md
    "broker_node_cores": 8,
}
# InfluxDB OSS 1.x/2.x hardware sizing guidelines (InfluxData, "Hardware sizing
# guidelines", InfluxDB OSS v1): (max field writes/s, max series) -> resources.
INFLUX_ROWS = (
    (5_000, 100_000, "2-4 cores, 2-4 GB RAM, 500 IOPS"),
    (250_000, 1_000_000, "4-6 cores, 8-32 GB RAM, 500-1000 IOPS"),
    (750_000, 10_000_000, "8+ cores, 32+ GB RAM, 1000+ IOPS"),
)
INFLUX_BEYOND = "beyond one OSS node: InfluxDB Enterprise/Cloud cluster or shards by region"


def fields_per_reading() -> int:
    """Fields of one stored live CGM reading in the line protocol the sinks write."""
    t = datetime(2026, 1, 1, tzinfo=UTC)
    r = StoredReading(
        key="0" * 32,
        patient_id="P",
        hub_id="hub",
        serial="CGM",
        device_kind="cgm",
        kind="cgm",
        time=t,
        device_time=t.replace(tzinfo=None),
        clock_offset_s=0.0,
        value=100.0,
        unit="mg/dL",
        mg_dl=100.0,
        batch_id="b",
        signed_by="k",
    )
    fields = line(r).split(" ")[1]
    return fields.count("=") - fields.count("\\=")


@dataclass(frozen=True)
class Costs:
    """CPU seconds per reading."""

    ingester: float
    broker: float
    influxdb: float


def costs(summary: dict, scenario: str) -> Costs:
    c = summary[scenario]["1"]["cpu_s_per_1000_readings"]
    return Costs(c["ingester"] / 1000, c["broker"] / 1000, c["influxdb"] / 1000)


def influx_row(field_writes: float, series: int) -> str:
    for writes, max_series, resources in INFLUX_ROWS:
        if field_writes < writes and series < max_series:
            return resources
    return INFLUX_BEYOND


def replicas_for(cores: float) -> int:
    a = ASSUMPTIONS
    return max(2, math.ceil(cores / (a["replica_cores"] * a["target_utilisation"]))) + int(
        a["spare_replicas"]
    )


def model(summary: dict) -> list[dict[str, object]]:
    live, back = costs(summary, "live"), costs(summary, "backfill")
    nfields = fields_per_reading()
    a = ASSUMPTIONS
    rows = []
    for wearers in WEARERS:
        for minutes in INTERVALS_MIN:
            steady = wearers / (60 * minutes)
            backlog = a["outage_share"] * wearers * a["backlog_h"] * 60 / minutes
            burst = backlog / a["reconnect_window_s"]
            peak = steady + burst
            ing = steady * live.ingester
            ing_peak = ing + burst * back.ingester
            brk_peak = steady * live.broker + burst * back.broker
            db_peak = steady * live.influxdb + burst * back.influxdb
            steady_replicas = replicas_for(ing)
            # with only the steady-state replicas, how long until the burst is stored
            spare = steady_replicas * a["replica_cores"] - a["spare_replicas"] - ing
            drain_s = backlog * back.ingester / spare if spare > 0 else math.inf
            nodes = max(
                int(a["min_broker_nodes"]),
                math.ceil(wearers / a["connections_per_broker_node"]),
                math.ceil(brk_peak / (a["broker_node_cores"] * a["target_utilisation"])),
            )
            rows.append(
                {
                    "wearers": wearers,
                    "interval_min": minutes,
                    "steady_readings_per_s": round(steady),
                    "burst_readings_per_s": round(burst),
                    "peak_readings_per_s": round(peak),
                    "ingester_cores_steady": round(ing, 2),
                    "ingester_cores_peak": round(ing_peak, 2),
                    "replicas_steady": steady_replicas,
                    "replicas_peak": replicas_for(ing_peak),
                    "burst_drain_min_with_steady_replicas": round(drain_s / 60, 1),
                    "broker_cores_peak_c_broker": round(brk_peak, 3),
                    "broker_nodes": nodes,
                    "influx_cores_peak": round(db_peak, 2),
                    "influx_field_writes_per_s_peak": round(peak * nfields),
                    "influx_series": wearers,
                    "influx_resources": influx_row(peak * nfields, wearers),
                }
            )
    return rows


def markdown(rows: list[dict[str, object]], summary: dict) -> str:
    live, back = costs(summary, "live"), costs(summary, "backfill")
    out = [
        "Measured cost, CPU ms per 1,000 readings (1 replica, this machine):",
        "",
        "| messages | ingester | broker (Mosquitto) | InfluxDB |",
        "|---|---:|---:|---:|",
        f"| live, 1 reading each | {live.ingester * 1e6:.0f} | {live.broker * 1e6:.1f} | {live.influxdb * 1e6:.0f} |",
        f"| backfill, 500 each | {back.ingester * 1e6:.0f} | {back.broker * 1e6:.1f} | {back.influxdb * 1e6:.0f} |",
        "",
        f"Fields per stored CGM reading: {fields_per_reading()}.",
        "",
        "| wearers | every | steady r/s | burst r/s | ingester cores steady / peak | replicas steady / peak | burst stored in (min, steady replicas) | broker nodes | InfluxDB cores peak | field writes/s peak | InfluxDB (InfluxData guideline) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['wearers']:,} | {r['interval_min']} min | {r['steady_readings_per_s']:,}"
            f" | {r['burst_readings_per_s']:,}"
            f" | {r['ingester_cores_steady']} / {r['ingester_cores_peak']}"
            f" | {r['replicas_steady']} / {r['replicas_peak']}"
            f" | {r['burst_drain_min_with_steady_replicas']}"
            f" | {r['broker_nodes']} | {r['influx_cores_peak']}"
            f" | {r['influx_field_writes_per_s_peak']:,} | {r['influx_resources']} |"
        )
    out += ["", "Assumptions: " + ", ".join(f"{k} = {v}" for k, v in ASSUMPTIONS.items()) + "."]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "scale.json")
    ap.add_argument("--markdown", action="store_true", help="print the tables for the docs")
    args = ap.parse_args()
    summary = json.loads(args.json.read_text())["summary"]
    # JSON object keys are strings
    rows = model(summary)
    if args.markdown:
        print(markdown(rows, summary))
    else:
        print(json.dumps({"assumptions": ASSUMPTIONS, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
