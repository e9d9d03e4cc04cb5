"""Ingest benchmarks: our ingester against same-run references (issue 5, point 9).

    .venv/bin/python benchmarks/ingest.py [--messages 200000] [--reps 3] [--quick]

Everything runs in one process tree on one harness Mosquitto and one harness InfluxDB 1.x.

Drain method (isolates delivery from publishing): a persistent session is created for the
consumer's client id (connect with clean session off / session expiry, subscribe QoS 1,
disconnect), the messages are published while it is offline (bounded in-flight window),
then the consumer is started and the drain of the backlog is timed:

* ``mosquitto_sub -q 1 -c -C N``: the C client's delivery rate (one subscriber's practical
  limit); timed from spawn to exit after N messages.
* naive: a Python ingester (paho MQTT v5, Receive Maximum 5,000, manual ack, ``json.loads`` + pydantic
  ``ReadingsBatch.model_validate`` per message, f-string line protocol, batches of 5,000
  POSTed to InfluxDB with httpx, then the batch is acked); timed from its first message
  until InfluxDB's count reaches N.
* ours: ``python -m gateway.cli ingest`` as a subprocess; timed from its first message
  (its /metrics ``diatabase_first_message_time_seconds``) until InfluxDB's count reaches N.
* raw InfluxDB: httpx POST /write of the same number of lines (ours, pre-built) in
  batches of 5,000, sequentially: the database's ingest rate for this schema.

Latency: ours runs live; a publisher sends ``--rate`` messages/s of 100 readings whose
``time`` is the publish time; a poller asks InfluxDB every 50 ms for the newest stored
point (``last(value)`` since the start); a message's latency is the start of the first
poll that sees a point at least as new as its time, minus that time (resolution: the poll
interval). The ingester's own ``diatabase_lag_seconds`` histogram is read too.

CPU seconds of the broker, the database and the consumer over each timed window come from
psutil (children that exit first: os.wait4's rusage).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import psutil
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.contract.v1 import SCHEMA_ID, topic_readings  # noqa: E402
from tests.harness.mosquitto import QUEUE_LIMITS as HARNESS_QUEUE_LIMITS  # noqa: E402

TOPIC = topic_readings("hub-1")
SUB_TOPIC = topic_readings("+")
SERIALS = [f"CGM{i:03d}" for i in range(100)]
BASE = datetime(2026, 11, 1, 8, 0, 0)
SENT_AT = "2026-11-28T00:00:00+00:00"
INFLUX_BATCH = 5000
# The broker runs with the harness's queue limits (tests/harness/mosquitto.py, the same
# as deploy/mosquitto): queues unbounded in practice, MQTT 3.1.1 clients (mosquitto_sub,
# the naive ingester) at most 100 unacknowledged messages in flight, v5 clients their own
# Receive Maximum. A 10,000 window let mosquitto_sub skip round trips altogether (209k
# msg/s, above InfluxDB's own ingest rate here): not the subscriber a deployment runs.
# No autosave during a run (it would rewrite the 60 MB store mid-measurement).
QUEUE_LIMITS = HARNESS_QUEUE_LIMITS


# -- payloads ----------------------------------------------------------------------------
def _key(serial: str, offset: int) -> str:
    canonical = f"v1|{serial}|cgm|s={BASE.isoformat()}|o={offset}"
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def reading(serial: str, offset: int, mg: float, at: datetime | None = None) -> dict[str, object]:
    device_time = BASE + timedelta(minutes=offset) if at is None else at.replace(tzinfo=None)
    utc = device_time.replace(tzinfo=UTC) if at is None else at
    return {
        "key": _key(serial, offset),
        "device": {"serial": serial, "kind": "cgm"},
        "kind": "cgm",
        "device_time": device_time.isoformat(),
        "clock_offset_s": 0.0,
        "time": utc.isoformat(),
        "value": mg,
        "unit": "mg/dL",
    }


def envelope(readings: list[dict[str, object]], sent_at: str = SENT_AT) -> bytes:
    doc = {
        "schema": SCHEMA_ID,
        "hub_id": "hub-1",
        "sent_at": sent_at,
        "batch_id": str(uuid.uuid4()),
        "readings": readings,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def single_payloads(n: int) -> list[bytes]:
    return [envelope([reading(SERIALS[i % 100], (i // 100) * 5, 40.0 + i % 300)]) for i in range(n)]


def batch_payloads(n_readings: int, per: int = 100) -> list[bytes]:
    return [
        envelope([reading(SERIALS[j], i * 5, 40.0 + (i + j) % 300) for j in range(per)])
        for i in range(n_readings // per)
    ]


def raw_lines(payloads: Sequence[bytes]) -> list[bytes]:
    """The line protocol ours writes for these payloads, pre-built in batches of 5,000."""
    from gateway.ingest.pipeline import process
    from gateway.store.lineprotocol import lines

    stored = []
    for p in payloads:
        stored += process(TOPIC, p, link=lambda s, _t: "P-" + s, hub_of=lambda _s: "hub-1").stored
    return [lines(stored[i : i + INFLUX_BATCH]) for i in range(0, len(stored), INFLUX_BATCH)]


# -- MQTT helpers ------------------------------------------------------------------------
def make_session(host: str, port: int, client_id: str, *, v5: bool) -> None:
    """Create a persistent session subscribed to the readings topics, then go offline."""
    done = threading.Event()
    c = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else False,
    )
    c.on_subscribe = lambda *_a: done.set()
    props = None
    kwargs: dict[str, object] = {}
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        kwargs["clean_start"] = False
    c.connect(host, port, 30, properties=props, **kwargs)
    c.loop_start()
    c.subscribe(SUB_TOPIC, qos=1)
    if not done.wait(10):
        raise RuntimeError("no SUBACK")
    c.disconnect()
    c.loop_stop()


def publish(url: str, payloads: Sequence[bytes]) -> None:
    from tests.mqttutil import publish_many

    publish_many(url, TOPIC, payloads, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}", window=2000)


# -- measurement helpers -----------------------------------------------------------------
def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


class CpuSampler:
    """CPU seconds of a consumer, the broker and the database every 10 ms (from /proc,
    independent of how busy the consumer is), to read them back at a given wall time."""

    def __init__(self, pid: int, servers: Servers) -> None:
        self.pid, self.servers = pid, servers
        self.samples: list[tuple[float, float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> tuple[float, float, float]:
        b, i = self.servers.snapshot()
        return cpu_s(self.pid), b, i

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append((time.time(), *self.now()))
            time.sleep(0.01)

    def at(self, wall: float) -> tuple[float, float, float]:
        before = [s for s in self.samples if s[0] <= wall] or self.samples[:1]
        return before[-1][1:]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Run:
    name: str
    seconds: float
    messages: int
    readings: int
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def msg_s(self) -> float:
        return self.messages / self.seconds

    @property
    def rd_s(self) -> float:
        return self.readings / self.seconds


class Servers:
    def __init__(self, broker: object, influx: object) -> None:
        self.broker = broker
        self.influx = influx
        self.bpid: int = broker.pid  # type: ignore[attr-defined]
        self.ipid: int = influx.pid  # type: ignore[attr-defined]

    def snapshot(self) -> tuple[float, float]:
        return cpu_s(self.bpid), cpu_s(self.ipid)

    def count(self, db: str) -> int:
        rows = self.influx.points("SELECT count(value) FROM glucose", database=db)  # type: ignore[attr-defined]
        return int(rows[0]["count"]) if rows else 0


def wait_count(
    servers: Servers,
    db: str,
    n: int,
    timeout: float = 600.0,
    proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None = None,
) -> float:
    """Poll InfluxDB's count until it reaches n; returns the time it was seen."""
    deadline = time.monotonic() + timeout
    while True:
        if servers.count(db) >= n:
            return time.monotonic()
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"consumer exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"count did not reach {n}")
        time.sleep(0.1)


