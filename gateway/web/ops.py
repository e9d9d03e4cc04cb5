"""Ops view: ingest rate and lag from the store, quarantine and parked counts from the
registry, hub health from retained MQTT status messages; the same figures as Prometheus
text at ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError
from sqlalchemy import select

from gateway.contract.urls import MqttUrl
from gateway.contract.v1 import HubStatus
from gateway.registry.models import Device, Hub, QuarantineRow
from gateway.registry.service import Registry
from gateway.store.base import QueryStore
from gateway.web.html import DASH, e, fmt_age, fmt_time

log = logging.getLogger(__name__)

STATUS_TOPIC = "diatabase/v1/hubs/+/status"
QUANTILES = (0.5, 0.9, 0.99)


# -- hub status over MQTT ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HubSeen:
    status: HubStatus
    received_at: datetime


class HubMonitor:
    """Keeps the newest retained status of every hub (subscribe, reconnect with backoff)."""

    def __init__(
        self,
        url: MqttUrl,
        *,
        client_id: str = "diatabase-web",
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        self.hubs: dict[str, HubSeen] = {}
        self.connected = False
        self.invalid = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HubMonitor:
        self._task = asyncio.create_task(self.run(), name="hub status monitor")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _tls(self) -> ssl.SSLContext | None:
        return self.url.tls_context(self.ca_file, self.cert_file, self.key_file)

    async def run(self) -> None:
        import aiomqtt  # the web view without --mqtt needs no MQTT client

        backoff = 1.0
        while True:
            try:
                async with aiomqtt.Client(
                    self.url.host,
                    self.url.port,
                    username=self.url.username,
                    password=self.url.password,
                    identifier=self.client_id,
                    tls_context=self._tls(),
                    timeout=10,
                ) as client:
                    await client.subscribe(STATUS_TOPIC, qos=1)
                    if not self.connected:
                        log.info("hub monitor: subscribed to %s on %s", STATUS_TOPIC, self.url)
                    self.connected, backoff = True, 1.0
                    async for message in client.messages:
                        payload = message.payload
                        raw = payload if isinstance(payload, bytes | bytearray) else b""
                        self.handle(message.topic.value, bytes(raw))
            except aiomqtt.MqttError as err:
                if self.connected:
                    log.warning("hub monitor: lost %s (%s); reconnecting", self.url, err)
                self.connected = False
            # reconnect backoff: a timer, capped at 30 s
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def handle(self, topic: str, payload: bytes, now: datetime | None = None) -> None:
        parts = topic.split("/")
        if len(parts) != 5 or parts[4] != "status":
            return
        hub = parts[3]
        if not payload:  # a cleared retained message: the hub was removed
            self.hubs.pop(hub, None)
            return
        try:
            status = HubStatus.model_validate_json(payload)
        except ValidationError as err:
            self.invalid += 1
            log.warning("hub monitor: invalid status on %s: %s", topic, err.errors()[0]["msg"])
            return
        if status.hub_id != hub:
            self.invalid += 1
            log.warning("hub monitor: %s carries hub_id %r; ignored", topic, status.hub_id)
            return
        self.hubs[hub] = HubSeen(status, now or datetime.now(UTC))


# -- figures ---------------------------------------------------------------------------------
def percentile(values: list[float] | tuple[float, ...], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    serial: str
    kind: str
    connected: bool | None
    last_contact: datetime | None
    battery_pct: int | None


@dataclass(frozen=True, slots=True)
class HubHealth:
    hub_id: str
    registered: bool
    online: bool | None  # None: no status seen
    status_at: datetime | None  # the hub's sent_at, else when we received it
    outbox_depth: int | None
    oldest_unsent_age_s: float | None
    outbox_full: bool
    version: str
    devices: tuple[DeviceHealth, ...]


@dataclass(frozen=True, slots=True)
class OpsFigures:
    at: datetime
    window_s: float
    readings: int
    messages: int
    by_stored_time: bool
    lag_quantiles: dict[float, float] | None  # None: the store keeps no stored_at
    lag_max_s: float | None
    quarantine: dict[str, int]
    parked: int
    open_alerts: dict[str, int]
    hubs: tuple[HubHealth, ...]
    mqtt: bool | None  # None: not monitoring MQTT
    invalid_status: int = 0
    errors: tuple[str, ...] = field(default=())

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.window_s

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.window_s


def hub_health(
    registered: dict[str, list[Device]], seen: dict[str, HubSeen]
) -> tuple[HubHealth, ...]:
    out = []
    for hub_id in sorted(set(registered) | set(seen)):
        h = seen.get(hub_id)
        st = h.status if h else None
        reported = {d.serial: d for d in st.devices} if st else {}
        devices = []
        for serial in sorted({d.serial for d in registered.get(hub_id, [])} | set(reported)):
            d = reported.get(serial)
            kind = (
                d.kind
                if d
                else next(x.kind for x in registered.get(hub_id, []) if x.serial == serial)
            )
            devices.append(
                DeviceHealth(
                    serial,
                    str(kind),
                    d.connected if d else None,
                    d.last_contact if d else None,
                    d.battery_pct if d else None,
                )
            )
        out.append(
            HubHealth(
                hub_id=hub_id,
                registered=hub_id in registered,
                online=st.online if st else None,
                status_at=(st.sent_at or h.received_at) if st and h else None,
                outbox_depth=st.outbox_depth if st else None,
                oldest_unsent_age_s=st.oldest_unsent_age_s if st else None,
                outbox_full=st.outbox_full if st else False,
                version=st.version if st else "",
                devices=tuple(devices),
            )
        )
    return tuple(out)


async def gather(
    store: QueryStore,
    registry: Registry,
    monitor: HubMonitor | None,
    *,
    window_s: float = 60.0,
    now: datetime | None = None,
) -> OpsFigures:
    now = now or datetime.now(UTC)
    errors: list[str] = []
    try:
        win = await store.ingest_window(window_s)
    except Exception as err:  # the page must still show the registry side
        log.warning("ops: store query failed: %s", err)
        errors.append(f"store: {err}")
        win = None
    lags = list(win.lags_s) if win and win.lags_s is not None else None
    quantiles = (
        {q: v for q in QUANTILES if (v := percentile(lags, q)) is not None}
        if lags is not None
        else None
    )
    alerts: dict[str, int] = {}
    for a in await registry.open_alerts():
        alerts[a.severity] = alerts.get(a.severity, 0) + 1
    async with registry.session() as s:
        hubs = list((await s.scalars(select(Hub.id))).all())
    registered: dict[str, list[Device]] = {h: [] for h in hubs}
    for d in await registry.list_devices():
        if d.hub_id is not None:
            registered.setdefault(d.hub_id, []).append(d)
    return OpsFigures(
        at=now,
        window_s=window_s,
        readings=win.readings if win else 0,
        messages=win.messages if win else 0,
        by_stored_time=win.by_stored_time if win else True,
        lag_quantiles=quantiles,
        lag_max_s=max(lags) if lags else None,
        quarantine=await registry.quarantine_counts(),
        parked=await registry.parked_count(),
        open_alerts=alerts,
        hubs=hub_health(registered, dict(monitor.hubs) if monitor else {}),
        mqtt=monitor.connected if monitor else None,
        invalid_status=monitor.invalid if monitor else 0,
        errors=tuple(errors),
    )


# -- Prometheus ------------------------------------------------------------------------------
class _FiguresCollector(Collector):
    def __init__(self, fig: OpsFigures) -> None:
        self.fig = fig

    def collect(self) -> Iterator[Metric]:
        f = self.fig
        yield GaugeMetricFamily(
            "diatabase_web_store_readings_per_second",
            f"readings stored per second over the last {f.window_s:g} s",
            value=f.readings_per_s,
        )
        yield GaugeMetricFamily(
            "diatabase_web_store_messages_per_second",
            f"MQTT messages (batches) stored per second over the last {f.window_s:g} s",
            value=f.messages_per_s,
        )
        if f.lag_quantiles is not None:
            lag = GaugeMetricFamily(
                "diatabase_web_store_lag_seconds",
                "stored_at minus reading time, quantiles over the window",
                labels=["quantile"],
            )
            for q, v in f.lag_quantiles.items():
                lag.add_metric([f"{q:g}"], v)
            yield lag
        quarantine = GaugeMetricFamily(
            "diatabase_web_quarantine_entries", "quarantined entries by reason", labels=["reason"]
        )
        for reason, n in sorted(f.quarantine.items()):
            quarantine.add_metric([reason], n)
        yield quarantine
        yield GaugeMetricFamily(
            "diatabase_web_parked_readings", "readings waiting for an assignment", value=f.parked
        )
        alerts = GaugeMetricFamily(
            "diatabase_web_open_alerts", "open alert episodes", labels=["severity"]
        )
        for sev, n in sorted(f.open_alerts.items()):
            alerts.add_metric([sev], n)
        yield alerts
        if f.mqtt is not None:
            yield GaugeMetricFamily(
                "diatabase_web_mqtt_connected", "hub monitor connected", value=int(f.mqtt)
            )
        online = GaugeMetricFamily(
            "diatabase_web_hub_online", "1 online, 0 offline (last retained status)", labels=["hub"]
        )
        depth = GaugeMetricFamily(
            "diatabase_web_hub_outbox_depth", "readings waiting in the hub outbox", labels=["hub"]
        )
        full = GaugeMetricFamily(
            "diatabase_web_hub_outbox_full",
            "1 when the hub's outbox is full and it has stopped pulling from its devices",
            labels=["hub"],
        )
        age = GaugeMetricFamily(
            "diatabase_web_hub_status_age_seconds", "age of the hub's last status", labels=["hub"]
        )
        battery = GaugeMetricFamily(
            "diatabase_web_device_battery_percent", "device battery", labels=["hub", "serial"]
        )
        for h in f.hubs:
            if h.online is not None:
                online.add_metric([h.hub_id], int(h.online))
            if h.outbox_depth is not None:
                depth.add_metric([h.hub_id], h.outbox_depth)
            if h.online is not None:
                full.add_metric([h.hub_id], int(h.outbox_full))
            if h.status_at is not None:
                age.add_metric([h.hub_id], max(0.0, (f.at - h.status_at).total_seconds()))
            for d in h.devices:
                if d.battery_pct is not None:
                    battery.add_metric([h.hub_id, d.serial], d.battery_pct)
        yield from (online, depth, full, age, battery)


def prometheus_text(fig: OpsFigures) -> bytes:
    # A registry per scrape over one consistent set of figures: no shared mutable gauges.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FiguresCollector(fig))
    return generate_latest(registry)


# -- pages -------------------------------------------------------------------------------------
def _s(v: float | None) -> str:
    """A duration for people: ms below a second, then s, min, h, d."""
    if v is None:
        return DASH
    for limit, div, unit, fmt in (
        (1, 0.001, "ms", "{:.0f}"),
        (120, 1, "s", "{:.1f}"),
        (7200, 60, "min", "{:.1f}"),
        (172800, 3600, "h", "{:.1f}"),
    ):
        if abs(v) < limit:
            return f"{fmt.format(v / div)} {unit}"
    return f"{v / 86400:.1f} d"


def _card(value: str, label: str, metric: str) -> str:
    return f'<div class="card"><b data-metric="{metric}">{value}</b><span>{label}</span></div>'


def render_ops(f: OpsFigures) -> str:
    basis = "stored" if f.by_stored_time else "with reading times"
    cards = [
        _card(f"{f.readings_per_s:.2f}", f"readings/s {basis} (last {f.window_s:g} s)", "rps"),
        _card(f"{f.messages_per_s:.2f}", f"messages/s (last {f.window_s:g} s)", "mps"),
    ]
    if f.lag_quantiles is not None:
        for q in QUANTILES:
            cards.append(
                _card(_s(f.lag_quantiles.get(q)), f"lag p{q * 100:g}", f"lag_p{q * 100:g}")
            )
        cards.append(_card(_s(f.lag_max_s), "lag max", "lag_max"))
    else:
        cards.append(
            _card("n/a", "lag: this store keeps no stored time (see ingester metrics)", "lag_p50")
        )
    cards.append(_card(str(f.parked), "parked readings", "parked"))
    cards.append(_card(str(sum(f.quarantine.values())), "quarantined", "quarantined"))
    q_rows = (
        "".join(
            f'<tr><td><a href="/ops/quarantine?reason={e(r)}">{e(r)}</a></td>'
            f'<td class="num" data-reason="{e(r)}">{n}</td></tr>'
            for r, n in sorted(f.quarantine.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        or '<tr><td colspan="2" class="muted">nothing quarantined</td></tr>'
    )
    alerts = ", ".join(f"{n} {e(s)}" for s, n in sorted(f.open_alerts.items())) or "none"
    if f.mqtt is None:
        mqtt = "not watching MQTT (start with <code>--mqtt URL</code> to see hub status)"
    else:
        mqtt = "connected" if f.mqtt else '<span class="offline">disconnected</span>'
    errors = "".join(f'<p class="note">{e(x)}</p>' for x in f.errors)
    return f"""
