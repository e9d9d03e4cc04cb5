"""SQLAlchemy 2 tables of the registry (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patients"
    # Pseudonymous only: never a name, birth date or national id.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    high_mg_dl: Mapped[float | None] = mapped_column(default=None)
    low_mg_dl: Mapped[float | None] = mapped_column(default=None)


class Hub(Base):
    __tablename__ = "hubs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    public_key: Mapped[str | None] = mapped_column(Text, default=None)
    require_signature: Mapped[bool] = mapped_column(default=False)


class Device(Base):
    __tablename__ = "devices"
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64), default="")
    hub_id: Mapped[str | None] = mapped_column(ForeignKey("hubs.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Uploader(Base):
    """A Nightscout uploader (phone app) bound to a hub id and a device serial.

    ``secret_hash`` is SHA-256 over the ``api-secret`` header value (itself SHA-1 of the
    secret): neither the secret nor the header value is stored (gateway/registry/uploaders.py).
    """

    __tablename__ = "uploaders"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    hub_id: Mapped[str] = mapped_column(ForeignKey("hubs.id"))
    serial: Mapped[str] = mapped_column(ForeignKey("devices.serial"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class AssignmentRow(Base):
    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(ForeignKey("devices.serial"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class AuditRow(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, object]] = mapped_column(JSON)


class QuarantineRow(Base):
    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(String(256))
    hub_id: Mapped[str | None] = mapped_column(String(64), default=None)
    reading_key: Mapped[str | None] = mapped_column(String(32), default=None)
    device_serial: Mapped[str | None] = mapped_column(String(64), default=None)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class ParkedRow(Base):
    """A valid reading whose device has no patient assignment at its time (yet)."""

    __tablename__ = "parked"
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    hub_id: Mapped[str] = mapped_column(String(64))
    parked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reading: Mapped[str] = mapped_column(Text)  # the contract Reading as JSON

    __table_args__ = (Index("ix_parked_serial_time", "serial", "time"),)


class AlertRow(Base):
    """One alert episode: started, maybe acknowledged, then cleared. At most one active
    episode per (patient, kind): the engine de-duplicates while it is active."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))  # urgent, warning, info
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), default=None)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    serial: Mapped[str | None] = mapped_column(String(64), default=None)
    value_mg_dl: Mapped[float | None] = mapped_column(default=None)
    detail: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_alerts_open", "patient_id", "kind", "cleared_at"),)