def check_count(servers: Servers, db: str, n: int) -> None:
    """Once a consumer says it has written n readings: InfluxDB holds exactly n."""
    got = servers.count(db)
    if got != n:
        raise RuntimeError(f"InfluxDB holds {got} readings, expected {n}")


def metric(port: int, name: str) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


# -- consumers ---------------------------------------------------------------------------
def run_mosquitto_sub(
    servers: Servers, url_host: str, port: int, payloads: Sequence[bytes], rep: int
) -> Run:
    cid = f"bench-sub-{rep}-{uuid.uuid4().hex[:6]}"
    make_session(url_host, port, cid, v5=False)
    publish(f"mqtt://{url_host}:{port}", payloads)
    b0, i0 = servers.snapshot()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            *("mosquitto_sub", "-h", url_host, "-p", str(port), "-q", "1", "-c", "-i", cid),
            *("-t", SUB_TOPIC, "-C", str(len(payloads)), "-N"),
        ],
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    t1 = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    b1, i1 = servers.snapshot()
    if proc.returncode != 0:
        raise RuntimeError(f"mosquitto_sub exited {proc.returncode}")
    return Run(
        "mosquitto_sub -q 1",
        t1 - t0,
        len(payloads),
        len(payloads),
        {"broker": b1 - b0, "db": i1 - i0, "consumer": usage.ru_utime + usage.ru_stime},
    )


