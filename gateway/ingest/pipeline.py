"""Per-message processing: parse, validate, check, normalise, link. No I/O here.

A message becomes stored readings, parked readings (no patient assignment yet) and
quarantine entries, each bad part with its reason; good readings next to a bad one in the
same batch are kept. Nothing is dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, NamedTuple
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from drivers.units import to_mg_dl
from gateway.contract.signing import verify
from gateway.contract.v1 import (
    MAX_READINGS_PER_BATCH,
    SCHEMA_ID,
    HubId,
    Reading,
    Signature,
    UtcDateTime,
    hub_id_from_topic,
    kind_problem,
)
from gateway.contract.v1_dicts import BATCH, ReadingDict
from gateway.registry.service import ParkedReading, QuarantineEntry
from gateway.store.base import StoredReading

# Plausible glucose: outside this a value is stored but flagged for review.
PLAUSIBLE_MG_DL = (20.0, 600.0)
# A reading later than the hub's send time by more than this is not trusted.
MAX_FUTURE = timedelta(minutes=10)


class Reason(StrEnum):
    OVERSIZED = "oversized"
    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_TOPIC = "unknown_topic"
    HUB_MISMATCH = "hub_mismatch"
    INVALID_READING = "invalid_reading"
    FUTURE_TIME = "future_time"
    SPECIAL_VALUE = "special_value"
    STORE_REJECTED = "store_rejected"
    UNKNOWN_DEVICE = "unknown_device"
    BAD_SIGNATURE = "bad_signature"
    RATE_LIMITED = "rate_limited"
    UNSIGNED = "unsigned"
    DEVICE_HUB_MISMATCH = "device_hub_mismatch"


class Flag(StrEnum):
    OUT_OF_RANGE = "out_of_range"


@dataclass
class Outcome:
    stored: list[StoredReading] = field(default_factory=list)
    parked: list[ParkedReading] = field(default_factory=list)
    quarantined: list[QuarantineEntry] = field(default_factory=list)
    readings_in: int = 0


LinkFn = Callable[[str, datetime], str | None]
# serial -> the hub it is registered to; None: registered to no hub; False: not registered.
HubOfFn = Callable[[str], str | Literal[False] | None]
# hub id -> (registered public key or None, signatures required)
HubKeyFn = Callable[[str], tuple[str | None, bool]]


def _no_keys(_hub: str) -> tuple[str | None, bool]:
    return None, False


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    max_payload_bytes: int = 1024 * 1024


def _envelope_errors(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()[:5]
    )


def process(
    topic: str,
    payload: bytes,
    *,
    link: LinkFn,
    hub_of: HubOfFn,
    hub_key: HubKeyFn = _no_keys,
    config: PipelineConfig = PipelineConfig(),
) -> Outcome:
    out = Outcome()
    topic_hub = hub_id_from_topic(topic)

    def reject(reason: Reason, detail: str, *, hub: str | None = topic_hub) -> Outcome:
        out.quarantined.append(QuarantineEntry(reason.value, detail, topic, payload, hub_id=hub))
        return out

    if len(payload) > config.max_payload_bytes:
        return reject(Reason.OVERSIZED, f"{len(payload)} bytes > {config.max_payload_bytes}")
    if topic_hub is None:
        return reject(Reason.UNKNOWN_TOPIC, "not a diatabase/v1/hubs/{hub}/readings topic")
    # Fast path: the whole batch (envelope and every reading) in one pass of pydantic-core
    # over the bytes, into dicts (v1_dicts: the models' constraints, never looser). What
    # it rejects goes the per-part way, which finds the bad parts and keeps their good
    # neighbours; a reading it accepts but that is not simply stored goes the model's way.
    try:
        whole = BATCH.validate_json(payload)
    except ValidationError:
        whole = None
    if whole is not None:
        head = _Head.of(whole["hub_id"], whole["sent_at"].astimezone(UTC), str(whole["batch_id"]))
        checked = _check_head(head, topic_hub, payload, hub_key, reject)
        if isinstance(checked, Outcome):
            return checked
        if checked:
            head = head._replace(signed_by=checked)
        out.readings_in = len(whole["readings"])
        items = _LazyItems(payload)
        for i, d in enumerate(whole["readings"]):
            _route_dict(d, items, i, head, topic, out, link, hub_of)
        return out
    return _process_parts(topic, payload, topic_hub, hub_key, reject, out, link, hub_of)


def _process_parts(
    topic: str,
    payload: bytes,
    topic_hub: str,
    hub_key: HubKeyFn,
    reject: Callable[[Reason, str], Outcome],
    out: Outcome,
    link: LinkFn,
    hub_of: HubOfFn,
) -> Outcome:
    """Envelope first, then each reading on its own through the v1 models."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        return reject(Reason.MALFORMED_JSON, str(err)[:300])
    if not isinstance(doc, dict):
        return reject(Reason.SCHEMA_VIOLATION, "payload is not a JSON object")
    raw_readings = doc.get("readings")
    # The envelope is validated on its own, so one bad reading cannot sink its neighbours.
    try:
        head = _validate_envelope(doc)
    except ValidationError as err:
        return reject(Reason.SCHEMA_VIOLATION, _envelope_errors(err))
    checked = _check_head(head, topic_hub, payload, hub_key, reject)
    if isinstance(checked, Outcome):
        return checked
    head = head._replace(signed_by=checked)
    assert isinstance(raw_readings, list)
    out.readings_in = len(raw_readings)
    for item in raw_readings:
        _reading(item, head, topic, out, link, hub_of)
    return out


