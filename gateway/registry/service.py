"""Registry operations over SQLAlchemy 2 async (aiosqlite or asyncpg).

Linking is on the hot path, so assignments are cached in memory and reloaded when the
audit log moves (every registry change writes one audit row, in the same transaction).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, event, func, select, update
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.contract.urls import StoreUrl
from gateway.registry.models import (
    AlertRow,
    AssignmentRow,
    AuditRow,
    Base,
    Device,
    Hub,
    ParkedRow,
    Patient,
    QuarantineRow,
)
from gateway.registry.uploaders import UploadersMixin

log = logging.getLogger(__name__)

FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


class RegistryError(Exception):
    """Root of registry errors."""


class UnknownEntityError(RegistryError):
    def __init__(self, kind: str, ident: str) -> None:
        self.kind, self.ident = kind, ident
        super().__init__(f"unknown {kind} {ident!r}")


class AssignmentOverlapError(RegistryError):
    def __init__(self, serial: str, other: Assignment) -> None:
        self.serial, self.other = serial, other
        super().__init__(
            f"device {serial} is already assigned to {other.patient_id} from "
            f"{other.valid_from.isoformat()} to {other.valid_to.isoformat() if other.valid_to else 'open end'}"
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    serial: str
    patient_id: str
    valid_from: datetime
    valid_to: datetime | None

    def covers(self, at: datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    reason: str
    detail: str
    topic: str
    payload: bytes
    hub_id: str | None = None
    reading_key: str | None = None
    device_serial: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParkedReading:
    key: str
    serial: str
    time: datetime
    hub_id: str
    reading_json: str


def engine_url(url: StoreUrl) -> str:
    if url.scheme == "sqlite":
        assert url.path is not None
        return f"sqlite+aiosqlite:///{url.path}"
    if url.scheme in {"postgresql", "postgresql+asyncpg"}:
        return "postgresql+asyncpg://" + url.raw.split("://", 1)[1]
    raise RegistryError(f"registry URL must be sqlite:/// or postgresql://, got {url.raw!r}")


def _utc(dt: datetime) -> datetime:
    # SQLite returns naive datetimes; everything stored is UTC.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class AlertsMixin:
    """Alert episodes (used by the alert engine, the web views and the CLI)."""

    def session(self) -> AsyncSession:
        raise NotImplementedError  # provided by Registry

    async def open_alerts(self, patient_id: str | None = None) -> list[AlertRow]:
        q = select(AlertRow).where(AlertRow.cleared_at.is_(None)).order_by(AlertRow.started_at)
        if patient_id is not None:
            q = q.where(AlertRow.patient_id == patient_id)
        async with self.session() as s:
            return list((await s.scalars(q)).all())

    async def recent_alerts(self, limit: int = 100) -> list[AlertRow]:
        q = select(AlertRow).order_by(AlertRow.id.desc()).limit(limit)
        async with self.session() as s:
            return list((await s.scalars(q)).all())

    async def start_alert(
        self,
        patient_id: str,
        kind: str,
        severity: str,
        at: datetime,
        *,
        serial: str | None = None,
        value_mg_dl: float | None = None,
        detail: str = "",
    ) -> AlertRow | None:
        """Open an episode unless one of this kind is already open (then None)."""
        async with self.session() as s, s.begin():
            existing = await s.scalar(
                select(AlertRow).where(
                    AlertRow.patient_id == patient_id,
                    AlertRow.kind == kind,
                    AlertRow.cleared_at.is_(None),
                )
            )
            if existing is not None:
                return None
            row = AlertRow(
                patient_id=patient_id,
                kind=kind,
                severity=severity,
                started_at=at,
                serial=serial,
                value_mg_dl=value_mg_dl,
                detail=detail,
            )
            s.add(row)
        return row

    async def clear_alert(self, patient_id: str, kind: str, at: datetime) -> AlertRow | None:
        async with self.session() as s, s.begin():
            row = await s.scalar(
                select(AlertRow).where(
                    AlertRow.patient_id == patient_id,
                    AlertRow.kind == kind,
                    AlertRow.cleared_at.is_(None),
                )
            )
            if row is None:
                return None
            row.cleared_at = at
        return row

    async def acknowledge_alert(self, alert_id: int, by: str, at: datetime) -> AlertRow | None:
        async with self.session() as s, s.begin():
            row = await s.get(AlertRow, alert_id)
            if row is None or row.cleared_at is not None:
                return None
            if row.acknowledged_at is None:
                row.acknowledged_at = at
                row.acknowledged_by = by
        return row


class Registry(AlertsMixin, UploadersMixin):
    def __init__(self, url: StoreUrl, *, actor: str = "system") -> None:
        self.url = url
        self.actor = actor
        self.engine: AsyncEngine | None = None
        self._session: async_sessionmaker[AsyncSession] | None = None
        self._by_serial: dict[str, list[Assignment]] = {}
        self._starts: dict[str, list[datetime]] = {}
        self._hub_of: dict[str, str | None] = {}
        self._thresholds: dict[str, tuple[float | None, float | None]] = {}
        self._hub_keys: dict[str, tuple[str | None, bool]] = {}
        self._audit_seen = -1

    # -- lifecycle ----------------------------------------------------------------------
    async def open(self) -> Registry:
        if self.url.scheme == "sqlite" and self.url.path is not None:
            self.url.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_async_engine(engine_url(self.url))
        if self.url.scheme == "sqlite":

            @event.listens_for(self.engine.sync_engine, "connect")
            def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

        self._session = async_sessionmaker(self.engine, expire_on_commit=False)
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await self.refresh(force=True)
        return self

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    async def __aenter__(self) -> Registry:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def session(self) -> AsyncSession:
        if self._session is None:
            raise RegistryError("registry is not open")
        return self._session()

    def _audit(self, s: AsyncSession, action: str, **detail: object) -> None:
        s.add(AuditRow(at=datetime.now(UTC), actor=self.actor, action=action, detail=detail))

    # -- patients, hubs, devices ----------------------------------------------------------
    async def add_patient(self, patient_id: str, *, exist_ok: bool = False) -> None:
        async with self.session() as s, s.begin():
            if await s.get(Patient, patient_id) is not None:
                if exist_ok:
                    return
                raise RegistryError(f"patient {patient_id!r} already exists")
            s.add(Patient(id=patient_id, created_at=datetime.now(UTC)))
            self._audit(s, "patient.add", patient=patient_id)

    async def list_patients(self) -> list[Patient]:
        async with self.session() as s:
            return list((await s.scalars(select(Patient).order_by(Patient.id))).all())

    async def add_hub(
        self,
        hub_id: str,
        *,
        public_key: str | None = None,
        require_signature: bool = False,
        exist_ok: bool = False,
    ) -> None:
        async with self.session() as s, s.begin():
            if await s.get(Hub, hub_id) is not None:
                if exist_ok:
                    return
                raise RegistryError(f"hub {hub_id!r} already exists")
            s.add(
                Hub(
                    id=hub_id,
                    created_at=datetime.now(UTC),
                    public_key=public_key,
                    require_signature=require_signature,
                )
            )
            self._audit(s, "hub.add", hub=hub_id, signed=require_signature)
        await self.refresh(force=True)

    async def add_device(
        self,
        serial: str,
        kind: str,
        *,
        hub_id: str | None = None,
        model: str = "",
        exist_ok: bool = False,
    ) -> None:
        async with self.session() as s, s.begin():
            if hub_id is not None and await s.get(Hub, hub_id) is None:
                raise UnknownEntityError("hub", hub_id)
            if await s.get(Device, serial) is not None:
                if exist_ok:
                    return
                raise RegistryError(f"device {serial!r} already exists")
            s.add(
                Device(
                    serial=serial,
                    kind=kind,
                    model=model,
                    hub_id=hub_id,
                    created_at=datetime.now(UTC),
                )
            )
            self._audit(s, "device.add", serial=serial, kind=kind, hub=hub_id)

    async def list_devices(self) -> list[Device]:
        async with self.session() as s:
            return list((await s.scalars(select(Device).order_by(Device.serial))).all())

    # -- assignments ----------------------------------------------------------------------
    async def assign(
        self, serial: str, patient_id: str, valid_from: datetime, valid_to: datetime | None = None
    ) -> Assignment:
        valid_from = _utc(valid_from)
        valid_to = _utc(valid_to) if valid_to else None
        if valid_to is not None and valid_to <= valid_from:
            raise RegistryError("--to must be after --from")
        async with self.session() as s, s.begin():
            if await s.get(Device, serial) is None:
                raise UnknownEntityError("device", serial)
            if await s.get(Patient, patient_id) is None:
                raise UnknownEntityError("patient", patient_id)
            for row in (
                await s.scalars(select(AssignmentRow).where(AssignmentRow.serial == serial))
            ).all():
                other = Assignment(
                    row.serial,
                    row.patient_id,
                    _utc(row.valid_from),
                    _utc(row.valid_to) if row.valid_to else None,
                )
                if valid_from < (other.valid_to or FAR_FUTURE) and other.valid_from < (
                    valid_to or FAR_FUTURE
                ):
                    raise AssignmentOverlapError(serial, other)
            s.add(
                AssignmentRow(
                    serial=serial, patient_id=patient_id, valid_from=valid_from, valid_to=valid_to
                )
            )
            self._audit(
                s,
                "assign",
                serial=serial,
                patient=patient_id,
                valid_from=valid_from.isoformat(),
                valid_to=valid_to.isoformat() if valid_to else None,
            )
        await self.refresh(force=True)
        return Assignment(serial, patient_id, valid_from, valid_to)

    async def unassign(self, serial: str, at: datetime) -> int:
        """Close the open assignment of ``serial`` at ``at``; returns how many were closed."""
        at = _utc(at)
        async with self.session() as s, s.begin():
            result = await s.execute(
                update(AssignmentRow)
                .where(AssignmentRow.serial == serial, AssignmentRow.valid_to.is_(None))
                .values(valid_to=at)
            )
            closed = int(result.rowcount or 0)  # type: ignore[attr-defined]
            if closed:
                self._audit(s, "unassign", serial=serial, at=at.isoformat())
        await self.refresh(force=True)
        return closed

    async def assignments(self) -> list[Assignment]:
        async with self.session() as s:
            rows = (
                await s.scalars(
                    select(AssignmentRow).order_by(AssignmentRow.serial, AssignmentRow.valid_from)
                )
            ).all()
        return [
            Assignment(
                r.serial, r.patient_id, _utc(r.valid_from), _utc(r.valid_to) if r.valid_to else None
            )
            for r in rows
        ]

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload the assignment cache if the registry changed; True when reloaded."""
        async with self.session() as s:
            latest = (await s.scalar(select(func.max(AuditRow.id)))) or 0
        if not force and latest == self._audit_seen:
            return False
        by_serial: dict[str, list[Assignment]] = {}
        for a in await self.assignments():
            by_serial.setdefault(a.serial, []).append(a)
        self._by_serial = by_serial
        self._starts = {k: [a.valid_from for a in v] for k, v in by_serial.items()}
        async with self.session() as s:
            self._hub_of = {d.serial: d.hub_id for d in (await s.scalars(select(Device))).all()}
            self._hub_keys = {
                h.id: (h.public_key, h.require_signature)
                for h in (await s.scalars(select(Hub))).all()
            }
            self._thresholds = {
                p.id: (p.low_mg_dl, p.high_mg_dl) for p in (await s.scalars(select(Patient))).all()
            }
        self._audit_seen = latest
        return True

    def hub_key(self, hub_id: str) -> tuple[str | None, bool]:
        """(registered Ed25519 public key, signatures required) of a hub, from the cache."""
        return self._hub_keys.get(hub_id, (None, False))

    def thresholds(self, patient_id: str) -> tuple[float | None, float | None]:
        """Per-patient (low, high) alert thresholds in mg/dL; None = the default."""
        return self._thresholds.get(patient_id, (None, None))

    def patients_with_devices(self) -> set[str]:
        """Patients with an open-ended or current assignment (checked for stale data)."""
        return {
            a.patient_id for spans in self._by_serial.values() for a in spans if a.valid_to is None
        }

    async def set_thresholds(
        self, patient_id: str, *, low_mg_dl: float | None, high_mg_dl: float | None
    ) -> None:
        async with self.session() as s, s.begin():
            p = await s.get(Patient, patient_id)
            if p is None:
                raise UnknownEntityError("patient", patient_id)
            p.low_mg_dl, p.high_mg_dl = low_mg_dl, high_mg_dl
            self._audit(s, "patient.thresholds", patient=patient_id, low=low_mg_dl, high=high_mg_dl)
        await self.refresh(force=True)

    @property
    def version(self) -> int:
        """Grows with every registry change (the latest audit row id seen)."""
        return self._audit_seen

    def hub_of(self, serial: str) -> str | Literal[False] | None:
        """The hub a device is registered to (None: registered to no hub; False: unknown)."""
        return self._hub_of.get(serial, False)

    def link(self, serial: str, at: datetime) -> str | None:
        """The patient wearing ``serial`` at ``at`` (UTC), from the cache."""
        a = self.assignment_at(serial, at)
        return a.patient_id if a is not None else None

    def assignment_at(self, serial: str, at: datetime) -> Assignment | None:
        """The assignment of ``serial`` covering ``at`` (UTC), from the cache."""
        spans = self._by_serial.get(serial)
        if not spans:
            return None
        i = bisect.bisect_right(self._starts[serial], at) - 1
        if i >= 0 and spans[i].covers(at):
            return spans[i]
        return None

    # -- quarantine -----------------------------------------------------------------------
    async def quarantine(
        self, entries: Sequence[QuarantineEntry], *, max_payload: int = 65536
    ) -> None:
        if not entries:
            return
        now = datetime.now(UTC)
        async with self.session() as s, s.begin():
            s.add_all(
                QuarantineRow(
                    received_at=e.received_at or now,
                    reason=e.reason,
                    detail=e.detail[:2000],
                    topic=e.topic[:256],
                    hub_id=e.hub_id,
                    reading_key=e.reading_key,
                    device_serial=e.device_serial,
                    payload=e.payload[:max_payload],
                    payload_size=len(e.payload),
                )
                for e in entries
            )

    async def quarantine_list(
        self, *, reason: str | None = None, limit: int = 100
    ) -> list[QuarantineRow]:
        q = select(QuarantineRow).order_by(QuarantineRow.id.desc()).limit(limit)
        if reason:
            q = q.where(QuarantineRow.reason == reason)
        async with self.session() as s:
            return list((await s.scalars(q)).all())

    async def quarantine_get(self, qid: int) -> QuarantineRow | None:
        async with self.session() as s:
            return await s.get(QuarantineRow, qid)

    async def quarantine_counts(self) -> dict[str, int]:
        async with self.session() as s:
            rows = (
                await s.execute(
                    select(QuarantineRow.reason, func.count()).group_by(QuarantineRow.reason)
                )
            ).all()
        return {r[0]: int(r[1]) for r in rows}

    async def quarantine_pending(self, reason: str, limit: int = 10_000) -> list[QuarantineRow]:
        """Entries with ``reason`` not yet replayed, oldest first."""
        q = (
            select(QuarantineRow)
            .where(QuarantineRow.reason == reason, QuarantineRow.replayed_at.is_(None))
            .order_by(QuarantineRow.id)
            .limit(limit)
        )
        async with self.session() as s:
            return list((await s.scalars(q)).all())

    async def mark_replayed(self, qid: int) -> None:
        async with self.session() as s, s.begin():
            await s.execute(
                update(QuarantineRow)
                .where(QuarantineRow.id == qid)
                .values(replayed_at=datetime.now(UTC))
            )

    # -- parked readings ------------------------------------------------------------------
    async def park(self, readings: Iterable[ParkedReading]) -> None:
        # The same reading may arrive twice in one batch (redelivery): one row per key.
        rows = list({r.key: r for r in readings}.values())
        if not rows:
            return
        now = datetime.now(UTC)
        async with self.session() as s, s.begin():
            keys = [r.key for r in rows]
            existing = set(
                (await s.scalars(select(ParkedRow.key).where(ParkedRow.key.in_(keys)))).all()
            )
            s.add_all(
                ParkedRow(
                    key=r.key,
                    serial=r.serial,
                    time=r.time,
                    hub_id=r.hub_id,
                    parked_at=now,
                    reading=r.reading_json,
                )
                for r in rows
                if r.key not in existing
            )

    async def parked(self, limit: int = 10_000) -> list[ParkedReading]:
        async with self.session() as s:
            rows = (await s.scalars(select(ParkedRow).order_by(ParkedRow.time).limit(limit))).all()
        return [ParkedReading(r.key, r.serial, _utc(r.time), r.hub_id, r.reading) for r in rows]

    async def parked_count(self) -> int:
        async with self.session() as s:
            return int((await s.scalar(select(func.count()).select_from(ParkedRow))) or 0)

    async def unpark(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        async with self.session() as s, s.begin():
            await s.execute(delete(ParkedRow).where(ParkedRow.key.in_(list(keys))))