def run_naive(
    servers: Servers, host: str, port: int, payloads: Sequence[bytes], readings: int, rep: int
) -> Run:
    cid = f"bench-naive-{rep}-{uuid.uuid4().hex[:6]}"
    db = servers.influx.new_database("naive")  # type: ignore[attr-defined]
    make_session(host, port, cid, v5=True)
    publish(f"mqtt://{host}:{port}", payloads)
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--naive-worker",
            f"{host}:{port}",
            cid,
            servers.influx.http_url,
            db,
            str(readings),
        ],  # type: ignore[attr-defined]
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "first" when the first message arrived
        if not line.startswith("first"):
            raise RuntimeError(f"naive worker: {line!r}")
        t0 = time.monotonic()
        b0, i0 = servers.snapshot()
        c0 = cpu_s(proc.pid)
        line = proc.stdout.readline()  # "done" when every reading's write got its 204
        t1 = time.monotonic()
        b1, i1 = servers.snapshot()
        c1 = cpu_s(proc.pid)
        if not line.startswith("done"):
            raise RuntimeError(f"naive worker: {line!r}")
    finally:
        proc.terminate()
        proc.wait(30)
    check_count(servers, db, readings)
    servers.influx.drop_database(db)  # type: ignore[attr-defined]
    return Run(
        "naive Python ingester",
        t1 - t0,
        len(payloads),
        readings,
        {"broker": b1 - b0, "db": i1 - i0, "consumer": c1 - c0},
    )


class Ours:
    """``diatabase ingest`` as a subprocess with its own metrics port."""

    def __init__(self, host: str, port: int, influx_url: str, registry: str, cid: str) -> None:
        from tests.harness import free_port

        self.metrics_port = free_port()
        env = dict(os.environ)
        env.update(OURS_ENV)
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="ingest-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gateway.cli", "ingest", "--mqtt", f"mqtt://{host}:{port}"),
                *("--store", influx_url, "--registry", registry, "--client-id", cid),
                *("--metrics-port", str(self.metrics_port), "--log-level", "WARNING"),
            ],
            stdout=self.log,
            stderr=self.log,
            env=env,
            cwd=ROOT,
        )
        self.spy: subprocess.Popen[bytes] | None = None
        if os.environ.get("BENCH_PROFILE"):  # py-spy flame graph of the ingester
            self.spy = subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/py-spy"),
                    "record",
                    "-r",
                    "250",
                    "--nonblocking",
                    "-f",
                    "raw",
                    "-o",
                    os.environ["BENCH_PROFILE"],
                    "--pid",
                    str(self.proc.pid),
                ]
            )

    def wait_metric(
        self, name: str, at_least: float, timeout: float = 60.0, every: float = 0.01
    ) -> float:
        deadline = time.monotonic() + timeout
        while True:
            v = metric(self.metrics_port, name)
            if v is not None and v >= at_least:
                return time.monotonic()
            if self.proc.poll() is not None:
                raise RuntimeError(f"ingester exited; log {self.log.name}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not reach {at_least}; log {self.log.name}")
            time.sleep(every)

    def stop(self) -> None:
        if self.spy is not None:
            self.spy.send_signal(signal.SIGINT)
            self.spy.wait(60)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


