"""Hub agent benchmarks: resident memory in steady state, and the outbox drain rate.

    .venv/bin/python benchmarks/edge.py memory [--seconds 60]
    .venv/bin/python benchmarks/edge.py drain [--readings 100000]

memory: each scenario runs in a fresh child process (RSS only grows, so scenarios must
not share one) for ``--seconds`` with 3 virtual devices (CGM, glucose meter, insulin
pump) on simulated time at 60x (a CGM reading every 5 s, live notifications, the meter
polled every 10 s; the agent serves the CGM and the meter, see below) and the agent publishing to a harness Mosquitto. VmRSS from
/proc/self/status is sampled every second; the figure is the last sample (steady state)
and the maximum. Scenarios: ``imports`` (the interpreter with the modules the agent loads,
idle; no bumble), ``world`` (the virtual peripherals and bumble
alone, no agent), ``agent`` (world + EdgeAgent). The agent's own cost is agent - world;
on a hub there is no bumble and no virtual peripherals, so imports + (agent - world)
approximates the hub figure.

drain: ``--readings`` readings pre-filled in an outbox, then the shipped publisher
(defaults: 500 readings per batch, 4 in flight, signed) drains it to Mosquitto while a
paho subscriber counts readings; time from start until the subscriber has them all and
the outbox is empty. Reference in the same run: a minimal paho publisher sending the
same payload bytes (the same batches, pre-encoded) with QoS 1 and the same in-flight
window, counted by the same subscriber.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# -- memory --------------------------------------------------------------------------


async def memory_scenario(mode: str, seconds: float, url: str) -> None:
    # What the agent loads on a hub (bleak, aiomqtt/paho, aiosqlite, pydantic, drivers).
    from edge.agent import EdgeAgent
    from edge.settings import DeviceConfig, EdgeSettings, OutboxConfig
    from gateway.contract.urls import MqttUrl

    samples: list[float] = []
    if mode == "imports":
        for _ in range(int(seconds)):
            samples.append(rss_mb())
            await asyncio.sleep(1)
        print(json.dumps({"mode": mode, "last": samples[-1], "max": max(samples)}))
        return
    from drivers.virtual import SimClock, VirtualWorld

    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    clock = SimClock(datetime(2026, 3, 1, 8, 0), speed=60)
    async with VirtualWorld(clock) as world:
        cgm = await world.add_cgm("CGM-M", history=timedelta(hours=6))
        meter = await world.add_meter("BG-M", history=timedelta(days=1))
        pump = await world.add_pump("PUMP-M", history=timedelta(days=1))
        task = None
        agent = None
        if mode == "agent":
            agent = EdgeAgent(
                EdgeSettings(
                    hub_id="hub-bench",
                    mqtt=MqttUrl.parse(url),
                    devices=[
                        DeviceConfig(kind="cgm", address=cgm.address),
                        DeviceConfig(
                            kind="glucose_meter", address=meter.address, poll_interval_s=10
                        ),
                        DeviceConfig(kind="insulin_pump", address=pump.address, poll_interval_s=10),
                    ],
                    outbox=OutboxConfig(path=tmp / "outbox.db"),
                    signing_key=tmp / "hub.key",
                ),
                client_factory=world.client_factory,
            )
            task = asyncio.create_task(agent.run())
        for _ in range(int(seconds)):
            samples.append(rss_mb())
            await asyncio.sleep(1)
        extra = {}
        if agent is not None:
            extra = {
                "read": sum(t.state.records_read for t in agent.tasks),
                "published": agent.publisher.stats.readings,
                "syncs": sum(t.syncs for t in agent.tasks),
                "failures": sum(t.state.failures for t in agent.tasks),
            }
        if task is not None:
            for t in agent.tasks if agent else []:
                t.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    print(json.dumps({"mode": mode, "last": samples[-1], "max": max(samples), **extra}))


def memory(seconds: float) -> None:
    from tests.harness import MosquittoServer

    with MosquittoServer() as broker:
        broker.start()
        results = {}
        for mode in ("imports", "world", "agent"):
            out = subprocess.run(
                [sys.executable, __file__, "_memory", mode, str(seconds), broker.url],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout
            results[mode] = json.loads(out.strip().splitlines()[-1])
    print(f"{'scenario':<46}{'VmRSS MB (end)':>16}{'max':>8}")
    labels = {
        "imports": "interpreter + the agent's imports, idle",
        "world": "3 virtual devices on bumble, no agent",
        "agent": "3 virtual devices + EdgeAgent",
    }
    for mode, r in results.items():
        print(f"{labels[mode]:<46}{r['last']:>16.1f}{r['max']:>8.1f}")
    a, w, i = results["agent"], results["world"], results["imports"]
    print(f"agent's own cost (agent - world): {a['last'] - w['last']:.1f} MB")
    print(f"peripherals + bumble (world - imports): {w['last'] - i['last']:.1f} MB")
    print(
        f"estimated hub RSS (imports + agent - world): {i['last'] + a['last'] - w['last']:.1f} MB"
    )
    print(
        f"agent run: {a.get('read')} read, {a.get('published')} published, "
        f"{a.get('syncs')} syncs, {a.get('failures')} failures"
    )


# -- drain ---------------------------------------------------------------------------


class Counter:
    """A paho subscriber counting readings (JSON-decoding each batch)."""

    def __init__(self, url: str, topic: str) -> None:
        import paho.mqtt.client as paho

        from gateway.contract.urls import MqttUrl

        u = MqttUrl.parse(url)
        self.readings = 0
        self.messages = 0
        self.target = 0
        self.done = threading.Event()
        self.ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-counter")
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(u.host, u.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        self.ready.wait(10)

    def _on_message(self, _c: object, _u: object, m: object) -> None:
        payload = m.payload  # type: ignore[attr-defined]
        self.readings += len(json.loads(payload)["readings"])
        self.messages += 1
        if self.readings >= self.target:
            self.done.set()

    def expect(self, n: int) -> None:
        self.readings = self.messages = 0
        self.target = n
        self.done.clear()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def drain(n: int) -> None:
    from edge.outbox import Outbox
    from edge.publisher import Publisher, PublisherConfig, encode_batch
    from gateway.contract.signing import Signer
    from gateway.contract.urls import MqttUrl
    from gateway.contract.v1 import HubStatus, topic_readings
    from tests.factories import cgm_reading
    from tests.harness import MosquittoServer
    from tests.mqttutil import publish_many

    async def status() -> HubStatus:
        return HubStatus(hub_id="hub-bench", online=True)

    tmp = Path(tempfile.mkdtemp(prefix="edge-drain-"))
    readings = [cgm_reading("CGM-D", i * 5, 100.0 + i % 50) for i in range(n)]
    rows = [(r["key"], json.dumps(r)) for r in readings]
    signer = Signer.load_or_create(tmp / "hub.key")
    with MosquittoServer() as broker:
        broker.start()
        cfg = PublisherConfig(
            hub_id="hub-bench", mqtt=MqttUrl.parse(broker.url), client_id="hub-bench"
        )
        counter = Counter(broker.url, topic_readings("hub-bench"))
        try:
            async with Outbox(tmp / "outbox.db") as box:
                t0 = time.perf_counter()
                for i in range(0, n, 10_000):
                    await box.put("CGM-D", rows[i : i + 10_000], stream="records", cursor=i)
                fill_s = time.perf_counter() - t0
                counter.expect(n)
                pub = Publisher(cfg, box, status, signer=signer)
                t0 = time.perf_counter()
                task = asyncio.create_task(pub.run())
                while not (counter.done.is_set() and box.depth == 0):  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                ours_s = time.perf_counter() - t0
                batches = pub.stats.batches
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                # The same batches, pre-encoded (signed), for the reference publisher.
                peeked = await box.peek(1)
                assert not peeked
            async with Outbox(tmp / "ref.db") as ref:
                await ref.put("CGM-D", rows, stream="records", cursor=n)
                all_rows = await ref.peek(n)
            per = cfg.max_batch_readings
            payloads = [
                encode_batch("hub-bench", all_rows[i : i + per], signer) for i in range(0, n, per)
            ]
            counter.expect(n)
            t0 = time.perf_counter()
            sender = asyncio.create_task(
                asyncio.to_thread(
                    publish_many,
                    broker.url,
                    topic_readings("hub-bench"),
                    payloads,
                    client_id="bench-ref",
                    window=cfg.max_in_flight,
                )
            )
            # Stop the clock when the subscriber has everything (publish_many's own
            # shutdown waits out paho's 1 s network-loop tick).
            await asyncio.to_thread(counter.done.wait, 600)
            ref_s = time.perf_counter() - t0
            await sender
        finally:
            counter.close()
    size = sum(len(p) for p in payloads) / len(payloads)
    print(f"outbox fill: {n} readings in {fill_s:.2f} s ({n / fill_s:,.0f}/s)")
    print(
        f"batches: {batches} of <= {cfg.max_batch_readings} readings, ~{size / 1024:.0f} KiB, "
        f"{cfg.max_in_flight} in flight, Ed25519-signed"
    )
    print(f"{'path':<58}{'seconds':>9}{'readings/s':>12}")
    print(
        f"{'paho QoS 1, same payload bytes, pre-encoded (reference)':<58}{ref_s:>9.2f}{n / ref_s:>12,.0f}"
    )
    print(f"{'edge publisher: outbox -> PUBACK -> delete':<58}{ours_s:>9.2f}{n / ours_s:>12,.0f}")
    print(f"ratio ours / reference: {ref_s / ours_s:.2f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory":
        _, _, mode, seconds, url = sys.argv
        asyncio.run(memory_scenario(mode, float(seconds), url))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--seconds", type=float, default=60.0)
    d = sub.add_parser("drain")
    d.add_argument("--readings", type=int, default=100_000)
    args = parser.parse_args()
    if args.what == "memory":
        memory(args.seconds)
    else:
        asyncio.run(drain(args.readings))


if __name__ == "__main__":
    main()
