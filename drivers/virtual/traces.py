"""Synthetic glucose and insulin patterns: a daily rhythm with meals, a dawn rise, day to
day variation, occasional lows, and sensor noise.

Every value is a pure function of (seed, time), so a test can regenerate exactly what a
device produced. Glucose is mg/dL within 40-400 (a CGM's reporting range).
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime

# (hour of day, typical rise in mg/dL, carbohydrate g): responses peak about an hour after.
MEALS = ((7.5, 70.0, 45), (12.5, 60.0, 60), (19.0, 80.0, 70))
# Basal profile of the virtual pump: (hour the block starts, IU/h).
BASAL_PROFILE = ((0.0, 0.80), (4.0, 1.10), (9.0, 0.90), (17.0, 1.00), (22.0, 0.85))


def _meal_response(hours_since: float, peak: float) -> float:
    if hours_since <= 0 or hours_since > 6:
        return 0.0
    # A gamma-like bump: rises over ~1 h, decays over ~3 h.
    return peak * hours_since * math.exp(1 - hours_since)


class GlucoseTrace:
    def __init__(self, seed: int, baseline: float = 115.0) -> None:
        self.seed = seed
        self.baseline = baseline
        rnd = random.Random(seed)
        self.phase = rnd.uniform(-0.5, 0.5)  # hours: people do not eat on the minute
        self.scale = rnd.uniform(0.8, 1.3)
        self._days: dict[date, tuple[tuple[float, ...], float, float]] = {}

    def _day(self, day: date) -> tuple[tuple[float, ...], float, float]:
        """Per-day meal sizes, a slow offset, and the hour of a low (or -1 for none)."""
        found = self._days.get(day)
        if found is None:
            rnd = random.Random(f"{self.seed}|{day.isoformat()}")
            sizes = tuple(rnd.uniform(0.5, 1.6) for _ in MEALS)
            low_at = rnd.uniform(1.0, 23.0) if rnd.random() < 0.2 else -1.0
            found = (sizes, rnd.gauss(0.0, 12.0), low_at)
            self._days[day] = found
        return found

    def value(self, at: datetime) -> float:
        hour = at.hour + at.minute / 60 + at.second / 3600
        sizes, offset, low_at = self._day(at.date())
        level = self.baseline + offset
        level += 15.0 * math.exp(-(((hour - 5.5) / 1.5) ** 2))  # dawn phenomenon
        for (meal_hour, peak, _carbs), size in zip(MEALS, sizes, strict=True):
            for day_shift in (0.0, 24.0):
                level += (
                    self.scale
                    * size
                    * _meal_response(hour + day_shift - meal_hour - self.phase, peak)
                )
        if low_at >= 0:  # a correction overshoot: down to the 50s for an hour or so
            level -= 70.0 * math.exp(-(((hour - low_at) / 0.6) ** 2))
        # Sensor noise: smooth (two sines with seeded phases) plus a little white noise.
        minutes = at.timestamp() / 60
        level += 4.0 * math.sin(minutes / 37.0 + self.seed) + 3.0 * math.sin(minutes / 11.0)
        level += random.Random(f"{self.seed}|{int(at.timestamp())}").gauss(0.0, 2.5)
        return max(40.0, min(400.0, level))


def basal_rate(hour: float) -> float:
    rate = BASAL_PROFILE[0][1]
    for start, block_rate in BASAL_PROFILE:
        if hour >= start:
            rate = block_rate
    return rate