OURS_ENV: dict[str, str] = {}


def run_ours(
    servers: Servers,
    host: str,
    port: int,
    registry: str,
    payloads: Sequence[bytes],
    readings: int,
    rep: int,
) -> Run:
    cid = f"bench-ours-{rep}-{uuid.uuid4().hex[:6]}"
    db = servers.influx.new_database("ours")  # type: ignore[attr-defined]
    make_session(host, port, cid, v5=True)
    publish(f"mqtt://{host}:{port}", payloads)
    ours = Ours(host, port, servers.influx.url_for(db), registry, cid)  # type: ignore[attr-defined]
    sampler = CpuSampler(ours.proc.pid, servers)
    try:
        # Timed from the ingester's own record of its first message, CPU from samples
        # taken meanwhile: the whole backlog can arrive, and much of it be processed,
        # before a scrape of the busy ingester gets through.
        ours.wait_metric("diatabase_first_message_time_seconds", 1)
        first = metric(ours.metrics_port, "diatabase_first_message_time_seconds")
        assert first is not None
        # Until the ingester has written everything (InfluxDB answered 204 for every
        # reading), timed by its own record of that last write; the store's count is
        # checked once afterwards. (Polling count(value) meanwhile cost InfluxDB a full
        # scan, ~150 ms of CPU, every 100 ms: charged to the consumers, not to raw.)
        ours.wait_metric("diatabase_readings_stored_total", readings, timeout=600, every=0.1)
        last_write = metric(ours.metrics_port, "diatabase_last_write_time_seconds")
        assert last_write, "the ingester stored readings but reports no last write"
        t1 = last_write
        t0 = first
        c1, b1, i1 = sampler.now()
        c0, b0, i0 = sampler.at(first)
    finally:
        sampler.stop()
        ours.stop()
    check_count(servers, db, readings)
    servers.influx.drop_database(db)  # type: ignore[attr-defined]
    return Run(
        "ours (diatabase ingest)",
        t1 - t0,
        len(payloads),
        readings,
        {"broker": b1 - b0, "db": i1 - i0, "consumer": c1 - c0},
    )


def run_raw(servers: Servers, bodies: Sequence[bytes], readings: int) -> Run:
    db = servers.influx.new_database("raw")  # type: ignore[attr-defined]
    with httpx.Client(base_url=servers.influx.http_url, timeout=60) as http:  # type: ignore[attr-defined]
        b0, i0 = servers.snapshot()
        c0 = time.process_time()
        t0 = time.monotonic()
        for body in bodies:
            r = http.post("/write", params={"db": db, "precision": "ns"}, content=body)
            if r.status_code != 204:
                raise RuntimeError(f"/write {r.status_code} {r.text}")
        t1 = time.monotonic()
        b1, i1 = servers.snapshot()
        c1 = time.process_time()
    if servers.count(db) != readings:
        raise RuntimeError("raw write count mismatch")
    servers.influx.drop_database(db)  # type: ignore[attr-defined]
    return Run(
        "raw InfluxDB /write (5,000 lines/POST)",
        t1 - t0,
        len(bodies),
        readings,
        {"broker": b1 - b0, "db": i1 - i0, "consumer": c1 - c0},
    )