def _check_head(
    head: _Head,
    topic_hub: str,
    payload: bytes,
    hub_key: HubKeyFn,
    reject: Callable[[Reason, str], Outcome],
) -> Outcome | str:
    """The envelope-level checks after validation: an Outcome when the batch is rejected,
    else the key id of its verified signature ("" when unsigned)."""
    if head.hub_id != topic_hub:
        return reject(
            Reason.HUB_MISMATCH, f"payload hub_id {head.hub_id!r} on topic of hub {topic_hub!r}"
        )
    public_key, required = hub_key(head.hub_id)
    verdict = verify(payload, public_key)
    if verdict.signed and not verdict.valid:
        return reject(Reason.BAD_SIGNATURE, verdict.reason)
    if not verdict.signed and required:
        return reject(Reason.UNSIGNED, f"hub {head.hub_id} must sign its batches")
    return verdict.key_id or ""


class _LazyItems:
    """The readings of a batch as the hub sent them, parsed only when one is needed
    (a reading set aside is kept as it arrived, not as re-serialised)."""

    __slots__ = ("_items", "_payload")

    def __init__(self, payload: bytes) -> None:
        self._payload = payload
        self._items: list[Any] | None = None

    def __getitem__(self, i: int) -> Any:
        if self._items is None:
            self._items = json.loads(self._payload)["readings"]
        return self._items[i]


def _validate_envelope(envelope: dict[str, Any]) -> _Head:
    """Validate everything but the readings; raises ValidationError."""
    batch = _EnvelopeOnly.model_validate({k: v for k, v in envelope.items() if k != "readings"})
    readings = envelope.get("readings")
    if not isinstance(readings, list) or not readings:
        raise _list_error("readings must be a non-empty list")
    if len(readings) > MAX_READINGS_PER_BATCH:
        raise _list_error(f"readings has more than {MAX_READINGS_PER_BATCH} items")
    return _Head.of(batch.hub_id, batch.sent_at, str(batch.batch_id))


def _reading(
    item: Any, head: _Head, topic: str, out: Outcome, link: LinkFn, hub_of: HubOfFn
) -> None:
    # A rejected reading is kept as a one-reading batch, so a replay runs the whole pipeline.
    try:
        r = Reading.model_validate(item)
    except ValidationError as err:
        key = (
            item.get("key") if isinstance(item, dict) and isinstance(item.get("key"), str) else None
        )
        out.quarantined.append(
            QuarantineEntry(
                Reason.INVALID_READING.value,
                _envelope_errors(err),
                topic,
                _one(head, item),
                head.hub_id,
                key,
            )
        )
        return
    _route(r, (item,), 0, head, topic, out, link, hub_of)


def _route_dict(
    d: ReadingDict,
    items: _LazyItems,
    index: int,
    head: _Head,
    topic: str,
    out: Outcome,
    link: LinkFn,
    hub_of: HubOfFn,
) -> None:
    """A reading the fast path accepted: stored here when it plainly is (the common case);
    anything else (no value, a kind/unit misfit, a device or time problem, no patient) goes
    through the v1 model and :func:`_route`, which hold every other rule."""
    serial = d["device"]["serial"]
    value = d["value"]
    kind = d["kind"]
    unit = d["unit"]
    time = d["time"].astimezone(UTC)
    registered = hub_of(serial)
    patient = (
        link(serial, time)
        if value is not None
        and (registered is None or registered == head.hub_id)
        and time <= head.latest
        and kind_problem(kind, unit, value, d.get("special")) is None
        else None
    )
    if patient is None:
        _reading(items[index], head, topic, out, link, hub_of)
        return
    status = d.get("status")
    details = d.get("details")
    out.stored.append(
        _stored(
            d["key"],
            serial,
            d["device"]["kind"],
            kind,
            time,
            d["device_time"],
            d["clock_offset_s"],
            value,
            unit,
            tuple(status) if status else (),
            details or {},
            d.get("raw", ""),
            patient,
            head.hub_id,
            head.batch_id,
            head.signed_by,
        )
    )


