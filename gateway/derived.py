"""Values derived server-side, the same way for every source: trend arrows and rates.

Trend directions follow Nightscout's names and thresholds on the rate of change
(mg/dL per minute): Flat within ±1, FortyFive 1 to 2, Single 2 to 3.5, Double beyond 3.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from drivers.units import MG_DL_PER_MMOL_L

# Rate is computed over readings at most this far back from the newest (minutes).
TREND_WINDOW_MIN = 15.0
# ...and needs at least this much time between the oldest and newest used (minutes).
TREND_MIN_SPAN_MIN = 4.0


class Direction(StrEnum):
    DOUBLE_UP = "DoubleUp"
    SINGLE_UP = "SingleUp"
    FORTY_FIVE_UP = "FortyFiveUp"
    FLAT = "Flat"
    FORTY_FIVE_DOWN = "FortyFiveDown"
    SINGLE_DOWN = "SingleDown"
    DOUBLE_DOWN = "DoubleDown"
    NONE = "NONE"


ARROWS = {
    Direction.DOUBLE_UP: "⇈",
    Direction.SINGLE_UP: "↑",
    Direction.FORTY_FIVE_UP: "↗",
    Direction.FLAT: "→",
    Direction.FORTY_FIVE_DOWN: "↘",
    Direction.SINGLE_DOWN: "↓",
    Direction.DOUBLE_DOWN: "⇊",
    Direction.NONE: "·",
}


def rate_mg_dl_per_min(points: Sequence[tuple[datetime, float]]) -> float | None:
    """Least-squares slope of the readings in the trend window ending at the newest."""
    if len(points) < 2:
        return None
    newest = max(t for t, _ in points)
    window = [(t, v) for t, v in points if (newest - t).total_seconds() <= TREND_WINDOW_MIN * 60]
    if len(window) < 2:
        return None
    xs = [(t - newest).total_seconds() / 60 for t, _ in window]
    if max(xs) - min(xs) < TREND_MIN_SPAN_MIN:
        return None
    ys = [v for _, v in window]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def direction(rate: float | None) -> Direction:
    if rate is None:
        return Direction.NONE
    magnitude = abs(rate)
    if magnitude <= 1:
        return Direction.FLAT
    if magnitude <= 2:
        return Direction.FORTY_FIVE_UP if rate > 0 else Direction.FORTY_FIVE_DOWN
    if magnitude <= 3.5:
        return Direction.SINGLE_UP if rate > 0 else Direction.SINGLE_DOWN
    return Direction.DOUBLE_UP if rate > 0 else Direction.DOUBLE_DOWN


def mmol_l(mg_dl: float) -> float:
    return mg_dl / MG_DL_PER_MMOL_L
