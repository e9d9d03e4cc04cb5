"""Ambulatory Glucose Profile summary by the 2019 international consensus on time in range.

Every figure is time-weighted: a reading stands for the time until the next one, capped
at ``MAX_SAMPLE_GAP`` (a longer gap is missing data, not more of the last value). The
same code serves the web page, ``diatabase report agp`` and the FHIR summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Consensus ranges (mg/dL): very low < 54, low 54-69, in range 70-180, high 181-250,
# very high > 250. With real-valued readings the bounds are: x < 54, 54 <= x < 70,
# 70 <= x <= 180, 180 < x <= 250, x > 250.
RANGES = ("very_low", "low", "in_range", "high", "very_high")
MAX_SAMPLE_GAP = timedelta(minutes=15)
DEFAULT_SAMPLE = timedelta(minutes=5)
GMI_MIN_ACTIVE_PCT = 70.0


def range_of(mg_dl: float) -> str:
    if mg_dl < 54:
        return "very_low"
    if mg_dl < 70:
        return "low"
    if mg_dl <= 180:
        return "in_range"
    if mg_dl <= 250:
        return "high"
    return "very_high"


@dataclass(frozen=True, slots=True)
class AgpSummary:
    start: datetime
    end: datetime
    readings: int
    active_pct: float  # % of the period covered by CGM data
    mean_mg_dl: float | None
    sd_mg_dl: float | None
    cv_pct: float | None
    gmi_pct: float | None  # None when active_pct < 70
    time_in_ranges_pct: dict[str, float]  # share of covered time, per range

    def as_dict(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "readings": self.readings,
            "active_pct": self.active_pct,
            "mean_mg_dl": self.mean_mg_dl,
            "sd_mg_dl": self.sd_mg_dl,
            "cv_pct": self.cv_pct,
            "gmi_pct": self.gmi_pct,
            "time_in_ranges_pct": dict(self.time_in_ranges_pct),
        }


def weights(
    times: Sequence[datetime], end: datetime, sample: timedelta = DEFAULT_SAMPLE
) -> list[float]:
    """Seconds each reading stands for: up to the next reading, capped; the last one gets
    one nominal sample interval (never past ``end``)."""
    out: list[float] = []
    for i, t in enumerate(times):
        nxt = times[i + 1] if i + 1 < len(times) else min(t + sample, end)
        out.append(max(0.0, min(nxt - t, MAX_SAMPLE_GAP).total_seconds()))
    return out


def days_with_data(times: Iterable[datetime], start: datetime, end: datetime) -> int:
    """CGM days of wear: the 24-hour days of the period, counted from ``start``, with at
    least one reading (a day worn with gaps still counts; the gaps show in ``active_pct``).
    Days from the start, not calendar days, so a 14-day period has at most 14."""
    day = timedelta(days=1)
    return len({(t - start) // day for t in times if start <= t < end})


def summarise(
    points: Sequence[tuple[datetime, float]], start: datetime, end: datetime
) -> AgpSummary:
    """``points``: (UTC time, mg/dL) of CGM readings; only those in [start, end) count."""
    pts = sorted((t, v) for t, v in points if start <= t < end)
    times = [t for t, _ in pts]
    w = weights(times, end)
    covered = sum(w)
    period = (end - start).total_seconds()
    active = round(100.0 * covered / period, 2) if period > 0 else 0.0
    if covered <= 0:
        return AgpSummary(
            start, end, len(pts), active, None, None, None, None, dict.fromkeys(RANGES, 0.0)
        )
    mean = sum(wi * v for wi, (_, v) in zip(w, pts, strict=True)) / covered
    var = sum(wi * (v - mean) ** 2 for wi, (_, v) in zip(w, pts, strict=True)) / covered
    sd = math.sqrt(var)
    tir = dict.fromkeys(RANGES, 0.0)
    for wi, (_, v) in zip(w, pts, strict=True):
        tir[range_of(v)] += wi
    return AgpSummary(
        start=start,
        end=end,
        readings=len(pts),
        active_pct=active,
        mean_mg_dl=round(mean, 1),
        sd_mg_dl=round(sd, 1),
        cv_pct=round(100.0 * sd / mean, 1) if mean else None,
        gmi_pct=round(3.31 + 0.02392 * mean, 1) if active >= GMI_MIN_ACTIVE_PCT else None,
        time_in_ranges_pct={k: round(100.0 * v / covered, 1) for k, v in tir.items()},
    )