# -- naive worker (subprocess) -----------------------------------------------------------
def naive_worker(broker: str, cid: str, influx: str, db: str, target: int) -> None:
    from gateway.contract.v1 import ReadingsBatch

    host, port = broker.split(":")
    pending: list[paho.MQTTMessage] = []
    # MQTT v5 with a Receive Maximum of one batch: with 3.1.1 the broker's window of 100
    # would cap every batch at 100 messages.
    c = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=cid, protocol=paho.MQTTv5, manual_ack=True
    )
    first = [True]

    def on_message(_c: object, _u: object, msg: paho.MQTTMessage) -> None:
        if first[0]:
            first[0] = False
            print("first", flush=True)
        pending.append(msg)

    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = INFLUX_BATCH
    c.connect(host, int(port), 30, clean_start=False, properties=props)
    c.subscribe(SUB_TOPIC, qos=1)
    http = httpx.Client(base_url=influx, timeout=60)
    last_len, last_change = 0, time.monotonic()
    written = 0
    while True:
        c.loop(0.01)
        if len(pending) != last_len:
            last_len, last_change = len(pending), time.monotonic()
        if not pending or (len(pending) < INFLUX_BATCH and time.monotonic() - last_change < 0.02):
            continue
        batch, pending[:] = pending[:INFLUX_BATCH], pending[INFLUX_BATCH:]
        out = []
        for msg in batch:
            b = ReadingsBatch.model_validate(json.loads(msg.payload))
            for r in b.readings:
                ts = int(r.time.timestamp() * 1e6) * 1000
                out.append(
                    f"glucose,device={r.device.serial},kind={r.kind},patient=P-{r.device.serial} "
                    f'value={r.value},unit="{r.unit}",key="{r.key}",hub="{b.hub_id}",'
                    f'device_time="{r.device_time.isoformat()}",'
                    f"clock_offset_s={r.clock_offset_s} {ts}"
                )
        for i in range(0, len(out), INFLUX_BATCH):
            body = "\n".join(out[i : i + INFLUX_BATCH]).encode()
            resp = http.post("/write", params={"db": db, "precision": "ns"}, content=body)
            if resp.status_code != 204:
                raise RuntimeError(resp.text)
        written += len(out)
        if written >= target:
            print("done", flush=True)
        for msg in batch:
            c.ack(msg.mid, msg.qos)
        last_len = 0


