"""Simulated time for virtual devices: a wall clock that can run N times faster."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    """``now()`` is the simulated UTC time (naive); it runs ``speed`` times faster than
    real time from ``start`` (default: the real UTC now). Waiting on it never spins: a
    sleeper waits on an event with a real-time timeout, woken early by pause/resume."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if start is None:
            start = datetime.now(UTC)
        elif start.tzinfo is not None:
            start = start.astimezone(UTC)
        self.start = start.replace(tzinfo=None)
        self.speed = speed
        self._t0 = time.monotonic()
        self._paused_at: float | None = None
        self._changed = asyncio.Event()

    def _elapsed(self) -> float:
        ref = self._paused_at if self._paused_at is not None else time.monotonic()
        return (ref - self._t0) * self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self._elapsed())

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        """Freeze simulated time: no device produces anything new."""
        if self._paused_at is None:
            self._paused_at = time.monotonic()
            self._changed.set()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._t0 += time.monotonic() - self._paused_at
            self._paused_at = None
            self._changed.set()

    def advance(self, delta: timedelta) -> None:
        """Jump simulated time forward (paused or not): sleepers due by then wake up."""
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        self._t0 -= delta.total_seconds() / self.speed
        self._changed.set()

    async def sleep_until(self, when: datetime) -> None:
        """Return once simulated time reaches ``when`` (a paused clock does not advance)."""
        while True:
            if when <= self.now():
                return
            if self._paused_at is None:
                left = (when - self.now()).total_seconds()
                if left <= 0:
                    return
                timeout: float | None = left / self.speed
            else:
                timeout = None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
