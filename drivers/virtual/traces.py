"""Synthetic glucose traces: a daily pattern with meals, a dawn rise and sensor noise.

Deterministic for a given seed, so a test can regenerate exactly what a device produced.
Values are mg/dL, kept within 40-400 like a real sensor's reporting range.
"""

from __future__ import annotations

import math
import random
from datetime import datetime

# (hour of day, peak rise in mg/dL) of meals; responses peak about an hour after eating.
MEALS = ((7.5, 70.0), (12.5, 60.0), (19.0, 80.0))


def _meal_response(hours_since: float, peak: float) -> float:
    if hours_since <= 0 or hours_since > 5:
        return 0.0
    # A gamma-like bump: rises over ~1 h, decays over ~3 h.
    x = hours_since
    return peak * (x / 1.0) * math.exp(1 - x / 1.0)


class GlucoseTrace:
    def __init__(self, seed: int, baseline: float = 115.0) -> None:
        self.seed = seed
        self.baseline = baseline
        rnd = random.Random(seed)
        self.phase = rnd.uniform(-0.5, 0.5)  # hours: people do not eat on the minute
        self.scale = rnd.uniform(0.8, 1.3)

    def value(self, at: datetime) -> float:
        hour = at.hour + at.minute / 60 + at.second / 3600
        level = self.baseline
        level += 15.0 * math.exp(-(((hour - 5.5) / 1.5) ** 2))  # dawn phenomenon
        for meal_hour, peak in MEALS:
            for day_shift in (0.0, 24.0):
                level += self.scale * _meal_response(
                    hour + day_shift - meal_hour - self.phase, peak
                )
        # Noise that is a pure function of time and seed (reproducible).
        noise = random.Random(f"{self.seed}|{at.replace(microsecond=0).isoformat()}").gauss(
            0.0, 4.0
        )
        return max(40.0, min(400.0, level + noise))