<section class="toolbar"><h2>Ingest</h2><span class="muted">as of {fmt_time(f.at)}</span></section>
{errors}
<div class="cards">{"".join(cards)}</div>
<p class="muted">Open alerts: {alerts}. Prometheus text of these figures: <a href="/metrics">/metrics</a>.</p>
<h2>Quarantine by reason</h2>
<table class="quarantine"><thead><tr><th>Reason</th><th class="num">Entries</th></tr></thead>
<tbody>{q_rows}</tbody></table>
<h2>Hubs</h2>
<p class="muted">MQTT status: {mqtt}</p>
{_hubs_table(f)}
"""


def _hubs_table(f: OpsFigures) -> str:
    if not f.hubs:
        return '<p class="muted">No hubs registered or seen.</p>'
    rows = []
    for h in f.hubs:
        state = (
            '<span class="muted">no status</span>'
            if h.online is None
            else (
                '<span class="online">online</span>'
                if h.online
                else '<span class="offline">offline</span>'
            )
        )
        contact = DASH if h.status_at is None else fmt_age((f.at - h.status_at).total_seconds())
        outbox = DASH if h.outbox_depth is None else str(h.outbox_depth)
        if h.outbox_full:
            outbox += ' <span class="offline">full</span>'
        if h.oldest_unsent_age_s:
            outbox += f' <span class="muted">oldest {_s(h.oldest_unsent_age_s)}</span>'
        devices = (
            "<br>".join(
                f"{e(d.serial)} <span class=muted>{e(d.kind)}</span> "
                f"{'' if d.connected is None else ('connected' if d.connected else 'disconnected')}"
                f" · battery {DASH if d.battery_pct is None else f'{d.battery_pct} %'}"
                f" · contact {fmt_age(None if d.last_contact is None else (f.at - d.last_contact).total_seconds())}"
                for d in h.devices
            )
            or '<span class="muted">none</span>'
        )
        rows.append(
            f'<tr data-hub="{e(h.hub_id)}"><td>{e(h.hub_id)}'
            f"{'' if h.registered else ' <span class=muted>(not registered)</span>'}</td>"
            f'<td class="state">{state}</td><td>{contact}</td><td class="num outbox">{outbox}</td>'
            f"<td>{devices}</td></tr>"
        )
    return (
        '<table class="hubs"><thead><tr><th>Hub</th><th>State</th><th>Last status</th>'
        f'<th class="num">Outbox</th><th>Devices</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def render_quarantine_list(reason: str | None, rows: list[QuarantineRow]) -> str:
    body = (
        "".join(
            f'<tr data-qid="{r.id}"><td><a href="/ops/quarantine/{r.id}">{r.id}</a></td>'
            f"<td>{fmt_time(_utc(r.received_at))}</td><td>{e(r.reason)}</td><td>{e(r.hub_id or DASH)}</td>"
            f"<td>{e(r.device_serial or DASH)}</td><td>{e(r.detail[:160])}</td></tr>"
            for r in rows
        )
        or '<tr><td colspan="6" class="muted">no entries</td></tr>'
    )
    title = f"reason {e(reason)}" if reason else "all reasons"
    return f"""