# -- latency -----------------------------------------------------------------------------
def run_latency(
    servers: Servers, host: str, port: int, registry: str, rate: int, seconds: float
) -> dict[str, float]:
    db = servers.influx.new_database("lat")  # type: ignore[attr-defined]
    cid = f"bench-lat-{uuid.uuid4().hex[:6]}"
    ours = Ours(host, port, servers.influx.url_for(db), registry, cid)  # type: ignore[attr-defined]
    polls: list[tuple[float, int]] = []  # (poll start, newest stored time ns)
    sent: list[int] = []  # publish time ns of each message
    stop = threading.Event()
    try:
        ours.wait_metric("diatabase_mqtt_connected", 1)
        time.sleep(0.5)  # subscribed
        start_ns = time.time_ns()

        def poller() -> None:
            q = f"SELECT last(value) FROM glucose WHERE time >= {start_ns}"
            while not stop.is_set():
                t = time.time_ns()
                rows = servers.influx.points(q, database=db)  # type: ignore[attr-defined]
                if rows:
                    polls.append((t, int(rows[0]["time"])))
                time.sleep(max(0.0, 0.05 - (time.time_ns() - t) / 1e9))

        pt = threading.Thread(target=poller, daemon=True)
        pt.start()
        pub = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"lat-pub-{cid}", protocol=paho.MQTTv5
        )
        pub.max_inflight_messages_set(1000)
        pub.connect(host, port, 30)
        pub.loop_start()
        b0, i0 = servers.snapshot()
        c0 = cpu_s(ours.proc.pid)
        n = int(rate * seconds)
        t_start = time.monotonic()
        for i in range(n):
            due = t_start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = datetime.now(UTC)
            payload = envelope(
                [reading(s, 100_000 + i, 100.0 + j % 50, now) for j, s in enumerate(SERIALS)],
                sent_at=now.isoformat(),
            )
            sent.append(int(now.timestamp() * 1_000_000) * 1000)
            pub.publish(TOPIC, payload, qos=1)
        wait_count(servers, db, n * 100, timeout=120)
        time.sleep(0.2)
        b1, i1 = servers.snapshot()
        c1 = cpu_s(ours.proc.pid)
        elapsed = time.monotonic() - t_start
        stop.set()
        pt.join()
        pub.loop_stop()
        pub.disconnect()
        text = httpx.get(f"http://127.0.0.1:{ours.metrics_port}/metrics").text
    finally:
        stop.set()
        ours.stop()
    servers.influx.drop_database(db)  # type: ignore[attr-defined]
    lats = []
    j = 0
    for t in sent:
        while j < len(polls) and polls[j][1] < t:
            j += 1
        if j == len(polls):
            break
        lats.append((polls[j][0] - t) / 1e9)
    lats.sort()
    buckets = {
        float(m.group(1)): float(m.group(2))
        for m in re.finditer(r'^diatabase_lag_seconds_bucket\{le="([^"+]+)"\} (\S+)$', text, re.M)
    }
    total = max(buckets.values()) if buckets else 0.0
    return {
        "messages": float(len(sent)),
        "measured": float(len(lats)),
        "p50": lats[len(lats) // 2],
        "p99": lats[min(len(lats) - 1, int(len(lats) * 0.99))],
        "max": lats[-1],
        "hist_le_0.25": buckets.get(0.25, 0) / total if total else 0,
        "hist_le_0.5": buckets.get(0.5, 0) / total if total else 0,
        "hist_le_1": buckets.get(1.0, 0) / total if total else 0,
        "cpu_ingester_pct": 100 * (c1 - c0) / elapsed,
        "cpu_broker_pct": 100 * (b1 - b0) / elapsed,
        "cpu_db_pct": 100 * (i1 - i0) / elapsed,
    }


# -- main --------------------------------------------------------------------------------
def seed(registry: str) -> None:
    import asyncio

    from gateway.contract.urls import StoreUrl
    from gateway.registry.service import Registry

    async def go() -> None:
        async with Registry(StoreUrl.parse(registry)) as reg:
            await reg.add_hub("hub-1")
            for s in SERIALS:
                await reg.add_patient("P-" + s)
                await reg.add_device(s, "cgm", hub_id="hub-1")
                await reg.assign(s, "P-" + s, datetime(2026, 1, 1, tzinfo=UTC))

    asyncio.run(go())


def median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.seconds)
    return ordered[len(ordered) // 2]


def fmt_table(rows: list[tuple[str, ...]], head: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in rows
    ]
    return "\n".join(out)


def row(r: Run, ref: Run | None = None) -> tuple[str, ...]:
    return (
        r.name,
        f"{r.msg_s:,.0f}",
        f"{r.rd_s:,.0f}",
        f"{r.seconds:.2f}",
        f"{r.cpu.get('consumer', 0):.2f}",
        f"{r.cpu.get('broker', 0):.2f}",
        f"{r.cpu.get('db', 0):.2f}",
    )


HEAD = ("path", "msg/s", "readings/s", "s", "CPU s consumer", "CPU s broker", "CPU s db")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rate", type=int, default=100, help="latency: messages/s of 100 readings")
    ap.add_argument("--seconds", type=float, default=20.0, help="latency: duration")
    ap.add_argument("--quick", action="store_true", help="20k messages, 1 rep, 5 s latency")
    ap.add_argument("--only", default="", help="comma list: sub,naive,ours,raw,batch,latency")
    ap.add_argument("--naive-worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.naive_worker:
        broker, cid, influx, db, target = args.naive_worker
        naive_worker(broker, cid, influx, db, int(target))
        return
    # SIGTERM unwinds like Ctrl-C, so the harness stops its servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.messages, args.reps, args.seconds = 20_000, 1, 5.0
    only = set(args.only.split(",")) if args.only else None

    def want(x: str) -> bool:
        return only is None or x in only

    from tests.harness import InfluxDB1Server, MosquittoServer

    n = args.messages
    print(f"building {n:,} single-reading and {n // 100:,} x 100-reading payloads...", flush=True)
    singles = single_payloads(n)
    batches = batch_payloads(n)
    print(f"single payload {len(singles[0])} bytes, 100-reading payload {len(batches[0])} bytes")
    raw_bodies = raw_lines(batches)
    results: dict[str, list[Run]] = {}
    latency: list[dict[str, float]] = []

    with (
        tempfile.TemporaryDirectory() as tmp,
        MosquittoServer(queue_limits=QUEUE_LIMITS, autosave_interval=3600) as broker,
        InfluxDB1Server() as influx,
    ):
        registry = f"sqlite:///{tmp}/registry.db"
        seed(registry)
        servers = Servers(broker, influx)
        host, port = broker.host, broker.port

        def add(key: str, fn: Callable[[], Run]) -> None:
            r = fn()
            results.setdefault(key, []).append(r)
            print(f"  {key:<14} {r.msg_s:>10,.0f} msg/s {r.rd_s:>10,.0f} readings/s", flush=True)

        for rep in range(args.reps):
            print(f"rep {rep + 1}/{args.reps}", flush=True)
            if want("sub"):
                add("sub", lambda rep=rep: run_mosquitto_sub(servers, host, port, singles, rep))
            if want("naive"):
                add("naive", lambda rep=rep: run_naive(servers, host, port, singles, n, rep))
            if want("ours"):
                add(
                    "ours", lambda rep=rep: run_ours(servers, host, port, registry, singles, n, rep)
                )
            if want("raw"):
                add("raw", lambda: run_raw(servers, raw_bodies, n))
            if want("batch"):
                add("naive100", lambda rep=rep: run_naive(servers, host, port, batches, n, rep))
                add(
                    "ours100",
                    lambda rep=rep: run_ours(servers, host, port, registry, batches, n, rep),
                )
        if want("latency"):
            for _ in range(args.reps):
                lat = run_latency(servers, host, port, registry, args.rate, args.seconds)
                latency.append(lat)
                print(f"  latency p50 {lat['p50']:.3f} s p99 {lat['p99']:.3f} s", flush=True)

    report(results, latency, args)


def report(results: dict[str, list[Run]], latency: list[dict[str, float]], args: object) -> None:
    med = {k: median_run(v) for k, v in results.items()}
    print()
    print("Single-reading messages (medians of the runs)")
    print(fmt_table([row(med[k]) for k in ("sub", "naive", "ours") if k in med], HEAD))
    print()
    print("100-reading messages, and InfluxDB's raw ingest")
    print(fmt_table([row(med[k]) for k in ("raw", "naive100", "ours100") if k in med], HEAD))

    def ratios(a: str, b: str, per: str = "rd_s") -> str:
        if a not in results or b not in results:
            return "-"
        rs = [
            getattr(x, per) / getattr(y, per) for x, y in zip(results[a], results[b], strict=True)
        ]
        return f"{statistics.median(rs):.2f} (runs: {', '.join(f'{r:.2f}' for r in rs)})"

    print()
    print("Ratios (per run, then the median)")
    print(f"  ours / mosquitto_sub (messages/s):    {ratios('ours', 'sub', 'msg_s')}")
    print(f"  ours / naive (messages/s):            {ratios('ours', 'naive', 'msg_s')}")
    print(f"  naive / mosquitto_sub (messages/s):   {ratios('naive', 'sub', 'msg_s')}")
    # One single-reading message is one line: no ingester that stores every message can
    # go faster than InfluxDB takes the same lines raw, whatever the C client does.
    print(f"  ceiling: raw InfluxDB / mosquitto_sub: {ratios('raw', 'sub')}")
    print(f"  ours x100 / raw InfluxDB (readings/s): {ratios('ours100', 'raw')}")
    print(f"  ours x100 / naive x100 (readings/s):  {ratios('ours100', 'naive100')}")
    for k, v in results.items():
        print(f"  spread {k}: " + ", ".join(f"{r.rd_s:,.0f}" for r in v) + " readings/s")
    if latency:
        print()
        print("Latency, publish -> stored (InfluxDB poll every 50 ms), per run:")
        for lat in latency:
            print(
                "  "
                + ", ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) and v < 100 else f"{k} {v:.0f}"
                    for k, v in lat.items()
                )
            )


if __name__ == "__main__":
    main()
