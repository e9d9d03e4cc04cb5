"""Reading published readings back from the store: which are stored, and how long after
they were sent.

``keys``: every published key is pending until a store read returns it; its latency is
the start of the poll that first saw it minus its send time (``details.lg_sent``), so the
resolution is one poll cycle (reported). Only patients with pending readings are asked,
each from the time of its oldest pending reading, through the stores' own read API
(``glucose_series``: SQLite, InfluxDB 1.x).
``count``: the store's row count against the count before the run (cheap; assumes no
other writer; no latency).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway.loadgen.synth import SENT_FIELD, PendingReading

SLACK = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Percentiles:
    n: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        if not values:
            return cls(0, None, None, None, None)
        v = sorted(values)

        def rank(q: float) -> float:  # nearest rank
            return v[min(len(v) - 1, max(0, int(q * len(v) + 0.999999) - 1))]

        return cls(len(v), rank(0.50), rank(0.95), rank(0.99), v[-1])


@dataclass
class ReadBack:
    """Tracks pending keys per patient; ``poll`` once asks the store."""

    store: Any  # a ReadingStore with glucose_series (sqlite, influxdb)
    _pending: dict[str, dict[str, PendingReading]] = field(default_factory=dict)
    _oldest: dict[str, datetime] = field(default_factory=dict)
    latencies: dict[bool, list[float]] = field(default_factory=lambda: {False: [], True: []})
    found: int = 0
    polls: int = 0
    max_cycle_s: float = 0.0

    @property
    def pending(self) -> int:
        return sum(len(p) for p in self._pending.values())

    def expect(self, readings: list[PendingReading]) -> None:
        for r in readings:
            self._pending.setdefault(r.patient_id, {})[r.key] = r
            old = self._oldest.get(r.patient_id)
            if old is None or r.time < old:
                self._oldest[r.patient_id] = r.time

    def forget(self, readings: list[PendingReading]) -> None:
        """Readings the broker refused: not expected in the store."""
        for r in readings:
            self._pending.get(r.patient_id, {}).pop(r.key, None)

    async def poll(self) -> None:
        started_wall, started = time.time(), time.monotonic()
        for patient in [p for p, keys in self._pending.items() if keys]:
            keys = self._pending[patient]
            rows = await self.store.glucose_series(patient, self._oldest[patient] - SLACK)
            for row in rows:
                r = keys.pop(row.key, None)
                if r is None:
                    continue
                self.found += 1
                sent = row.details.get(SENT_FIELD)
                if isinstance(sent, int | float):
                    self.latencies[r.backfill].append(max(0.0, started_wall - float(sent)))
            if keys:
                self._oldest[patient] = min(r.time for r in keys.values())
            else:
                del self._pending[patient]
                self._oldest.pop(patient, None)
        self.polls += 1
        self.max_cycle_s = max(self.max_cycle_s, time.monotonic() - started)


async def poll_until(
    check: Any, done: Any, *, interval_s: float, deadline: float, on_poll: Any = None
) -> None:
    """Call ``await check()`` every ``interval_s`` until ``done()`` or the monotonic
    ``deadline``."""
    while True:
        t = time.monotonic()
        await check()
        if on_poll is not None:
            on_poll()
        if done() or t >= deadline:
            return
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - t)))
