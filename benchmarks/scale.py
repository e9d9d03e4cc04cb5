"""Scale-out benchmark: ingest throughput with 1, 2 and 3 replicas on one MQTT v5 shared
subscription, in one run (issue 8, point 2).

    .venv/bin/python benchmarks/scale.py [--live 60000] [--backfill 300000] [--reps 1]
        [--json benchmarks/scale.json]

One harness InfluxDB 1.x for the whole run (a new database per measurement); a fresh
harness Mosquitto (the harness's queue limits, no autosave) per measurement so that no
session of an earlier measurement holds a share of the subscription. The registry is one
SQLite file that ``diatabase loadgen --register`` fills.

Method: drain of a backlog, so the replicas are measured without the load generator
competing for the two cores.

1. Sessions: N replicas (``python -m gateway.cli ingest --shared-group g --client-id
   ingest-i``, MQTT v5, persistent session) start, subscribe (seen in the broker's log)
   and stop with SIGTERM. Mosquitto keeps their sessions and the shared subscription.
2. Load: ``diatabase loadgen --verify none`` publishes the backlog as fast as it can
   (QoS 1, window 1,000). Mosquitto hands each message to one member of the group in
   turn and queues it in that (offline) member's session.
3. Drain: the N replicas start again; each is frozen (SIGSTOP) as soon as the broker logs
   its connection, and when all N are connected they are released together (SIGCONT).
   Throughput = readings stored from the release until InfluxDB's count reaches the
   backlog (polled every 0.2 s) / that time.

Two scenarios: *live* (one reading per message, as a hub sends while its CGM measures) and
*backfill* (500 older readings per message, as after an outage). CPU seconds (user +
system, psutil) of broker, InfluxDB and replicas over the drain; of loadgen and the broker
over the load phase. The figures and cost per 1,000 readings go to ``--json`` for
benchmarks/capacity.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import InfluxDB1Server, MosquittoServer  # noqa: E402

GROUP = "g"
SCENARIOS = {
    # name: loadgen arguments besides the totals
    "live": ["--live-batch", "1", "--backfill-fraction", "0"],
    "backfill": ["--backfill-batch", "500", "--backfill-fraction", "1"],
}


@dataclass
class Measurement:
    scenario: str
    replicas: int
    rep: int
    readings: int
    messages: int
    drain_s: float
    readings_per_s: float
    cpu_drain: dict[str, float]  # broker, influxdb, replicas (sum)
    cpu_replica_each: list[float]
    cpu_load: dict[str, float]  # loadgen, broker while publishing
    load_s: float


def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def influx_count(server: InfluxDB1Server, db: str) -> int:
    rows = server.query('SELECT count("key") FROM glucose', database=db)
    for result in rows:
        for series in result.get("series", []):
            return int(series["values"][0][1])
    return 0


def wait_for(cond, what: str, deadline_s: float = 120.0, every: float = 0.02) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not reached within {deadline_s} s")
        time.sleep(every)


class Replicas:
    def __init__(self, n: int, broker: MosquittoServer, store: str, registry: str, logdir: Path):
        self.n, self.broker, self.store, self.registry = n, broker, store, registry
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *, freeze: bool) -> None:
        """Start the N replicas; with ``freeze`` each is stopped once the broker logs its
        connection (returns when all are connected)."""
        base = {i: self.broker.log_text().count(f" as ingest-{i} ") for i in range(1, self.n + 1)}
        self.procs = []
        for i in range(1, self.n + 1):
            log = (self.logdir / f"ingest-{i}.log").open("ab")
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gateway.cli",
                        "ingest",
                        "--mqtt",
                        self.broker.url,
                        "--store",
                        self.store,
                        "--registry",
                        self.registry,
                        "--client-id",
                        f"ingest-{i}",
                        "--shared-group",
                        GROUP,
                        "--log-level",
                        "WARNING",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
        frozen: set[int] = set()

        def all_connected() -> bool:
            for i, p in enumerate(self.procs, 1):
                if p.poll() is not None:
                    log = (self.logdir / f"ingest-{i}.log").read_text()[-3000:]
                    raise RuntimeError(f"ingest-{i} exited {p.returncode}:\n{log}")
            text = self.broker.log_text()
            for i in range(1, self.n + 1):
                if i not in frozen and text.count(f" as ingest-{i} ") > base[i]:
                    if freeze:
                        self.procs[i - 1].send_signal(signal.SIGSTOP)
                    frozen.add(i)
            return len(frozen) == self.n

        try:
            wait_for(all_connected, "replicas connected", every=0.01)
        except TimeoutError as err:
            self.stop()  # never leave a replica behind
            logs = "".join(
                (self.logdir / f"ingest-{i}.log").read_text()[-1500:] for i in range(1, self.n + 1)
            )
            raise RuntimeError(f"{err}\n{logs}\n{self.broker.log_tail(30)}") from None
        except BaseException:
            self.stop()
            raise

    def release(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGCONT)
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def measure(
    scenario: str, n: int, rep: int, total: int, influx: InfluxDB1Server, work: Path
) -> Measurement:
    run = work / f"{scenario}-{n}-{rep}"
    run.mkdir()
    db = influx.new_database("scale")
    store = influx.url_for(db)
    registry = f"sqlite:///{run}/registry.db"
    broker = MosquittoServer(
        autosave_interval=3600, extra_config=["log_type subscribe"], workdir=run / "mqtt"
    )
    with broker:
        replicas = Replicas(n, broker, store, registry, run)
        # 1. sessions with the shared subscription, then offline
        subprocess.run(  # the registry exists before the replicas open it
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "loadgen",
                "--mqtt",
                broker.url,
                "--hubs",
                "100",
                "--rate",
                "1",
                "--duration",
                "0.001",
                "--verify",
                "none",
                "--register",
                registry,
            ],
            check=False,
            capture_output=True,
        )
        replicas.start(freeze=False)
        try:
            wait_for(
                lambda: all(
                    f"ingest-{i} 1 $share/{GROUP}/" in broker.log_text() for i in range(1, n + 1)
                ),
                "shared subscriptions",
            )
        finally:
            replicas.stop()
        # 2. the backlog, published while every member is offline
        rate = 200_000.0
        broker_cpu0 = cpu_s(broker.pid)
        t = time.monotonic()
        lg = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "loadgen",
                "--mqtt",
                broker.url,
                "--hubs",
                "100",
                "--rate",
                str(rate),
                "--duration",
                str(total / rate),
                "--window",
                "1000",
                "--verify",
                "none",
                "--json",
                str(run / "loadgen.json"),
                *SCENARIOS[scenario],
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _pid, status, usage = os.wait4(lg.pid, 0)
        load_s = time.monotonic() - t
        lg.returncode = os.waitstatus_to_exitcode(status)
        if lg.returncode != 0:
            assert lg.stderr is not None
            raise RuntimeError(f"loadgen failed: {lg.stderr.read().decode()[-2000:]}")
        cpu_load = {
            "loadgen": usage.ru_utime + usage.ru_stime,
            "broker": cpu_s(broker.pid) - broker_cpu0,
        }
        report = json.loads((run / "loadgen.json").read_text())
        assert report["acked_readings"] == total, report
        # 3. the drain, all replicas released together
        replicas.start(freeze=True)
        try:
            pids = [p.pid for p in replicas.procs]
            c0 = influx_count(influx, db)
            cpu0 = {"broker": cpu_s(broker.pid), "influxdb": cpu_s(influx.pid)}
            rep0 = [cpu_s(p) for p in pids]
            t0 = time.monotonic()
            replicas.release()
            wait_for(lambda: influx_count(influx, db) >= total, "drain", 600, every=0.2)
            drain_s = time.monotonic() - t0
            each = [cpu_s(p) - c for p, c in zip(pids, rep0, strict=True)]
            cpu_drain = {
                "broker": cpu_s(broker.pid) - cpu0["broker"],
                "influxdb": cpu_s(influx.pid) - cpu0["influxdb"],
                "replicas": sum(each),
            }
        finally:
            replicas.stop()
    influx.drop_database(db)
    return Measurement(
        scenario=scenario,
        replicas=n,
        rep=rep,
        readings=total,
        messages=report["messages"],
        drain_s=round(drain_s, 3),
        readings_per_s=round((total - c0) / drain_s, 1),
        cpu_drain={k: round(v, 2) for k, v in cpu_drain.items()},
        cpu_replica_each=[round(v, 2) for v in each],
        cpu_load={k: round(v, 2) for k, v in cpu_load.items()},
        load_s=round(load_s, 2),
    )


def summarise(ms: list[Measurement]) -> dict[str, object]:
    """Medians per (scenario, replicas), ratios per rep against 1 replica, cost per 1,000
    readings (drain + load-phase broker CPU for the broker)."""
    out: dict[str, object] = {}
    for scenario in SCENARIOS:
        rows = {}
        for n in (1, 2, 3):
            mine = [m for m in ms if m.scenario == scenario and m.replicas == n]
            if not mine:
                continue
            ones = {m.rep: m for m in ms if m.scenario == scenario and m.replicas == 1}
            k = mine[0].readings / 1000

            def med(f, mine=mine) -> float:
                return round(statistics.median(f(m) for m in mine), 4)

            rows[n] = {
                "readings_per_s": med(lambda m: m.readings_per_s),
                "ratio_to_1": med(
                    lambda m, ones=ones: m.readings_per_s / ones[m.rep].readings_per_s
                ),
                "cpu_s": {
                    "replicas": med(lambda m: m.cpu_drain["replicas"]),
                    "broker_drain": med(lambda m: m.cpu_drain["broker"]),
                    "broker_load": med(lambda m: m.cpu_load["broker"]),
                    "influxdb": med(lambda m: m.cpu_drain["influxdb"]),
                    "loadgen": med(lambda m: m.cpu_load["loadgen"]),
                },
                "cpu_s_per_1000_readings": {
                    "ingester": med(lambda m, k=k: m.cpu_drain["replicas"] / k),
                    "broker": med(
                        lambda m, k=k: (m.cpu_drain["broker"] + m.cpu_load["broker"]) / k
                    ),
                    "influxdb": med(lambda m, k=k: m.cpu_drain["influxdb"] / k),
                },
                "drain_s": med(lambda m: m.drain_s),
                "readings": mine[0].readings,
                "messages": mine[0].messages,
            }
        out[scenario] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--live", type=int, default=60_000, help="readings, 1 per message")
    ap.add_argument("--backfill", type=int, default=300_000, help="readings, 500 per message")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--replicas", default="1,2,3")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "scale.json")
    ap.add_argument("--scenarios", default="live,backfill")
    args = ap.parse_args()
    counts = [int(x) for x in args.replicas.split(",")]
    ms: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp, InfluxDB1Server() as influx:
        for rep in range(1, args.reps + 1):
            for scenario, total in (("live", args.live), ("backfill", args.backfill)):
                if scenario not in args.scenarios.split(","):
                    continue
                for n in counts:
                    m = measure(scenario, n, rep, total, influx, Path(tmp))
                    ms.append(m)
                    print(
                        f"{scenario:8} replicas={n} rep={rep}: {m.readings_per_s:>9,.0f} readings/s"
                        f" drain {m.drain_s:6.2f} s  cpu replicas {m.cpu_drain['replicas']:.1f}"
                        f" (each {m.cpu_replica_each}) broker {m.cpu_drain['broker']:.1f}"
                        f" influxdb {m.cpu_drain['influxdb']:.1f} | load {m.load_s:.1f} s"
                        f" loadgen {m.cpu_load['loadgen']:.1f} broker {m.cpu_load['broker']:.1f}",
                        flush=True,
                    )
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "2-core machine shared with other engineers' test runs",
        },
        "summary": summarise(ms),
        "runs": [asdict(m) for m in ms],
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