<section class="toolbar"><h2>Quarantine · {title}</h2><a href="/ops">back to ops</a></section>
<table class="quarantine-list"><thead><tr><th>Id</th><th>Received</th><th>Reason</th><th>Hub</th>
<th>Device</th><th>Detail</th></tr></thead><tbody>{body}</tbody></table>
<p class="muted">Newest {len(rows)} entries. Replay with <code>diatabase quarantine</code>.</p>
"""


def _payload_text(payload: bytes) -> str:
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return "hex: " + payload.hex()
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        return text


def render_quarantine_entry(r: QuarantineRow) -> str:
    cut = (
        f" (first {len(r.payload)} of {r.payload_size} bytes kept)"
        if r.payload_size > len(r.payload)
        else ""
    )
    fields = [
        ("Reason", f'<a href="/ops/quarantine?reason={e(r.reason)}">{e(r.reason)}</a>'),
        ("Received", fmt_time(_utc(r.received_at))),
        ("Topic", e(r.topic)),
        ("Hub", e(r.hub_id or DASH)),
        ("Device", e(r.device_serial or DASH)),
        ("Reading key", e(r.reading_key or DASH)),
        ("Replayed", fmt_time(_utc(r.replayed_at)) if r.replayed_at else "no"),
        ("Detail", f'<span data-field="detail">{e(r.detail)}</span>'),
    ]
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in fields)
    return f"""
<section class="toolbar"><h2>Quarantine entry {r.id}</h2><a href="/ops/quarantine?reason={e(r.reason)}">back to {e(r.reason)}</a></section>
<table class="entry">{rows}</table>
<h2>Payload{cut}</h2>
<pre data-field="payload">{e(_payload_text(r.payload))}</pre>
"""


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
