"""Wire contract v1: topics and JSON payloads a hub publishes.

Rules that outside checks rely on (docs/contract.md documents every field):

* No patient identifier ever appears here: the hub knows devices, the gateway patients.
* A reading keeps the device's value and unit exactly as reported, the device's own
  clock, the hub's clock-offset estimate and the corrected UTC time side by side.
* ``key`` is derived only from the device's own fields, so the same record read twice,
  by two hubs or in two uploads, has the same key.

A change that breaks a consumer gets a new module, topic version and schema id.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# Final: mypy types each as its literal, which the models' schema fields require.
SCHEMA_ID: Final = "diatabase.readings/v1"
STATUS_SCHEMA_ID: Final = "diatabase.status/v1"
EVENT_SCHEMA_ID: Final = "diatabase.event/v1"
TOPIC_ROOT = "diatabase/v1"
MAX_READINGS_PER_BATCH = 1000

HubId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DeviceKindName = Literal["glucose_meter", "cgm", "insulin_pump"]
RecordKindName = Literal["bg", "cgm", "insulin_bolus", "insulin_basal", "insulin_event"]
SpecialValue = Literal["NaN", "NRes", "+INF", "-INF", "reserved"]
UnitName = Literal["kg/L", "mol/L", "mg/dL", "IU", "IU/h"]
# Constrained strings, shared by the models below and the ingester's TypedDict mirror
# (gateway/contract/v1_dicts.py), so both enforce one set of constraints.
ReadingKey = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Serial = Annotated[str, Field(min_length=1, max_length=64)]
DeviceText = Annotated[str, Field(max_length=64)]
FirmwareText = Annotated[str, Field(max_length=32)]
SequenceNumber = Annotated[int, Field(ge=0)]
RawHex = Annotated[str, Field(pattern=r"^([0-9a-f]{2})*$", max_length=512)]
Details = dict[str, str | int | float | bool | None]


def topic_readings(hub_id: str) -> str:
    return f"{TOPIC_ROOT}/hubs/{hub_id}/readings"


def topic_status(hub_id: str) -> str:
    return f"{TOPIC_ROOT}/hubs/{hub_id}/status"


def topic_events(hub_id: str) -> str:
    return f"{TOPIC_ROOT}/hubs/{hub_id}/events"


def hub_id_from_topic(topic: str) -> str | None:
    """The hub id in ``diatabase/v1/hubs/{hub_id}/...``, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == "diatabase" and parts[1] == "v1" and parts[2] == "hubs":
        return parts[3]
    return None


def reading_key(
    serial: str,
    record_kind: str,
    *,
    sequence: int | None,
    session_start: datetime | None,
    time_offset_min: int | None,
    device_time: datetime,
) -> str:
    """Stable idempotency key from the device's own fields (never the hub's clock).

    Meters and pumps: serial + kind + sequence number + device timestamp (the timestamp
    tells apart records after a sequence wrap or a meter reset). CGMs: serial + kind +
    session start + time offset. 32 hex digits of SHA-256 over a canonical string.
    """
    if session_start is not None and time_offset_min is not None:
        ident = f"s={session_start.replace(tzinfo=None).isoformat()}|o={time_offset_min}"
    elif sequence is not None:
        ident = f"n={sequence}|t={device_time.replace(tzinfo=None).isoformat()}"
    else:
        ident = f"t={device_time.replace(tzinfo=None).isoformat()}"
    canonical = f"v1|{serial}|{record_kind}|{ident}"
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


# The units each record kind may carry: a glucose value in insulin units (or the reverse)
# is a producer bug that must not reach storage. Pump events (reference time, reservoir,
# annunciations, ...) have no single amount: unit and value null, fields in `details`.
UNITS_BY_KIND: dict[str, frozenset[str | None]] = {
    "bg": frozenset({"kg/L", "mol/L", "mg/dL"}),
    "cgm": frozenset({"kg/L", "mol/L", "mg/dL"}),
    "insulin_bolus": frozenset({"IU"}),
    "insulin_basal": frozenset({"IU/h"}),
    "insulin_event": frozenset({None}),
}


def kind_problem(
    kind: str, unit: str | None, value: float | None, special: str | None
) -> str | None:
    """Why a reading's unit, value and special value do not fit its kind (None: they do)."""
    allowed = UNITS_BY_KIND[kind]
    if unit not in allowed:
        return f"unit {unit!r} does not fit kind {kind!r} (allowed: {sorted(map(str, allowed))})"
    if kind == "insulin_event" and (value is not None or special is not None):
        return "an insulin_event carries no value: its fields go in `details`"
    if value is not None and special is not None:
        return "`value` and `special` are exclusive"
    return None


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a time zone (UTC)")
    return value.astimezone(UTC)


