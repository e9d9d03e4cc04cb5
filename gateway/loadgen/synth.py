"""Synthetic hubs and their CGM batches (contract v1), for the load generator.

Pure: no I/O. Every reading's key comes from ``reading_key`` over its device fields, so
the ingester treats them like a real hub's. Each run gets its own CGM sessions (their
start is the run's start, to the microsecond), so two runs against one store never share
a key and a run's read-back cannot mistake an older run's rows for its own.

Live readings are timed *now* (a hub publishing as the CGM measures); backfill readings
are older, as after an outage. Every reading carries the wall time it was handed to
MQTT in ``details["lg_sent"]`` (epoch seconds): the read-back measures latency from it.
"""

from __future__ import annotations

import json
import math
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gateway.contract.v1 import SCHEMA_ID, reading_key, topic_readings

SENT_FIELD = "lg_sent"
MODEL = "LoadgenCGM"
# Registered from long before any backfill reading so every reading links.
ASSIGNED_FROM = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SimDevice:
    serial: str
    patient_id: str


@dataclass(frozen=True, slots=True)
class SimHub:
    hub_id: str
    devices: tuple[SimDevice, ...]

    @property
    def topic(self) -> str:
        return topic_readings(self.hub_id)


def make_hubs(prefix: str, hubs: int, devices_per_hub: int) -> list[SimHub]:
    """``{prefix}-hub-00001`` with CGMs ``{PREFIX}00001-1``, each worn by its own patient."""
    out = []
    for h in range(1, hubs + 1):
        devs = tuple(
            SimDevice(f"{prefix.upper()}{h:05d}-{d}", f"{prefix}-P{h:05d}-{d}")
            for d in range(1, devices_per_hub + 1)
        )
        out.append(SimHub(f"{prefix}-hub-{h:05d}", devs))
    return out


@dataclass(frozen=True, slots=True)
class PendingReading:
    """What the read-back needs to know of one published reading."""

    key: str
    patient_id: str
    time: datetime
    backfill: bool


@dataclass
class _Cursor:
    live: int = 0  # next live time offset (minutes) in the live session
    backfill: int = 0  # readings backfilled so far


@dataclass
class BatchFactory:
    """Builds v1 batch payloads for simulated hubs; keeps per-device offsets."""

    run_start: datetime  # UTC, aware: the live sessions start here (device clock = UTC)
    backlog: timedelta = timedelta(hours=12)
    interval: timedelta = timedelta(minutes=5)  # backfill spacing, as a CGM records
    _cursors: dict[str, _Cursor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.run_start.tzinfo is None:
            raise ValueError("run_start must be aware (UTC)")
        if self.interval < timedelta(minutes=1) or self.backlog < self.interval:
            raise ValueError("need 1 min <= interval <= backlog")
        self._start = self.run_start.astimezone(UTC).replace(tzinfo=None)
        self._span = int(self.backlog / self.interval)  # readings per backfill session

    def _cursor(self, serial: str) -> _Cursor:
        c = self._cursors.get(serial)
        if c is None:
            c = self._cursors[serial] = _Cursor()
        return c

    def live(self, dev: SimDevice, now: datetime) -> tuple[dict[str, object], PendingReading]:
        """The device's next live reading, timed ``now``."""
        c = self._cursor(dev.serial)
        offset, c.live = c.live, c.live + 1
        # Offsets advance one per reading (a key per reading even at many readings per
        # device and second); the hub's clock-offset estimate maps it to now.
        device_time = self._start + timedelta(minutes=offset)
        return self._reading(dev, self._start, offset, device_time, now, backfill=False)

    def backfill(self, dev: SimDevice) -> tuple[dict[str, object], PendingReading]:
        """The device's next backlog reading: spaced ``interval``, within ``backlog`` of
        the run start, oldest session first (a new session each ``backlog``)."""
        c = self._cursor(dev.serial)
        n, c.backfill = c.backfill, c.backfill + 1
        session, offset = divmod(n, self._span)
        start = self._start - self.backlog * (session + 1)
        device_time = start + self.interval * offset
        minutes = int(self.interval / timedelta(minutes=1) * offset)  # CGMS offsets: minutes
        time = device_time.replace(tzinfo=UTC)
        return self._reading(dev, start, minutes, device_time, time, backfill=True)

    def _reading(
        self,
        dev: SimDevice,
        session_start: datetime,
        offset: int,
        device_time: datetime,
        time: datetime,
        *,
        backfill: bool,
    ) -> tuple[dict[str, object], PendingReading]:
        key = reading_key(
            dev.serial,
            "cgm",
            sequence=None,
            session_start=session_start,
            time_offset_min=offset,
            device_time=device_time,
        )
        # A smooth synthetic trace, 70-250 mg/dL, different per device.
        phase = (zlib.crc32(dev.serial.encode()) % 628) / 100
        mg_dl = round(160 + 90 * math.sin(offset / 36 + phase))
        clock_offset = (time.replace(tzinfo=None) - device_time).total_seconds()
        doc: dict[str, object] = {
            "key": key,
            "device": {"serial": dev.serial, "kind": "cgm", "model": MODEL},
            "kind": "cgm",
            "session_start": session_start.isoformat(),
            "time_offset_min": offset,
            "device_time": device_time.isoformat(),
            "clock_offset_s": clock_offset,
            "time": time.isoformat(),
            "value": float(mg_dl),
            "unit": "mg/dL",
            "details": {},
        }
        return doc, PendingReading(key, dev.patient_id, time, backfill)


def envelope(hub: SimHub, readings: list[dict[str, object]], sent: datetime) -> bytes:
    """The batch bytes, stamped with the send time (``sent_at`` and every reading's
    ``details.lg_sent``), unsigned."""
    stamp = sent.timestamp()
    for r in readings:
        r["details"] = {SENT_FIELD: stamp}
    return json.dumps(
        {
            "schema": SCHEMA_ID,
            "hub_id": hub.hub_id,
            "sent_at": sent.isoformat(),
            "batch_id": str(uuid.uuid4()),
            "readings": readings,
        },
        separators=(",", ":"),
    ).encode()