def _route(
    r: Reading,
    items: _LazyItems | tuple[Any, ...],
    index: int,
    head: _Head,
    topic: str,
    out: Outcome,
    link: LinkFn,
    hub_of: HubOfFn,
) -> None:
    """A valid reading: quarantined (as a one-reading batch of ``items[index]``, the
    reading as it arrived), parked or stored."""
    registered = hub_of(r.device.serial)
    if registered is False or (registered is not None and registered != head.hub_id):
        reason = Reason.UNKNOWN_DEVICE if registered is False else Reason.DEVICE_HUB_MISMATCH
        detail = (
            f"device {r.device.serial} is not registered"
            if registered is False
            else f"device {r.device.serial} belongs to hub {registered}, not {head.hub_id}"
        )
        out.quarantined.append(
            QuarantineEntry(
                reason.value,
                detail,
                topic,
                _one(head, items[index]),
                head.hub_id,
                r.key,
                device_serial=r.device.serial,
            )
        )
        return
    if r.time > head.latest:
        out.quarantined.append(
            QuarantineEntry(
                Reason.FUTURE_TIME.value,
                f"time {r.time.isoformat()} is more than {MAX_FUTURE} after sent_at "
                f"{head.sent_at.isoformat()}",
                topic,
                _one(head, items[index]),
                head.hub_id,
                r.key,
            )
        )
        return
    if r.value is None and r.kind != "insulin_event":
        out.quarantined.append(
            QuarantineEntry(
                Reason.SPECIAL_VALUE.value,
                f"device reported {r.special or 'no value'}",
                topic,
                _one(head, items[index]),
                head.hub_id,
                r.key,
            )
        )
        return
    patient = link(r.device.serial, r.time)
    if patient is None:
        out.parked.append(
            ParkedReading(r.key, r.device.serial, r.time, head.hub_id, r.model_dump_json())
        )
        return
    out.stored.append(normalise(r, patient, head.hub_id, head.batch_id, head.signed_by))


def _one(head: _Head, item: Any) -> bytes:
    """A single-reading batch: replaying it later goes through the whole pipeline."""
    return json.dumps(
        {
            "schema": SCHEMA_ID,
            "hub_id": head.hub_id,
            "sent_at": head.sent_at.isoformat(),
            "batch_id": head.batch_id,
            "readings": [item],
        },
        separators=(",", ":"),
        default=str,
    ).encode()


def normalise(
    r: Reading, patient_id: str, hub_id: str, batch_id: str, signed_by: str = ""
) -> StoredReading:
    """Canonical mg/dL next to the value and unit as reported; flags, never drops."""
    return _stored(
        r.key,
        r.device.serial,
        r.device.kind,
        r.kind,
        r.time if r.time.tzinfo is UTC else r.time.astimezone(UTC),
        r.device_time,
        r.clock_offset_s,
        r.value,
        r.unit,
        tuple(r.status) if r.status else (),
        dict(r.details) if r.details else {},
        r.raw,
        patient_id,
        hub_id,
        batch_id,
        signed_by,
    )


def _stored(
    key: str,
    serial: str,
    device_kind: str,
    kind: str,
    time: datetime,
    device_time: datetime,
    clock_offset_s: float,
    value: float | None,
    unit: str | None,
    status: tuple[str, ...],
    details: dict[str, str | int | float | bool | None],
    raw: str,
    patient_id: str,
    hub_id: str,
    batch_id: str,
    signed_by: str,
) -> StoredReading:
    """The one place a reading is normalised: both routes above end here."""
    mg = None
    if value is not None:
        if unit == "mg/dL":  # already canonical: to_mg_dl would return the same float
            mg = float(value)
        elif unit in {"kg/L", "mol/L"}:
            mg = to_mg_dl(value, unit)
    flags: tuple[str, ...] = ()
    if mg is not None:
        if not mg.is_integer():  # round() goes through the decimal digits: ~1 us a reading
            mg = round(mg, 3)
        if not math.isfinite(mg) or not PLAUSIBLE_MG_DL[0] <= mg <= PLAUSIBLE_MG_DL[1]:
            flags = (Flag.OUT_OF_RANGE.value,)
    # positional, in field order: the hot path (a NamedTuple built from keywords is slower)
    return StoredReading(
        key,
        patient_id,
        hub_id,
        serial,
        device_kind,
        kind,
        time,
        device_time,
        clock_offset_s,
        value,
        unit or "",
        mg,
        flags,
        status,
        details,
        raw,
        batch_id,
        signed_by,
    )


def reading_from_parked(p: ParkedReading) -> Reading:
    return Reading.model_validate_json(p.reading_json)


class _Head(NamedTuple):
    """A batch's envelope, as its readings need it (a NamedTuple: built once a message)."""

    hub_id: str
    sent_at: datetime
    batch_id: str
    latest: datetime  # sent_at + MAX_FUTURE: a reading after this is quarantined
    signed_by: str = ""

    @classmethod
    def of(cls, hub_id: str, sent_at: datetime, batch_id: str) -> _Head:
        return cls(hub_id, sent_at, batch_id, sent_at + MAX_FUTURE)


class _EnvelopeOnly(BaseModel):
    """The batch envelope without its readings (validated one by one)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_id: Literal["diatabase.readings/v1"] = Field(alias="schema")
    hub_id: HubId
    sent_at: UtcDateTime
    batch_id: UUID
    signature: Signature | None = None


def _list_error(msg: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "ReadingsBatch",
        [
            InitErrorDetails(
                type=PydanticCustomError("readings", msg), loc=("readings",), input=None
            )
        ],
    )
