"""Ingester loop: deliveries accumulate into a batch; the batch is processed, written
durably (readings to the store, rejects to quarantine, unlinked to parked), and only then
are its messages acknowledged. A failing store stops acknowledgement; the broker holds the
rest (bounded by the receive window) until the store is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.alerts import AlertConfig, AlertEngine
from gateway.contract.v1 import hub_id_from_topic, topic_readings
from gateway.ingest.metrics import IngestMetrics
from gateway.ingest.mqtt_session import Delivery, MqttReceiver, ReceiverConfig
from gateway.ingest.pipeline import Outcome, PipelineConfig, Reason, process
from gateway.ingest.ratelimit import HubRateLimiter
from gateway.ingest.relink import relink_parked, replay_quarantined
from gateway.registry.service import QuarantineEntry, Registry
from gateway.store.base import ReadingStore, StoredReading

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    max_batch_messages: int = 5000
    # Also bound a batch by payload bytes: 5,000 messages of 1,000 readings each would
    # block the loop for a minute (past the MQTT keepalive) and hold gigabytes.
    max_batch_bytes: int = 4 * 1024 * 1024
    linger_s: float = 0.05
    relink_interval_s: float = 2.0
    hub_readings_per_s: float = 0.0  # 0: no limit
    hub_burst_readings: float = 50_000.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


@dataclass
class IngestStats:
    messages: int = 0
    readings_in: int = 0
    stored: int = 0
    duplicates: int = 0
    parked: int = 0
    relinked: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    store_errors: int = 0
    acked: int = 0
    ack_skipped: int = 0
    batches: int = 0
    last_write_s: float = 0.0

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


class Ingester:
    def __init__(
        self,
        receiver: ReceiverConfig,
        store: ReadingStore,
        registry: Registry,
        config: IngestConfig | None = None,
        metrics: IngestMetrics | None = None,
        alerts: AlertConfig | None = None,
    ) -> None:
        self.config = config or IngestConfig()
        self.store = store
        self.registry = registry
        self.stats = IngestStats()
        self.metrics = metrics or IngestMetrics()
        self.receiver = MqttReceiver(receiver, self._on_delivery, self._on_connection)
        self.metrics.unacked = lambda: max(0, self.receiver.unacked)
        self.alerts = AlertEngine(
            registry, lambda t, p, r: self.receiver.publish(t, p, qos=1, retain=r), alerts
        )
        self.limiter = HubRateLimiter(
            self.config.hub_readings_per_s, self.config.hub_burst_readings
        )
        self._pending: list[Delivery] = []
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._committing: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.listeners: list[asyncio.Queue[list[StoredReading]]] = []

    @staticmethod
    def default_topics(shared_group: str | None = None) -> list[str]:
        topic = topic_readings("+")
        return [f"$share/{shared_group}/{topic}" if shared_group else topic]

    def _on_connection(self, up: bool) -> None:
        self.metrics.connected.set(1 if up else 0)

    def _on_delivery(self, delivery: Delivery) -> None:
        if not self.metrics.messages_received:
            self.metrics.first_message.set(time.time())
        self.metrics.messages_received += 1
        self._pending.append(delivery)
        self._pending_bytes += len(delivery.payload)
        if (
            len(self._pending) >= self.config.max_batch_messages
            or len(self._pending) == 1
            or self._pending_bytes >= self.config.max_batch_bytes
        ):
            self._wake.set()

    async def run(self) -> None:
        """Run until :meth:`stop`; then drain what was received, acknowledge and return."""
        latest = getattr(self.store, "latest_per_patient", None)
        if latest is not None:
            self.alerts.seed(await latest())
        receiver = asyncio.create_task(self.receiver.run(), name="mqtt receiver")
        relinker = asyncio.create_task(self._relink_loop(), name="relink")
        stale = asyncio.create_task(self.alerts.run_timer(), name="stale check")
        try:
            while not self._stopping.is_set():
                await self._wait_for_batch()
                await self._flush()
            await self._flush()
            await self._drain()
        finally:
            if self._committing is not None:
                self._committing.cancel()
            relinker.cancel()
            stale.cancel()
            await self.receiver.close()
            receiver.cancel()
            await asyncio.gather(receiver, relinker, stale, return_exceptions=True)
            await self.alerts.close()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _wait_for_batch(self) -> None:
        while not self._pending and not self._stopping.is_set():
            self._wake.clear()
            await self._wake.wait()
        # Linger briefly so a burst becomes one write, unless the batch is already full or
        # the broker cannot send more until we acknowledge (receive window exhausted).
        deadline = time.monotonic() + self.config.linger_s
        while (
            len(self._pending) < self.config.max_batch_messages
            and self._pending_bytes < self.config.max_batch_bytes
            and self.receiver.unacked < self.receiver.config.receive_maximum
            and not self._stopping.is_set()
        ):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                break

    async def _flush(self) -> None:
        """Process the pending batch and start its durable write; the previous batch's
        write runs while this one is processed (one write in flight, acknowledgements in
        order, each only after its own batch is durable)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._pending_bytes = 0
        await self.registry.refresh()
        outcome = await self._process(batch)
        await self._drain()
        self._committing = asyncio.create_task(self._commit(batch, outcome), name="commit")

    async def _drain(self) -> None:
        """Wait for the batch being written (and acknowledged), if any."""
        task, self._committing = self._committing, None
        if task is not None:
            await task

    async def _process(self, batch: list[Delivery]) -> Outcome:
        outcome = Outcome()
        link, hub_of, hub_key = self.registry.link, self.registry.hub_of, self.registry.hub_key
        pipeline = self.config.pipeline
        limited = self.limiter.readings_per_s > 0
        next_yield = _YIELD_EVERY_READINGS
        for d in batch:
            o = process(
                d.topic, d.payload, link=link, hub_of=hub_of, hub_key=hub_key, config=pipeline
            )
            if limited and o.readings_in and not self.limiter.allow(_hub(d.topic), o.readings_in):
                o = Outcome(
                    quarantined=[
                        QuarantineEntry(
                            Reason.RATE_LIMITED.value,
                            f"hub over {self.limiter.readings_per_s:g} readings/s",
                            d.topic,
                            d.payload,
                            hub_id=_hub(d.topic),
                        )
                    ]
                )
            outcome.stored += o.stored
            if o.parked:
                outcome.parked += o.parked
            if o.quarantined:
                outcome.quarantined += o.quarantined
            outcome.readings_in += o.readings_in
            # Let the previous batch's write progress (its next POST, its response) while
            # this one is parsed: without it the overlap shrank to one POST per batch.
            if outcome.readings_in >= next_yield:
                next_yield = outcome.readings_in + _YIELD_EVERY_READINGS
                await asyncio.sleep(0)
        return outcome

    async def _commit(self, batch: list[Delivery], outcome: Outcome) -> None:
        await self._write_durably(outcome)
        acked = self.receiver.ack_many(batch)
        self.stats.acked += acked
        self.stats.ack_skipped += len(batch) - acked
        self.stats.messages += len(batch)
        self.stats.readings_in += outcome.readings_in
        self.stats.batches += 1
        m = self.metrics
        m.batch_messages.observe(len(batch))
        m.readings.inc(outcome.readings_in)

    async def _write_durably(self, outcome: Outcome) -> None:
        delay = self.config.backoff_initial_s
        failing = False
        while True:
            try:
                started = time.perf_counter()
                result = await self.store.write(outcome.stored)
                # Readings the sink refused are quarantined; computed per attempt so a retry
                # after a failed quarantine write does not add them twice.
                refused = [_rejected(r, why) for r, why in result.rejected]
                await self.registry.quarantine([*outcome.quarantined, *refused])
                await self.registry.park(outcome.parked)
                self.stats.last_write_s = time.perf_counter() - started
                break
            except Exception as err:  # any sink failure: keep the batch, do not ack
                self.stats.store_errors += 1
                self.metrics.store_errors.inc()
                if not failing:
                    log.error("write failed, holding acknowledgements: %s", err)
                    failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max_s)
        if failing:
            log.info("write recovered")
        if refused:
            gone = {e.reading_key for e in refused}
            outcome.stored = [r for r in outcome.stored if r.key not in gone]
            outcome.quarantined += refused
        self.stats.stored += result.written
        self.stats.duplicates += result.duplicates
        self.stats.parked += len(outcome.parked)
        m = self.metrics
        m.write_seconds.observe(self.stats.last_write_s)
        m.stored.inc(result.written)
        m.duplicates.inc(result.duplicates)
        m.parked.inc(len(outcome.parked))
        now = time.time()
        m.last_write.set(now)
        m.lag.observe_many([max(0.0, now - r.time.timestamp()) for r in outcome.stored])
        await self._alerts(outcome.stored)
        for q in outcome.quarantined:
            self.stats.quarantined[q.reason] += 1
            m.quarantined.labels(q.reason).inc()
            log.warning("quarantined (%s): %s", q.reason, q.detail)
            # Operators see rejects live; the durable copy is the registry row.
            self.receiver.publish(QUARANTINE_TOPIC, _notice(q), qos=1)
        if outcome.stored:
            for queue in self.listeners:
                queue.put_nowait(outcome.stored)

    async def _alerts(self, stored: list[StoredReading]) -> None:
        if not stored:
            return
        try:
            await self.alerts.on_stored(stored)
        except Exception:  # alerting must never stop ingestion; the error is logged
            log.exception("alert evaluation failed")

    async def _relink_loop(self) -> None:
        done_at = -1
        while True:
            await asyncio.sleep(self.config.relink_interval_s)
            try:
                await self.registry.refresh()
                if self.registry.version != done_at:
                    done_at = self.registry.version
                    await self.relink()
            except Exception as err:
                log.warning("relink failed: %s", err)

    async def relink(self) -> int:
        """Write parked readings whose device now has an assignment; returns how many."""
        linked, _left = await relink_parked(self.registry, self.store)
        # Readings of devices registered since they arrived go through the pipeline again.
        for row in await self.registry.quarantine_pending(Reason.UNKNOWN_DEVICE.value):
            if self.registry.hub_of(row.device_serial or "") is not False:
                await replay_quarantined(self.registry, self.store, row.id)
        self.stats.relinked += linked
        self.metrics.relinked.inc(linked)
        self.stats.stored += linked
        return linked


QUARANTINE_TOPIC = "diatabase/v1/quarantine"
# readings parsed between two yields to the loop (a few ms of work)
_YIELD_EVERY_READINGS = 500


def _hub(topic: str) -> str:
    return hub_id_from_topic(topic) or ""


def _notice(q: QuarantineEntry) -> bytes:
    return json.dumps(
        {
            "reason": q.reason,
            "detail": q.detail,
            "topic": q.topic,
            "hub_id": q.hub_id,
            "reading_key": q.reading_key,
            "payload_size": len(q.payload),
            "received_at": datetime.now(UTC).isoformat(),
        }
    ).encode()


def _rejected(r: StoredReading, why: str) -> QuarantineEntry:
    payload = json.dumps({"key": r.key, "serial": r.serial, "value": r.value, "unit": r.unit})
    return QuarantineEntry(
        Reason.STORE_REJECTED.value,
        why,
        topic_readings(r.hub_id),
        payload.encode(),
        hub_id=r.hub_id,
        reading_key=r.key,
    )
