"""Clinic view: every patient's latest glucose, trend, data age and open alerts, most
urgent first, kept live over server-sent events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from sqlalchemy import func, select

from gateway.derived import ARROWS, TREND_WINDOW_MIN, Direction, direction, rate_mg_dl_per_min
from gateway.registry.models import AlertRow, AuditRow
from gateway.registry.service import Registry
from gateway.store.base import QueryStore, StoredReading
from gateway.web.html import (
    Units,
    e,
    fmt_age,
    fmt_glucose,
    glucose_class,
)

URGENT_LOW_MG_DL = 54.0
TARGET_LOW_MG_DL = 70.0
TARGET_HIGH_MG_DL = 180.0
DEFAULT_STALE_AFTER = timedelta(minutes=20)  # the alert engine's default too
SEVERITY_RANK = {"urgent": 0, "warning": 1, "info": 2}
ALERT_LABELS = {
    "urgent_low": "Urgent low",
    "low": "Low",
    "high": "High",
    "rapid_fall": "Falling fast",
    "rapid_rise": "Rising fast",
    "stale": "No data",
    "sensor_fault": "Sensor fault",
    "battery_low": "Battery low",
    "pump_occlusion": "Pump occlusion",
    "reservoir_low": "Reservoir low",
}


@dataclass(frozen=True, slots=True)
class AlertView:
    id: int
    kind: str
    severity: str
    started_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    value_mg_dl: float | None = None
    detail: str = ""

    @classmethod
    def of(cls, row: AlertRow) -> AlertView:
        return cls(
            id=row.id,
            kind=row.kind,
            severity=row.severity,
            started_at=_utc(row.started_at),
            acknowledged_at=_utc(row.acknowledged_at) if row.acknowledged_at else None,
            acknowledged_by=row.acknowledged_by,
            value_mg_dl=row.value_mg_dl,
            detail=row.detail or "",
        )

    @property
    def label(self) -> str:
        return ALERT_LABELS.get(self.kind, self.kind.replace("_", " ").capitalize())


@dataclass(frozen=True, slots=True)
class PatientRow:
    patient_id: str
    mg_dl: float | None = None
    time: datetime | None = None
    serial: str | None = None
    kind: str | None = None
    rate: float | None = None  # mg/dL per minute
    direction: Direction = Direction.NONE
    alerts: tuple[AlertView, ...] = ()

    def age_s(self, now: datetime) -> float | None:
        return None if self.time is None else max(0.0, (now - self.time).total_seconds())

    def stale(self, now: datetime, stale_after: timedelta = DEFAULT_STALE_AFTER) -> bool:
        return self.time is None or now - self.time > stale_after


@dataclass(frozen=True, slots=True)
class ClinicSnapshot:
    at: datetime
    rows: tuple[PatientRow, ...]
    stale_after: timedelta = DEFAULT_STALE_AFTER


def distance_from_range(mg_dl: float | None) -> float:
    if mg_dl is None:
        return 0.0
    if mg_dl < TARGET_LOW_MG_DL:
        return TARGET_LOW_MG_DL - mg_dl
    if mg_dl > TARGET_HIGH_MG_DL:
        return mg_dl - TARGET_HIGH_MG_DL
    return 0.0


def urgency(
    row: PatientRow, now: datetime, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> tuple[object, ...]:
    """Sort key, most urgent first.

    0 urgent low (an open urgent_low episode, or a fresh reading below 54 mg/dL the engine
      has not flagged yet), lowest first;
    1 other open alerts: by severity, unacknowledged before acknowledged, then distance;
    2 stale data (no reading within ``stale_after``, or an open stale episode): longest
      silent first, never-seen last;
    3 everyone else by distance from 70-180 mg/dL, furthest first.
    Ties fall back to the patient id so the order is stable between refreshes.
    """
    stale = row.stale(now, stale_after)
    fresh_urgent = not stale and row.mg_dl is not None and row.mg_dl < URGENT_LOW_MG_DL
    if fresh_urgent or any(a.kind == "urgent_low" for a in row.alerts):
        return (0, row.mg_dl if row.mg_dl is not None else 0.0, row.patient_id)
    active = [a for a in row.alerts if a.kind != "stale"]
    if active:
        severity = min(SEVERITY_RANK.get(a.severity, 3) for a in active)
        acked = all(a.acknowledged_at is not None for a in active)
        return (1, severity, acked, -distance_from_range(row.mg_dl), row.patient_id)
    if stale or row.alerts:
        never = row.time is None
        return (2, never, row.time.timestamp() if row.time else 0.0, row.patient_id)
    return (3, -distance_from_range(row.mg_dl), row.patient_id)


def sort_rows(
    rows: list[PatientRow], now: datetime, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> list[PatientRow]:
    return sorted(rows, key=lambda r: urgency(r, now, stale_after))


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _pick_latest(latest: list[StoredReading]) -> dict[str, StoredReading]:
    # Two readings at the same instant (a meter check during a CGM session): prefer the CGM.
    out: dict[str, StoredReading] = {}
    for r in latest:
        cur = out.get(r.patient_id)
        if cur is None or (r.time, r.kind == "cgm") > (cur.time, cur.kind == "cgm"):
            out[r.patient_id] = r
    return out


async def build_snapshot(
    store: QueryStore,
    registry: Registry,
    *,
    now: datetime | None = None,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> ClinicSnapshot:
    now = now or datetime.now(UTC)
    patients = [p.id for p in await registry.list_patients()]
    latest = _pick_latest(await store.latest_per_patient())
    alerts: dict[str, list[AlertView]] = {}
    for a in await registry.open_alerts():
        alerts.setdefault(a.patient_id, []).append(AlertView.of(a))
    ids = sorted(set(patients) | set(latest) | set(alerts))
    rows = []
    for pid in ids:
        r = latest.get(pid)
        if r is None or r.mg_dl is None:
            rows.append(PatientRow(pid, alerts=tuple(alerts.get(pid, ()))))
            continue
        rate = None
        if r.kind == "cgm":
            # the trend comes from this patient's CGM readings in the window before the newest
            since = r.time - timedelta(minutes=TREND_WINDOW_MIN)
            series = await store.glucose_series(pid, since, r.time + timedelta(milliseconds=1))
            rate = rate_mg_dl_per_min(
                [(s.time, s.mg_dl) for s in series if s.kind == "cgm" and s.mg_dl is not None]
            )
        rows.append(
            PatientRow(
                pid,
                mg_dl=r.mg_dl,
                time=r.time,
                serial=r.serial,
                kind=r.kind,
                rate=rate,
                direction=direction(rate),
                alerts=tuple(alerts.get(pid, ())),
            )
        )
    return ClinicSnapshot(now, tuple(sort_rows(rows, now, stale_after)), stale_after)


async def registry_marker(registry: Registry) -> object:
    """Changes when an alert starts, is acknowledged or clears, or the registry changes."""
    async with registry.session() as s:
        newest = await s.scalar(select(func.max(AlertRow.id)))
        open_rows = (
            await s.execute(
                select(AlertRow.id, AlertRow.acknowledged_at).where(AlertRow.cleared_at.is_(None))
            )
        ).all()
        audit = await s.scalar(select(func.max(AuditRow.id)))
    return (newest, tuple(sorted((i, a is not None) for i, a in open_rows)), audit)


# -- rendering ----------------------------------------------------------------------------
def _alert_badges(row: PatientRow, now: datetime) -> str:
    if not row.alerts:
        return '<span class="muted">none</span>'
    parts = []
    for a in sorted(row.alerts, key=lambda a: (SEVERITY_RANK.get(a.severity, 3), a.started_at)):
        since = fmt_age((now - a.started_at).total_seconds())
        if a.acknowledged_at is not None:
            action = f'<span class="acked">acknowledged by {e(a.acknowledged_by or "?")}</span>'
        else:
            action = (
                f'<form class="ack" method="post" action="/api/alerts/{a.id}/ack">'
                f'<button type="submit" data-alert="{a.id}">Acknowledge</button></form>'
            )
        parts.append(
            f'<div class="alert sev-{e(a.severity)}" data-alert-id="{a.id}" '
            f'data-kind="{e(a.kind)}" title="{e(a.detail)}">'
            f'<span class="badge">{e(a.label)}</span> <span class="muted">{since}</span> '
            f"{action}</div>"
        )
    return "".join(parts)


def render_rows(snap: ClinicSnapshot, units: Units) -> str:
    if not snap.rows:
        return '<tr><td colspan="5" class="muted">No patients yet.</td></tr>'
    out = []
    for row in snap.rows:
        stale = row.stale(snap.at, snap.stale_after)
        cls = ["stale"] if stale else []
        if any(a.acknowledged_at is None for a in row.alerts):
            cls.append("alerting")
        arrow = ARROWS[row.direction]
        rate = "" if row.rate is None else f" ({row.rate:+.1f} mg/dL/min)"
        value = fmt_glucose(row.mg_dl, units)
        unit = "" if row.mg_dl is None else f' <span class="unit">{units}</span>'
        out.append(
            f'<tr data-patient="{e(row.patient_id)}" class="{" ".join(cls)}">'
            f'<td><a href="/patients/{e(quote(row.patient_id, safe=""))}">{e(row.patient_id)}</a></td>'
            f'<td class="glucose {glucose_class(row.mg_dl)}"><span class="value">{value}</span>{unit}</td>'
            f'<td class="trend" title="{e(row.direction.value)}{rate}">'
            f'<span class="arrow" data-direction="{e(row.direction.value)}">{arrow}</span></td>'
            f'<td class="age">{fmt_age(row.age_s(snap.at))}</td>'
            f'<td class="alerts">{_alert_badges(row, snap.at)}</td>'
            "</tr>"
        )
    return "".join(out)


def render_page_body(snap: ClinicSnapshot, units: Units, toggle: str) -> str:
    return f"""
<section class="toolbar">
  <h2>Patients</h2>
  <span id="live" class="muted" data-state="connecting">connecting…</span>
  {toggle}
</section>
<table class="clinic" data-units="{units}">
  <thead><tr><th>Patient</th><th>Glucose</th><th>Trend</th><th>Last reading</th><th>Alerts</th></tr></thead>
  <tbody id="patients">{render_rows(snap, units)}</tbody>
</table>
<p class="muted">Most urgent first: urgent low, other open alerts, no recent data, then by
distance from the 70&ndash;180 mg/dL target range. Trend arrows from the rate of change over the
last {TREND_WINDOW_MIN:.0f} minutes.</p>
<script src="/static/clinic.js" defer></script>
"""
