"""AGP report: the same selection and the same ``gateway.agp.summarise`` for the patient
page, its JSON API and ``diatabase report agp``, so every place shows the same numbers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from gateway.agp import GMI_MIN_ACTIVE_PCT, AgpSummary, summarise
from gateway.derived import mmol_l
from gateway.store.base import ReadingStore, StoredReading
from gateway.web.html import DASH, Units, e, fmt_glucose

# Consensus bands with their labels in each unit (mmol/L bounds as the consensus states them).
BANDS: tuple[tuple[str, str, str, str], ...] = (
    ("very_low", "Very low", "< 54", "< 3.0"),
    ("low", "Low", "54&ndash;69", "3.0&ndash;3.8"),
    ("in_range", "In range", "70&ndash;180", "3.9&ndash;10.0"),
    ("high", "High", "181&ndash;250", "10.1&ndash;13.9"),
    ("very_high", "Very high", "> 250", "> 13.9"),
)
BAND_COLOURS = {
    "very_low": "#b3001b",
    "low": "#e0473c",
    "in_range": "#1f8a4c",
    "high": "#f0a500",
    "very_high": "#8a4b00",
}


async def load_agp(
    store: ReadingStore, patient_id: str, *, days: float = 14, end: datetime | None = None
) -> AgpSummary:
    """AGP of ``patient_id``'s CGM readings over the ``days`` before ``end`` (now)."""
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(days=days)
    series = await store.glucose_series(patient_id, start, end)
    return summarise(cgm_points(series), start, end)


def cgm_points(series: Iterable[StoredReading]) -> list[tuple[datetime, float]]:
    """The (time, mg/dL) points the AGP counts (here and in the FHIR summary)."""
    # AGP is a CGM measure: finger-stick checks would weigh as if they covered 5 minutes
    return [(r.time, r.mg_dl) for r in series if r.kind == "cgm" and r.mg_dl is not None]


def gmi_note(s: AgpSummary) -> str | None:
    """Why GMI is not shown, or None when it is."""
    if s.gmi_pct is not None:
        return None
    if s.readings == 0:
        return "no CGM readings in this period"
    return (
        f"CGM active {s.active_pct:.1f} % of the period, below the "
        f"{GMI_MIN_ACTIVE_PCT:.0f} % needed for GMI"
    )


def as_json(patient_id: str, s: AgpSummary) -> str:
    return json.dumps({"patient_id": patient_id, **s.as_dict()}, indent=2, sort_keys=True)


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return DASH if value is None else fmt.format(value)


def agp_table_html(s: AgpSummary, units: Units = "mg/dL") -> str:
    """The AGP figures as an HTML fragment; each value carries ``data-metric``."""
    mmol = units == "mmol/L"
    rows = []
    for key, name, mg_label, mmol_label in BANDS:
        pct = s.time_in_ranges_pct[key]
        rows.append(
            f'<tr><th>{name} <span class="muted">{mmol_label if mmol else mg_label} {units}</span></th>'
            f'<td class="num" data-metric="{key}">{pct:.1f} %</td></tr>'
        )
    bar = "".join(
        f'<div style="width:{s.time_in_ranges_pct[k]:.2f}%;background:{BAND_COLOURS[k]}" '
        f'title="{e(n)} {s.time_in_ranges_pct[k]:.1f} %"></div>'
        for k, n, _, _ in BANDS
    )
    mean = fmt_glucose(s.mean_mg_dl, units) if s.mean_mg_dl is not None else DASH
    sd = (
        DASH
        if s.sd_mg_dl is None
        else (f"{mmol_l(s.sd_mg_dl):.1f}" if mmol else f"{s.sd_mg_dl:.1f}")
    )
    note = gmi_note(s)
    gmi = f"{s.gmi_pct:.1f} %" if s.gmi_pct is not None else "not shown"
    gmi_why = (
        f'<div class="note" data-metric="gmi_note">GMI not shown: {e(note)}</div>' if note else ""
    )
    mean_exact = "" if s.mean_mg_dl is None else f' title="{s.mean_mg_dl:.1f} mg/dL"'
    return f"""
<div class="tir-bar" aria-label="time in ranges">{bar}</div>
<table class="agp">
  <tbody>
    {"".join(rows)}
    <tr><th>Mean glucose</th><td class="num" data-metric="mean"{mean_exact}>{mean} {units}</td></tr>
    <tr><th>Standard deviation</th><td class="num" data-metric="sd">{sd} {units}</td></tr>
    <tr><th>Coefficient of variation (CV)</th><td class="num" data-metric="cv">{_num(s.cv_pct)} %</td></tr>
    <tr><th>Glucose management indicator (GMI)</th><td class="num" data-metric="gmi">{gmi}</td></tr>
    <tr><th>CGM active</th><td class="num" data-metric="active">{s.active_pct:.1f} %</td></tr>
    <tr><th>Readings</th><td class="num" data-metric="readings">{s.readings}</td></tr>
  </tbody>
</table>
{gmi_why}
<p class="muted">{s.start:%Y-%m-%d %H:%M} to {s.end:%Y-%m-%d %H:%M} UTC. Time in ranges is
time-weighted (each reading stands for the time to the next, at most 15 minutes) and is a
share of the time with CGM data; GMI = 3.31 + 0.02392 &times; mean mg/dL, shown only with at
least {GMI_MIN_ACTIVE_PCT:.0f} % CGM active time.</p>
"""


def as_html(patient_id: str, s: AgpSummary, units: Units = "mg/dL") -> str:
    """A standalone document (for ``diatabase report agp --format html``)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AGP {e(patient_id)}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #16202a; }}
table {{ border-collapse: collapse; margin-top: 12px; }}
th, td {{ text-align: left; padding: 4px 12px; border-bottom: 1px solid #dde3e9; }}
td.num {{ text-align: right; }} .muted {{ color: #5d6b78; font-size: 12px; }}
.tir-bar {{ display: flex; height: 18px; max-width: 600px; border: 1px solid #dde3e9; }}
.note {{ background: #fff8e6; padding: 6px 10px; margin-top: 8px; }}
</style></head>
<body><h1>Ambulatory glucose profile · {e(patient_id)}</h1>
{agp_table_html(s, units)}
</body></html>
"""
