"""Hub agent benchmarks: resident memory in steady state, and the outbox drain rate.

    .venv/bin/python benchmarks/edge.py memory [--seconds 60]
    .venv/bin/python benchmarks/edge.py drain [--readings 100000]

memory: the agent process is measured alone, shaped as on a hub. There, bleak talks to
the BLE host stack (BlueZ's bluetoothd) over D-Bus, so the stack is another process's
memory. Here the BLE host (bumble) and 3 virtual devices (CGM with 6 h of history and
live notifications, glucose meter and insulin pump polled every 10 s) run in a second
process on simulated time at 60x, served over a Unix socket (drivers.ble_rpc); the agent
process loads what a hub loads (bleak's BlueZ backend modules included, no bumble) and
publishes signed batches to a harness Mosquitto. VmRSS from /proc/self/status is sampled
every second for ``--seconds``; the figure is the last sample (steady state) and the
maximum. Scenarios, each in a fresh process (RSS only grows): ``imports`` (the hub's
imports, idle) and ``agent`` (EdgeAgent serving the 3 devices); the other process's RSS
is printed for information.

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


def sample_rss(seconds: float) -> list[float]:
    """VmRSS once a second for ``seconds`` (blocking; run it in a thread)."""
    samples = []
    for _ in range(int(seconds)):
        samples.append(rss_mb())
        time.sleep(1)
    return samples


async def world_process(socket_path: str) -> None:
    """The virtual peripherals and the BLE host (bumble), in their own process as
    bluetoothd is on a hub: serve the host on ``socket_path``, print the devices'
    addresses, run until stdin closes, then print this process's RSS."""
    from drivers.ble_rpc.server import serve
    from drivers.virtual import SimClock, VirtualWorld

    clock = SimClock(datetime(2026, 3, 1, 8, 0), speed=60)
    async with VirtualWorld(clock) as world:
        cgm = await world.add_cgm("CGM-M", history=timedelta(hours=6))
        meter = await world.add_meter("BG-M", history=timedelta(days=1))
        pump = await world.add_pump("PUMP-M", history=timedelta(days=1))
        server = await serve(world.client_backend, Path(socket_path))
        addresses = {"cgm": cgm.address, "meter": meter.address, "pump": pump.address}
        print(json.dumps(addresses), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
        server.close()
        produced = len(list(world.produced()))
    print(json.dumps({"mode": "world", "last": rss_mb(), "produced": produced}))


async def memory_scenario(mode: str, seconds: float, url: str, world: str) -> None:
    # What the agent loads on a hub: bleak with its BlueZ backend (dbus-fast), aiomqtt/
    # paho, aiosqlite, pydantic, cryptography, the drivers.
    import bleak.backends.bluezdbus.client
    import bleak.backends.bluezdbus.scanner  # noqa: F401
    from bleak import BleakClient

    from edge.agent import EdgeAgent
    from edge.settings import DeviceConfig, EdgeSettings, OutboxConfig
    from gateway.contract.urls import MqttUrl

    if mode == "imports":
        samples = await asyncio.to_thread(sample_rss, seconds)
        print(json.dumps({"mode": mode, "last": samples[-1], "max": max(samples)}))
        return
    # The BLE host is in the world process, reached over a Unix socket as bleak reaches
    # bluetoothd over D-Bus; nothing of bumble is loaded here.
    from drivers.ble_rpc import remote_backend

    info = json.loads(world)
    backend = remote_backend(info["socket"])

    def client_factory(address: str, *, pair: bool = False, **kwargs: object) -> BleakClient:
        return BleakClient(address, backend=backend, pair=pair, timeout=10.0)

    tmp = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    agent = EdgeAgent(
        EdgeSettings(
            hub_id="hub-bench",
            mqtt=MqttUrl.parse(url),
            devices=[
                DeviceConfig(kind="cgm", address=info["cgm"]),
                DeviceConfig(kind="glucose_meter", address=info["meter"], poll_interval_s=10),
                DeviceConfig(kind="insulin_pump", address=info["pump"], poll_interval_s=10),
            ],
            outbox=OutboxConfig(path=tmp / "outbox.db"),
            signing_key=tmp / "hub.key",
        ),
        client_factory=client_factory,
    )
    task = asyncio.create_task(agent.run())
    samples: list[float] = []
    for _ in range(int(seconds)):
        samples.append(rss_mb())
        await asyncio.sleep(1)
    extra = {
        "read": sum(t.state.records_read for t in agent.tasks),
        "published": agent.publisher.stats.readings,
        "syncs": sum(t.syncs for t in agent.tasks),
        "failures": sum(t.state.failures for t in agent.tasks),
        "bumble_loaded": any(m.startswith("bumble") for m in sys.modules),
    }
    for t in agent.tasks:
        t.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    print(json.dumps({"mode": mode, "last": samples[-1], "max": max(samples), **extra}))


def _scenario(mode: str, seconds: float, url: str, world: str = "{}") -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "_memory", mode, str(seconds), url, world],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def memory(seconds: float) -> None:
    from tests.harness import MosquittoServer

    results = {}
    with MosquittoServer() as broker, tempfile.TemporaryDirectory() as tmp:
        broker.start()
        # Each scenario in a fresh process: RSS only grows, so they cannot share one.
        results["imports"] = _scenario("imports", seconds, broker.url)
        socket_path = str(Path(tmp) / "ble-host.sock")
        world = subprocess.Popen(
            [sys.executable, __file__, "_world", socket_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert world.stdin is not None and world.stdout is not None
            info = {**json.loads(world.stdout.readline()), "socket": socket_path}
            results["agent"] = _scenario("agent", seconds, broker.url, json.dumps(info))
            out, _ = world.communicate("", timeout=60)
            results["world"] = json.loads(out.strip().splitlines()[-1])
        finally:
            if world.poll() is None:
                world.kill()
    print(f"{'process':<58}{'VmRSS MB (end)':>16}{'max':>8}")
    labels = {
        "imports": "agent process: interpreter + the hub's imports, idle",
        "agent": "agent process: EdgeAgent serving 3 devices, steady",
        "world": "other process: BLE host (bumble) + 3 virtual devices",
    }
    for mode, label in labels.items():
        r = results[mode]
        print(f"{label:<58}{r['last']:>16.1f}{r.get('max', r['last']):>8.1f}")
    a, i, w = results["agent"], results["imports"], results["world"]
    print(f"agent's running cost (agent - imports): {a['last'] - i['last']:.1f} MB")
    print(
        f"agent run: {a.get('read')} read, {a.get('published')} published, "
        f"{a.get('syncs')} syncs, {a.get('failures')} failures, "
        f"bumble loaded in the agent process: {a.get('bumble_loaded')}; "
        f"devices produced {w.get('produced')}"
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
        _, _, mode, seconds, url, world = sys.argv
        asyncio.run(memory_scenario(mode, float(seconds), url, world))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_world":
        asyncio.run(world_process(sys.argv[2]))
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
