"""Typed records that device drivers yield: the seam between ``drivers`` and ``edge``.

A record keeps what the device said (value and unit as reported, its own clock, its
own sequence numbers) next to what the hub measured at sync time (the device clock
offset). Nothing here is corrected or converted: that is the gateway's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class DeviceKind(StrEnum):
    GLUCOSE_METER = "glucose_meter"
    CGM = "cgm"
    INSULIN_PUMP = "insulin_pump"


class RecordKind(StrEnum):
    """What a record measures; part of the idempotency key, so never rename a value."""

    BLOOD_GLUCOSE = "bg"  # GLS Glucose Measurement (fingerstick)
    CGM_GLUCOSE = "cgm"  # CGMS CGM Measurement
    INSULIN_BOLUS = "insulin_bolus"  # IDS history: bolus delivered
    INSULIN_BASAL = "insulin_basal"  # IDS history: delivered basal rate changed
    INSULIN_EVENT = "insulin_event"  # IDS history: any other event kept for audit


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who a record came from, read from the Device Information Service."""

    address: str
    kind: DeviceKind
    serial: str
    model: str = ""
    manufacturer: str = ""
    firmware: str = ""


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One reading or event as the device reported it.

    ``device_time`` is the device's own wall clock (naive; devices rarely know their zone).
    ``clock_offset_s`` is the hub's estimate of ``UTC - device clock`` at sync time, so
    ``device_time + clock_offset_s`` is the corrected UTC time.
    ``cursor`` is the device's sync position after this record (GLS sequence number, CGM
    time offset, IDS history sequence number): the edge commits it with the record.
    """

    device: DeviceIdentity
    kind: RecordKind
    device_time: datetime
    clock_offset_s: float
    value: float | None
    unit: str
    cursor: int
    sequence: int | None = None
    session_start: datetime | None = None
    time_offset_min: int | None = None
    special: str | None = None  # "NaN", "NRes", "+INF", "-INF", "reserved" when value is None
    status: tuple[str, ...] = ()
    details: Mapping[str, str | int | float | bool | None] = field(default_factory=dict)
    raw: bytes = b""
