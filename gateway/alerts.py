"""Alert engine in the ingest path: glucose thresholds, rapid change, stale data and
device annunciations.

Episodes live in the registry (start, acknowledge, clear) so they survive a restart and
are de-duplicated while active. Each change is published retained to
``diatabase/v1/alerts/{patient}`` (the open alerts of that patient) and optionally POSTed
to a webhook. Only a patient's newest reading, and only while it is recent, can start or
clear a glucose alert: a backfilled week of data does not ring last Tuesday's low now.
Stale data is checked on a timer, not only when readings arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter

import httpx

from gateway.derived import rate_mg_dl_per_min
from gateway.registry.models import AlertRow
from gateway.registry.service import Registry
from gateway.store.base import StoredReading

log = logging.getLogger(__name__)

ALERT_TOPIC = "diatabase/v1/alerts/{patient}"

_GLUCOSE_KINDS = frozenset({"cgm", "bg"})
_TIME = attrgetter("time")
# Annunciation names (drivers' snake_case) that raise a device alert, by alert kind.
DEVICE_ALERTS = {
    "sensor_fault": {"sensor_malfunction", "general_device_fault", "device_fault"},
    "battery_low": {"device_battery_low", "battery_low"},
    "pump_occlusion": {"occlusion_detected"},
    "reservoir_low": {"reservoir_low", "reservoir_empty"},
}


@dataclass(frozen=True, slots=True)
class AlertConfig:
    urgent_low_mg_dl: float = 54.0
    low_mg_dl: float = 70.0
    high_mg_dl: float = 250.0
    rapid_mg_dl_min: float = 3.0
    stale_after: timedelta = timedelta(minutes=20)
    check_every_s: float = 60.0
    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0
    webhook_attempts: int = 5  # then the notice is given up (logged); MQTT keeps the state
    webhook_retry_s: float = 1.0  # first retry delay, doubled each time, capped at 30 s
    webhook_queue: int = 1000  # notices waiting for a slow webhook; beyond: dropped, logged


Publish = Callable[[str, bytes, bool], bool]


class AlertEngine:
    def __init__(
        self,
        registry: Registry,
        publish: Publish | None = None,
        config: AlertConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = registry
        self.publish = publish
        self.config = config or AlertConfig()
        self.clock = clock
        self.recent: dict[str, deque[tuple[datetime, float]]] = defaultdict(lambda: deque(maxlen=6))
        self.last_seen: dict[str, datetime] = {}
        self._http: httpx.AsyncClient | None = None
        # The webhook is delivered from its own task: a slow or dead receiver must never
        # hold up the ingest path (and with it the acknowledgement of stored readings).
        self._hooks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=self.config.webhook_queue)
        self._hook_task: asyncio.Task[None] | None = None
        self.webhook = WebhookStats()
        # open device episodes: (patient, kind) -> (serial, started); loaded on first use
        self._device_open: dict[tuple[str, str], tuple[str, datetime]] | None = None
        # open (patient, kind) episodes while a batch is evaluated (None: ask the registry)
        self._open: set[tuple[str, str]] | None = None
        self._in_batch = False

    async def close(self) -> None:
        if self._hook_task is not None:
            # give queued notices one timeout's chance, then stop
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hooks.join(), self.config.webhook_timeout_s)
            self._hook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._hook_task
            self._hook_task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def seed(self, latest: Iterable[StoredReading]) -> None:
        """Start from what the store already holds (so stale data is known at start)."""
        for r in latest:
            if r.mg_dl is not None:
                self._remember(r)

    def _remember(self, r: StoredReading) -> None:
        assert r.mg_dl is not None
        q = self.recent[r.patient_id]
        if q and r.time <= q[-1][0]:
            return  # older than what we have: backfill, not news
        q.append((r.time, r.mg_dl))
        self.last_seen[r.patient_id] = r.time

    async def on_stored(self, readings: Iterable[StoredReading]) -> None:
        self._in_batch = True
        try:
            await self._on_stored(readings)
        finally:
            self._in_batch = False
            self._open = None

    async def _open_in_batch(self) -> set[tuple[str, str]] | None:
        """The open episodes, read in one query per batch when first needed, so clearing
        skips the (patient, kind) pairs with none: one transaction per pair made a batch
        of 100 patients' current readings cost 600 transactions, over a second of ingest
        latency. A backfill batch, with nothing to evaluate, reads nothing."""
        if self._in_batch and self._open is None:
            self._open = {(a.patient_id, a.kind) for a in await self.registry.open_alerts()}
        return self._open

    async def _on_stored(self, readings: Iterable[StoredReading]) -> None:
        newest: dict[str, StoredReading] = {}
        device_open = await self._device_episodes()
        for r in sorted(readings, key=_TIME):
            if r.mg_dl is not None and r.kind in _GLUCOSE_KINDS:
                self._remember(r)
                if self.last_seen.get(r.patient_id) == r.time:
                    newest[r.patient_id] = r
            # Most readings carry no annunciation, confirm none and their patient has no
            # open device episode: nothing to start or clear.
            if (
                r.status
                or r.details.get("annunciation_status") == "confirmed"
                or any((r.patient_id, k) in device_open for k in DEVICE_ALERTS)
            ):
                await self._device_alerts(r)
        now = self.clock()
        for patient, r in newest.items():
            if now - r.time > self.config.stale_after:
                continue
            await self._glucose_alerts(patient, r, now)

    async def _glucose_alerts(self, patient: str, r: StoredReading, now: datetime) -> None:
        assert r.mg_dl is not None
        low_t, high_t = self.registry.thresholds(patient)
        cfg = self.config
        mg = r.mg_dl
        states = {
            "urgent_low": ("urgent", mg < cfg.urgent_low_mg_dl),
            "low": ("warning", cfg.urgent_low_mg_dl <= mg < (low_t or cfg.low_mg_dl)),
            "high": ("warning", mg > (high_t or cfg.high_mg_dl)),
        }
        rate = rate_mg_dl_per_min(list(self.recent[patient]))
        states["rapid_fall"] = ("warning", rate is not None and rate < -cfg.rapid_mg_dl_min)
        states["rapid_rise"] = ("info", rate is not None and rate > cfg.rapid_mg_dl_min)
        states["stale"] = ("warning", False)
        for kind, (severity, active) in states.items():
            await self._set(patient, kind, severity, active, r.time, r.serial, mg)

    async def _device_episodes(self) -> dict[tuple[str, str], tuple[str, datetime]]:
        if self._device_open is None:  # first call: the episodes open before a restart
            self._device_open = {
                (a.patient_id, a.kind): (a.serial or "", _aware(a.started_at))
                for a in await self.registry.open_alerts()
                if a.kind in DEVICE_ALERTS
            }
        return self._device_open

    async def _device_alerts(self, r: StoredReading) -> None:
        device_open = await self._device_episodes()
        if r.details.get("annunciation_status") == "confirmed":
            # The patient confirmed the pump's annunciation: that condition is over.
            name = r.details.get("annunciation")
            for kind, triggers in DEVICE_ALERTS.items():
                if name in triggers:
                    await self._device_set(r, kind, False)
            return
        names = set(r.status)
        for kind, triggers in DEVICE_ALERTS.items():
            if names & triggers:
                await self._device_set(r, kind, True, ", ".join(sorted(names & triggers)))
            elif r.kind in _GLUCOSE_KINDS:
                # A glucose record carries the device's whole status: a newer one from the
                # same device without the annunciation means the condition is over.
                opened = device_open.get((r.patient_id, kind))
                if opened is not None and opened[0] == r.serial and r.time > opened[1]:
                    await self._device_set(r, kind, False)

    async def _device_set(
        self, r: StoredReading, kind: str, active: bool, detail: str = ""
    ) -> None:
        assert self._device_open is not None
        await self._set(
            r.patient_id, kind, "warning", active, r.time, r.serial, r.mg_dl, detail=detail
        )
        if active:
            self._device_open.setdefault((r.patient_id, kind), (r.serial, r.time))
        else:
            self._device_open.pop((r.patient_id, kind), None)

    async def check_stale(self) -> None:
        now = self.clock()
        for patient in self.registry.patients_with_devices():
            seen = self.last_seen.get(patient)
            stale = seen is None or now - seen > self.config.stale_after
            detail = "no reading yet" if seen is None else f"last reading {seen.isoformat()}"
            await self._set(patient, "stale", "warning", stale, now, None, None, detail=detail)

    async def run_timer(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_every_s)
            try:
                await self.registry.refresh()
                await self.check_stale()
            except Exception as err:  # keep checking; the next round may succeed
                log.warning("stale check failed: %s", err)

    async def _set(
        self,
        patient: str,
        kind: str,
        severity: str,
        active: bool,
        at: datetime,
        serial: str | None,
        mg: float | None,
        *,
        detail: str = "",
    ) -> None:
        if active:
            row = await self.registry.start_alert(
                patient, kind, severity, at, serial=serial, value_mg_dl=mg, detail=detail
            )
            if self._open is not None:
                self._open.add((patient, kind))
            if row is not None:
                log.warning("alert %s started for %s (%s)", kind, patient, mg)
                await self._announce(patient, row, "started")
        else:
            opened = await self._open_in_batch()
            if opened is not None:
                if (patient, kind) not in opened:
                    return
                opened.discard((patient, kind))
            row = await self.registry.clear_alert(patient, kind, at)
            if row is not None:
                log.info("alert %s cleared for %s", kind, patient)
                await self._announce(patient, row, "cleared")

    async def _announce(self, patient: str, row: AlertRow, change: str) -> None:
        payload = await alert_state(self.registry, patient, row, change)
        if self.publish is not None:
            self.publish(ALERT_TOPIC.format(patient=patient), payload, True)
        if self.config.webhook_url:
            await self._webhook(payload)

    async def _webhook(self, payload: bytes) -> None:
        if self._hook_task is None:
            self._hook_task = asyncio.create_task(self._deliver(), name="alert webhook")
        try:
            self._hooks.put_nowait(payload)
        except asyncio.QueueFull:
            self.webhook.dropped += 1
            log.error("alert webhook: %d notices waiting; this one is dropped", self._hooks.qsize())

    async def _deliver(self) -> None:
        cfg = self.config
        self._http = self._http or httpx.AsyncClient(timeout=cfg.webhook_timeout_s)
        while True:
            payload = await self._hooks.get()
            try:
                for attempt in range(1, cfg.webhook_attempts + 1):
                    try:
                        resp = await self._http.post(
                            cfg.webhook_url or "",
                            content=payload,
                            headers={"content-type": "application/json"},
                        )
                        resp.raise_for_status()
                        self.webhook.sent += 1
                        break
                    except httpx.HTTPError as err:
                        self.webhook.retries += 1
                        if attempt == cfg.webhook_attempts:
                            self.webhook.failed += 1
                            log.warning("alert webhook failed %d times, given up: %s", attempt, err)
                        else:
                            log.info("alert webhook failed (%s); retrying", err)
                            await asyncio.sleep(min(cfg.webhook_retry_s * 2 ** (attempt - 1), 30))
            finally:
                self._hooks.task_done()


@dataclass
class WebhookStats:
    sent: int = 0
    retries: int = 0
    failed: int = 0  # given up after every attempt
    dropped: int = 0  # the queue was full


async def alert_state(registry: Registry, patient: str, row: AlertRow, change: str) -> bytes:
    """The retained message of ``ALERT_TOPIC``: what changed and every open alert now.
    ``change``: started, cleared or acknowledged."""
    open_alerts = await registry.open_alerts(patient)
    body = {
        "patient": patient,
        "changed": {"id": row.id, "kind": row.kind, "change": change},
        "open": [alert_json(a) for a in open_alerts],
    }
    return json.dumps(body).encode()


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # SQLite drops the zone


def alert_json(a: AlertRow) -> dict[str, object]:
    return {
        "id": a.id,
        "kind": a.kind,
        "severity": a.severity,
        "started_at": a.started_at.isoformat(),
        "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
        "cleared_at": a.cleared_at.isoformat() if a.cleared_at else None,
        "serial": a.serial,
        "value_mg_dl": a.value_mg_dl,
        "detail": a.detail,
    }
