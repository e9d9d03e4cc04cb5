"""Patient page: the last 24 h as an inline SVG chart over the shaded target range, the
AGP summary of the chosen period, and the patient's alert episodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from sqlalchemy import select

from gateway.agp import AgpSummary
from gateway.derived import ARROWS, direction, mmol_l, rate_mg_dl_per_min
from gateway.registry.models import AlertRow
from gateway.registry.service import Registry
from gateway.report import agp_table_html
from gateway.store.base import StoredReading
from gateway.web.clinic import ALERT_LABELS, AlertView
from gateway.web.html import Units, e, fmt_glucose, fmt_time, glucose_class

CHART_W, CHART_H = 960, 300
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 12, 28
GAP = timedelta(minutes=15)  # a longer gap breaks the line (missing data, as in the AGP)
COLOURS = {
    "very-low": "#b3001b",
    "low": "#e0473c",
    "in-range": "#1f8a4c",
    "high": "#c77c00",
    "very-high": "#8a4b00",
}


def chart_svg(
    series: list[StoredReading], start: datetime, end: datetime, units: Units = "mg/dL"
) -> str:
    """Glucose over [start, end) with the 70-180 mg/dL band shaded; no script, no library."""
    pts = [(r.time, r.mg_dl) for r in series if r.mg_dl is not None and start <= r.time < end]
    top = max([300.0, *(min(v, 600.0) for _, v in pts)])
    span = (end - start).total_seconds()
    plot_w, plot_h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B

    def x(t: datetime) -> float:
        return PAD_L + plot_w * (t - start).total_seconds() / span

    def y(mg: float) -> float:
        return PAD_T + plot_h * (1 - min(max(mg, 0.0), top) / top)

    out = [
        f'<svg class="chart" viewBox="0 0 {CHART_W} {CHART_H}" role="img" '
        f'aria-label="glucose, last 24 hours" data-points="{len(pts)}">',
        f'<rect class="target" x="{PAD_L}" y="{y(180):.1f}" width="{plot_w}" '
        f'height="{y(70) - y(180):.1f}" fill="#d9f2e2"><title>target range 70&ndash;180 mg/dL</title></rect>',
    ]
    for mg in (54, 70, 180, 250):
        label = f"{mmol_l(mg):.1f}" if units == "mmol/L" else f"{mg}"
        dash = ' stroke-dasharray="4 3"' if mg in (54, 250) else ""
        out.append(
            f'<line x1="{PAD_L}" x2="{CHART_W - PAD_R}" y1="{y(mg):.1f}" y2="{y(mg):.1f}" '
            f'stroke="#b8c2cc" stroke-width="1"{dash}/>'
            f'<text x="{PAD_L - 6}" y="{y(mg) + 4:.1f}" text-anchor="end">{label}</text>'
        )
    # hour ticks every 3 h, on whole UTC hours
    tick = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    while tick < end:
        if tick.hour % 3 == 0:
            out.append(
                f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{PAD_T}" y2="{CHART_H - PAD_B}" '
                f'stroke="#eef1f4"/><text x="{x(tick):.1f}" y="{CHART_H - 8}" '
                f'text-anchor="middle">{tick:%H:%M}</text>'
            )
        tick += timedelta(hours=1)
    out.append(
        f'<text x="{CHART_W - PAD_R - 4}" y="{PAD_T + 12}" text-anchor="end">UTC · {units}</text>'
    )
    # the line, broken at gaps, then the points coloured by range
    segments: list[list[str]] = []
    prev: datetime | None = None
    for t, v in pts:
        if prev is None or t - prev > GAP:
            segments.append([])
        segments[-1].append(f"{x(t):.1f},{y(v):.1f}")
        prev = t
    for seg in segments:
        if len(seg) > 1:
            out.append(
                f'<polyline points="{" ".join(seg)}" fill="none" stroke="#6b7885" stroke-width="1.2"/>'
            )
    for t, v in pts:
        out.append(
            f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.4" fill="{COLOURS[glucose_class(v)]}">'
            f"<title>{t:%H:%M} UTC {fmt_glucose(v, units)} {units}</title></circle>"
        )
    if not pts:
        out.append(
            f'<text x="{CHART_W / 2}" y="{CHART_H / 2}" text-anchor="middle">'
            "no glucose readings in the last 24 hours</text>"
        )
    out.append("</svg>")
    return "".join(out)


async def patient_alerts(registry: Registry, patient_id: str, limit: int = 20) -> list[AlertRow]:
    q = (
        select(AlertRow)
        .where(AlertRow.patient_id == patient_id)
        .order_by(AlertRow.id.desc())
        .limit(limit)
    )
    async with registry.session() as s:
        return list((await s.scalars(q)).all())


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _alerts_table(rows: list[AlertRow]) -> str:
    if not rows:
        return '<p class="muted">No alert episodes.</p>'
    body = []
    for row in rows:
        a = AlertView.of(row)
        state = (
            f"cleared {fmt_time(_utc(row.cleared_at))}"
            if row.cleared_at
            else ("acknowledged" if a.acknowledged_at else "open")
        )
        body.append(
            f'<tr data-alert-id="{a.id}"><td>{e(ALERT_LABELS.get(a.kind, a.kind))}</td>'
            f"<td>{e(a.severity)}</td><td>{fmt_time(a.started_at)}</td><td>{e(state)}</td>"
            f"<td>{e(a.detail)}</td></tr>"
        )
    return (
        '<table class="alerts"><thead><tr><th>Alert</th><th>Severity</th><th>Started</th>'
        f"<th>State</th><th>Detail</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def render_body(
    patient_id: str,
    *,
    series: list[StoredReading],
    chart_start: datetime,
    chart_end: datetime,
    agp: AgpSummary,
    days: float,
    alerts: list[AlertRow],
    units: Units,
    toggle: str,
) -> str:
    latest = series[-1] if series else None
    cgm = [(r.time, r.mg_dl) for r in series if r.kind == "cgm" and r.mg_dl is not None]
    arrow = ARROWS[direction(rate_mg_dl_per_min(cgm[-6:]))] if cgm else ""
    now_card = (
        f'<div class="card"><b class="{glucose_class(latest.mg_dl)}">'
        f"{fmt_glucose(latest.mg_dl, units)} {arrow}</b><span>{units} at {fmt_time(latest.time)}</span></div>"
        if latest
        else '<div class="card"><b>&ndash;</b><span>no reading in the last 24 h</span></div>'
    )
    return f"""
<section class="toolbar"><h2>Patient {e(patient_id)}</h2>{toggle}</section>
<div class="cards">{now_card}</div>
<h2>Last 24 hours</h2>
{chart_svg(series, chart_start, chart_end, units)}
<h2>AGP summary · {days:g} days</h2>
<section id="agp" data-days="{days:g}">{agp_table_html(agp, units)}</section>
<p class="muted">Same figures as <code>diatabase report agp --patient {e(patient_id)} --days {days:g}</code>
and <a href="/api/patients/{e(quote(patient_id))}/agp?{e(urlencode({"days": f"{days:g}", "end": agp.end.isoformat()}))}">JSON</a>.</p>
<h2>Alert episodes</h2>
{_alerts_table(alerts)}
"""
