"""Per-hub rate limit: a token bucket of readings per second with a burst allowance.

A hub over its limit is not dropped: the excess message is quarantined (``rate_limited``)
with its payload, so an operator can replay it once the cause (a runaway hub, a replayed
backlog) is understood. The defaults are far above what a patient's devices produce
(a CGM every minute, a meter a few times a day) and still allow a week's backfill burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class HubRateLimiter:
    readings_per_s: float = 200.0
    burst: float = 50_000.0
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, hub_id: str, readings: int) -> bool:
        """Take ``readings`` tokens from the hub's bucket; False when it has too few."""
        if self.readings_per_s <= 0:
            return True
        now = self.clock()
        tokens, last = self._buckets.get(hub_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.readings_per_s)
        if readings > tokens:
            self._buckets[hub_id] = (tokens, now)
            return False
        self._buckets[hub_id] = (tokens - readings, now)
        return True