def _naive(value: datetime) -> datetime:
    if value.tzinfo is not None:
        raise ValueError("device clock times are naive (no zone): send them as the device did")
    return value


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]
DeviceDateTime = Annotated[datetime, AfterValidator(_naive)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DeviceInfo(_Model):
    """The device a reading came from, as its Device Information Service says."""

    serial: Serial = Field(description="DIS Serial Number String")
    kind: DeviceKindName
    model: DeviceText = Field(default="", description="DIS Model Number String")
    manufacturer: DeviceText = Field(default="", description="DIS Manufacturer Name")
    firmware: FirmwareText = Field(default="", description="DIS Firmware Revision")


class Reading(_Model):
    """One device record, with the value and unit exactly as the device reported them."""

    key: ReadingKey = Field(description="idempotency key (reading_key)")
    device: DeviceInfo
    kind: RecordKindName
    sequence: SequenceNumber | None = Field(default=None, description="device sequence number")
    session_start: DeviceDateTime | None = Field(
        default=None, description="CGM session start, device clock"
    )
    time_offset_min: int | None = Field(
        default=None, description="minutes from base time (GLS, signed) or session start (CGM)"
    )
    device_time: DeviceDateTime = Field(description="the record's time on the device's clock")
    clock_offset_s: float = Field(description="hub estimate of UTC minus device clock, seconds")
    time: UtcDateTime = Field(description="corrected UTC time = device_time + clock_offset_s")
    # Finite only (the model's allow_inf_nan=False, checked in pydantic-core): a device's
    # NaN or infinity travels as `special`.
    value: float | None = Field(description="as reported; null with `special`")
    special: SpecialValue | None = Field(default=None, description="IEEE-11073 special value")
    unit: UnitName | None = Field(
        description="as reported; null only for `insulin_event` (pump events carry no amount)"
    )
    status: list[str] = Field(default_factory=list, description="device annunciations")
    details: Details = Field(default_factory=dict)
    raw: RawHex = ""

    @model_validator(mode="after")
    def _unit_fits_kind(self) -> Reading:
        problem = kind_problem(self.kind, self.unit, self.value, self.special)
        if problem is not None:
            raise ValueError(problem)
        return self


class Signature(_Model):
    """Ed25519 signature of the envelope bytes before this member (gateway.contract.signing)."""

    alg: Literal["ed25519"]
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="sha256(public key)[:16 hex]")
    value: str = Field(max_length=128, description="base64 signature")


class ReadingsBatch(_Model):
    """A batch a hub publishes to ``diatabase/v1/hubs/{hub_id}/readings`` (QoS 1)."""

    schema_id: Literal["diatabase.readings/v1"] = Field(default=SCHEMA_ID, alias="schema")
    hub_id: HubId
    sent_at: UtcDateTime = Field(description="hub clock (NTP-synchronised) at publish")
    batch_id: UUID
    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_PER_BATCH)
    signature: Signature | None = Field(default=None, description="the hub's signature, last")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DeviceStatus(_Model):
    serial: str
    kind: DeviceKindName
    connected: bool
    last_contact: UtcDateTime | None = None
    last_sync: UtcDateTime | None = None
    battery_pct: int | None = Field(default=None, ge=0, le=100)
    clock_offset_s: float | None = None
    cursor: int | None = None


class HubStatus(_Model):
    """Retained on ``.../status``; the Last Will publishes ``online: false``."""

    schema_id: Literal["diatabase.status/v1"] = Field(default=STATUS_SCHEMA_ID, alias="schema")
    hub_id: HubId
    online: bool
    version: str = ""
    sent_at: UtcDateTime | None = None
    uptime_s: float | None = None
    outbox_depth: int | None = None
    oldest_unsent_age_s: float | None = None
    outbox_full: bool = False
    devices: list[DeviceStatus] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HubEvent(_Model):
    """Something a hub wants operators to know (``.../events``, QoS 1)."""

    schema_id: Literal["diatabase.event/v1"] = Field(default=EVENT_SCHEMA_ID, alias="schema")
    hub_id: HubId
    sent_at: UtcDateTime
    event: str = Field(max_length=64)
    device_serial: str | None = None
    message: str = Field(default="", max_length=1024)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def json_schemas() -> dict[str, object]:
    """JSON Schema of every v1 payload, keyed by schema id."""
    return {
        SCHEMA_ID: ReadingsBatch.model_json_schema(by_alias=True),
        STATUS_SCHEMA_ID: HubStatus.model_json_schema(by_alias=True),
        EVENT_SCHEMA_ID: HubEvent.model_json_schema(by_alias=True),
    }
