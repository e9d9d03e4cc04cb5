"""One load-generator run: register (optionally), publish at the set rate, read back,
report.

Pacing: how many readings are due is computed from the clock since the start
(``rate * elapsed``), not by adding up sleeps, so the rate does not drift; when the
window is full (the broker is slow to acknowledge) generation waits and then catches up
to what is due. Of the due readings a fraction ``backfill_fraction`` is backfill, sent in
full batches of ``backfill_batch`` older readings; the rest are live, ``live_batch``
readings per message timed now. Hubs take turns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import cycle
from pathlib import Path
from typing import Any, Literal

from gateway.contract.signing import Signer
from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.contract.v1 import MAX_READINGS_PER_BATCH, ReadingsBatch
from gateway.loadgen.publish import MAX_WINDOW, NO_MATCHING_SUBSCRIBERS, HubPublisher
from gateway.loadgen.readback import Percentiles, ReadBack, poll_until
from gateway.loadgen.register import register
from gateway.loadgen.synth import BatchFactory, PendingReading, SimHub, envelope, make_hubs

log = logging.getLogger(__name__)

Verify = Literal["keys", "count", "none"]
READABLE = frozenset({"sqlite", "influxdb"})


class LoadgenError(Exception):
    """Bad settings or a run that cannot start."""


@dataclass(frozen=True)
class LoadgenConfig:
    mqtt: MqttUrl
    hubs: int
    rate: float  # readings/s, all hubs together
    duration_s: float
    devices_per_hub: int = 1
    backfill_fraction: float = 0.0
    live_batch: int = 1
    backfill_batch: int = 500
    backlog: timedelta = timedelta(hours=12)
    window: int = 1000
    connections: int = 4
    store: StoreUrl | None = None
    verify: Verify = "keys"
    timeout_s: float = 60.0  # read-back: after publishing ends
    poll_s: float = 0.25
    registry: StoreUrl | None = None
    sign_key: Path | None = None
    prefix: str = "lg"
    tick_s: float = 0.01

    def check(self) -> None:
        if self.hubs < 1 or self.devices_per_hub < 1:
            raise LoadgenError("--hubs and --devices-per-hub must be >= 1")
        if self.rate <= 0 or self.duration_s <= 0:
            raise LoadgenError("--rate and --duration must be > 0")
        if not 1 <= self.window <= MAX_WINDOW:
            raise LoadgenError(f"--window must be 1..{MAX_WINDOW} (MQTT packet ids are 16-bit)")
        if not 0.0 <= self.backfill_fraction <= 1.0:
            raise LoadgenError("--backfill-fraction must be within 0..1")
        for name, n in (
            ("--live-batch", self.live_batch),
            ("--backfill-batch", self.backfill_batch),
        ):
            if not 1 <= n <= MAX_READINGS_PER_BATCH:
                raise LoadgenError(f"{name} must be 1..{MAX_READINGS_PER_BATCH} (contract v1)")
        if self.verify != "none":
            if self.store is None:
                raise LoadgenError(f"--verify {self.verify} needs --store")
            if self.store.scheme not in READABLE:
                raise LoadgenError(
                    f"read-back works on sqlite:/// and influxdb:// stores, got {self.store.raw!r}"
                )


@dataclass
class LoadReport:
    hubs: int
    devices: int
    target_rate: float
    publish_s: float = 0.0
    messages: int = 0
    readings: int = 0
    live_readings: int = 0
    backfill_readings: int = 0
    acked_readings: int = 0
    refused_messages: int = 0
    refused_readings: int = 0
    unacked_messages: int = 0
    verify: str = "keys"
    stored: int | None = None
    missing: int | None = None
    wait_s: float = 0.0
    latency_s: dict[str, Percentiles] = field(default_factory=dict)
    poll_resolution_s: float | None = None
    registered_devices: int = 0

    @property
    def achieved_rate(self) -> float:
        return self.acked_readings / self.publish_s if self.publish_s else 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["achieved_rate"] = round(self.achieved_rate, 1)
        return d


Progress = Callable[[LoadReport, int], None]  # report so far, readings in total


async def run_loadgen(cfg: LoadgenConfig, progress: Progress | None = None) -> LoadReport:
    cfg.check()
    hubs = make_hubs(cfg.prefix, cfg.hubs, cfg.devices_per_hub)
    signer = Signer.load_or_create(cfg.sign_key) if cfg.sign_key else None
    report = LoadReport(cfg.hubs, cfg.hubs * cfg.devices_per_hub, cfg.rate, verify=cfg.verify)
    if cfg.registry is not None:
        report.registered_devices = await register(
            cfg.registry, hubs, public_key=signer.public_key_b64 if signer else None
        )
    store: Any = None
    if cfg.verify != "none":
        from gateway.store import open_store

        assert cfg.store is not None
        store = open_store(cfg.store)
        await store.open()
    try:
        return await _run(cfg, hubs, signer, store, report, progress)
    finally:
        if store is not None:
            await store.close()


async def _run(
    cfg: LoadgenConfig,
    hubs: list[SimHub],
    signer: Signer | None,
    store: Any,
    report: LoadReport,
    progress: Progress | None,
) -> LoadReport:
    total = round(cfg.rate * cfg.duration_s)
    factory = BatchFactory(datetime.now(UTC), backlog=cfg.backlog)
    readback = ReadBack(store) if cfg.verify == "keys" else None
    baseline = await store.count() if cfg.verify == "count" else 0
    _self_check(hubs[0], factory)

    def acked(readings: list[PendingReading]) -> Callable[[int | None], None]:
        def on_ack(code: int | None) -> None:
            if code is None:
                report.unacked_messages += 1
            elif code >= 0x80 or code == NO_MATCHING_SUBSCRIBERS:
                report.refused_messages += 1
                report.refused_readings += len(readings)
            else:
                report.acked_readings += len(readings)
                return
            if readback is not None:
                readback.forget(readings)

        return on_ack

    async with HubPublisher(
        cfg.mqtt,
        client_prefix=f"{cfg.prefix}-loadgen",
        connections=min(cfg.connections, cfg.hubs),
        window=cfg.window,
    ) as pub:

        async def send(
            lane: int, hub: SimHub, docs: list[dict[str, object]], pend: list[PendingReading]
        ) -> None:
            payload = envelope(hub, docs, datetime.now(UTC))
            if signer is not None:
                payload = signer.sign(payload)
            if readback is not None:
                readback.expect(pend)
            report.messages += 1
            report.readings += len(docs)
            await pub.publish(lane, hub.topic, payload, acked(pend))

        live_hubs = cycle(enumerate(hubs))
        backfill_hubs = cycle(enumerate(hubs))
        dev_turn: dict[str, int] = {}

        def next_device(hub: SimHub) -> Any:
            i = dev_turn.get(hub.hub_id, 0)
            dev_turn[hub.hub_id] = i + 1
            return hub.devices[i % len(hub.devices)]

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        next_report = t0
        k = 0
        while report.readings < total:
            now = loop.time()
            due = min(total, int(cfg.rate * (now - t0)))
            due_backfill = int(due * cfg.backfill_fraction)
            due_live = due - due_backfill
            final = due == total
            while report.live_readings < due_live:
                n = min(cfg.live_batch, due_live - report.live_readings)
                if n < cfg.live_batch and not final:
                    break
                lane, hub = next(live_hubs)
                wall = datetime.now(UTC)
                pairs = [factory.live(next_device(hub), wall) for _ in range(n)]
                report.live_readings += n
                await send(lane, hub, [d for d, _ in pairs], [p for _, p in pairs])
            while report.backfill_readings < due_backfill:
                n = min(cfg.backfill_batch, due_backfill - report.backfill_readings)
                if n < cfg.backfill_batch and not final:
                    break
                lane, hub = next(backfill_hubs)
                dev = next_device(hub)
                pairs = [factory.backfill(dev) for _ in range(n)]
                report.backfill_readings += n
                await send(lane, hub, [d for d, _ in pairs], [p for _, p in pairs])
            if progress is not None and now >= next_report:
                report.publish_s = now - t0
                progress(report, total)
                next_report = now + 0.5
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * cfg.tick_s - loop.time()))
        report.unacked_messages += await pub.drain(cfg.timeout_s)
        report.publish_s = loop.time() - t0
    if progress is not None:
        progress(report, total)

    wait_start = time.monotonic()
    deadline = wait_start + cfg.timeout_s
    if readback is not None:
        await poll_until(
            readback.poll,
            lambda: readback.pending == 0,
            interval_s=cfg.poll_s,
            deadline=deadline,
            on_poll=_stored_progress(report, total, progress, lambda: readback.found),
        )
        report.stored = readback.found
        report.missing = readback.pending
        report.latency_s = {
            "all": Percentiles.of(readback.latencies[False] + readback.latencies[True]),
            "live": Percentiles.of(readback.latencies[False]),
            "backfill": Percentiles.of(readback.latencies[True]),
        }
        report.poll_resolution_s = round(max(cfg.poll_s, readback.max_cycle_s), 3)
    elif cfg.verify == "count":
        seen = 0

        async def count() -> None:
            nonlocal seen
            seen = await store.count() - baseline

        await poll_until(
            count,
            lambda: seen >= report.acked_readings,
            interval_s=cfg.poll_s,
            deadline=deadline,
            on_poll=_stored_progress(report, total, progress, lambda: seen),
        )
        report.stored = seen
        report.missing = max(0, report.acked_readings - seen)
    report.wait_s = round(time.monotonic() - wait_start, 3)
    return report


def _stored_progress(
    report: LoadReport, total: int, progress: Progress | None, found: Callable[[], int]
) -> Callable[[], None]:
    def on_poll() -> None:
        report.stored = found()
        if progress is not None:
            progress(report, total)

    return on_poll


def _self_check(hub: SimHub, factory: BatchFactory) -> None:
    """The generator's batches must be valid v1 (on a throwaway factory: keys unused)."""
    probe = BatchFactory(factory.run_start - timedelta(days=3650), backlog=factory.backlog)
    dev = hub.devices[0]
    docs = [probe.live(dev, datetime.now(UTC))[0], probe.backfill(dev)[0]]
    ReadingsBatch.model_validate_json(envelope(hub, docs, datetime.now(UTC)))
