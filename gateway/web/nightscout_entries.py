"""Nightscout API v1 entries: validation and mapping to contract v1 readings. No I/O.

What the apps send (facts from their public sources; docs/nightscout.md has the table):
``date`` is epoch milliseconds, an integer from xDrip+ and AndroidAPS, a float with a
fraction from Loop; ``sgv`` an integer (xDrip+) or a float (AndroidAPS, Loop), always
mg/dL; ``dateString`` local time with a ``+0100`` offset (xDrip+) or UTC ``Z``; plus
``direction``, ``noise``, ``filtered``, ``unfiltered``, ``rssi``, ``delta``, ``trend``,
``trendRate``, ``device``, ``utcOffset``, ``identifier``, ``_id``, ``isValid`` and more.
Unknown fields are ignored, as Nightscout stores them without reading them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.contract.v1 import DeviceInfo, Reading, reading_key

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Plausible entry times: a `date` outside is a unit mistake (seconds, microseconds).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_EARLIEST_MS = (EARLIEST - EPOCH) // timedelta(milliseconds=1)
_LATEST_MS = (LATEST - EPOCH) // timedelta(milliseconds=1)
# Dexcom-style error codes travel as sgv values below 39 (39 itself is "LOW", a real
# value clamped at the sensor's floor); Nightscout draws them as errors, never as glucose.
SGV_ERROR_CODE_BELOW = 39.0
MAX_MG_DL = 1000.0
MG_DL_UNITS = {"mg/dl", "mgdl", "mg"}
_DETAIL_NUMBERS = ("noise", "filtered", "unfiltered", "rssi", "delta", "trendRate", "utcOffset")
_DETAIL_STRINGS = ("direction", "identifier", "app")


class EntryError(ValueError):
    """One entry the API refuses, with why (goes into the 400 body and the quarantine)."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, populate_by_name=True)

    type: str | None = Field(default=None, max_length=32)
    date: float | None = None
    dateString: str | None = Field(default=None, max_length=64)
    sgv: float | None = None
    mbg: float | None = None
    units: str | None = Field(default=None, max_length=16)
    device: str | None = Field(default=None, max_length=256)
    direction: str | None = Field(default=None, max_length=32)
    noise: float | None = None
    filtered: float | None = None
    unfiltered: float | None = None
    rssi: float | None = None
    delta: float | None = None
    trend: int | Annotated[str, Field(max_length=16)] | None = None
    trendRate: float | None = None
    utcOffset: float | None = None
    identifier: str | None = Field(default=None, max_length=64)
    id_: str | None = Field(default=None, alias="_id", max_length=64)
    app: str | None = Field(default=None, max_length=32)
    isValid: bool | None = None
    isCalibration: bool | None = None

    @field_validator("date", "sgv", "mbg", mode="before")
    @classmethod
    def _not_bool(cls, v: object) -> object:
        # lax float parsing would read true as 1 mg/dL (or 1 ms)
        if isinstance(v, bool):
            raise ValueError("must be a number, not true/false")
        return v

    @model_validator(mode="after")
    def _has_value(self) -> _Entry:
        if self.type is None and self.sgv is None and self.mbg is None:
            raise ValueError("entry has no type and no sgv or mbg value")
        if self.date is None and self.dateString is None:
            raise ValueError("entry has neither date (epoch ms) nor dateString")
        return self


@dataclass(frozen=True, slots=True)
class Entry:
    """A validated entry: ``kind`` "sgv" or "mbg" carry a value; "ignored" do not."""

    kind: Literal["sgv", "mbg", "ignored"]
    type: str
    time_ms: int | None
    value: float | None
    device: str
    details: dict[str, str | int | float | bool | None]


def _time_ms(e: _Entry) -> int:
    if e.date is not None:
        # Loop sends a float with a fraction of a millisecond: the key needs one integer.
        ms = math.floor(e.date)
    else:
        assert e.dateString is not None
        try:
            dt = datetime.fromisoformat(e.dateString.strip().replace(" ", "T"))
        except ValueError:
            raise EntryError(f"dateString {e.dateString!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            raise EntryError(f"dateString {e.dateString!r} has no UTC offset")
        ms = (dt - EPOCH) // timedelta(milliseconds=1)
    if not _EARLIEST_MS <= ms < _LATEST_MS:
        hint = " (seconds instead of milliseconds?)" if ms < _EARLIEST_MS else ""
        raise EntryError(
            f"date {ms} is not a plausible time (not in {EARLIEST.year}..{LATEST.year}){hint}"
        )
    return ms


def parse_entry(raw: Any) -> Entry:
    """Validate one uploaded entry; raises EntryError with a reason a person can act on."""
    if not isinstance(raw, dict):
        raise EntryError(f"an entry must be a JSON object, got {type(raw).__name__}")
    try:
        e = _Entry.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "entry"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise EntryError(f"{where}: {first['msg'].removeprefix('Value error, ')}{more}") from None
    kind_name = e.type or ("sgv" if e.sgv is not None else "mbg")
    details: dict[str, str | int | float | bool | None] = {}
    for name in _DETAIL_NUMBERS:
        v = getattr(e, name)
        if v is not None:
            details[name] = int(v) if float(v).is_integer() else v
    for name in _DETAIL_STRINGS:
        v = getattr(e, name)
        if v is not None:
            details[name] = v
    if e.trend is not None:
        details["trend"] = e.trend
    if e.id_ is not None:
        details["ns_id"] = e.id_
    device = (e.device or "").strip()
    if kind_name not in {"sgv", "mbg"} or e.isValid is False:
        # cal, sensor, etc.: no glucose value; isValid false: the app withdrew the value
        return Entry("ignored", kind_name, None, None, device, details)
    value = e.sgv if kind_name == "sgv" else e.mbg
    if value is None:
        raise EntryError(f"{kind_name} entry without its {kind_name} value")
    if e.units is not None and e.units.strip().lower() not in MG_DL_UNITS:
        raise EntryError(f"units {e.units!r}: Nightscout entries carry mg/dL only")
    if not 0 <= value <= MAX_MG_DL:
        raise EntryError(f"{kind_name} {value:g} is outside 0..{MAX_MG_DL:g} mg/dL")
    return Entry(kind_name, kind_name, _time_ms(e), value, device, details)  # type: ignore[arg-type]


def entry_id(key: str) -> str:
    """The ``_id`` the API reports: 24 hex digits (a Mongo ObjectId's length) of our key,
    so the same reading has the same id however often it is uploaded."""
    return key[:24]


def to_reading(entry: Entry, *, serial: str, uploader: str) -> Reading:
    """The contract v1 reading of a valid sgv or mbg entry, keyed by serial + kind + time.

    The device clock is the uploader's UTC ``date`` (clock offset 0): a phone app reports
    UTC epoch milliseconds and nothing of the sensor's own clock."""
    assert entry.kind in {"sgv", "mbg"} and entry.time_ms is not None
    at = EPOCH + timedelta(milliseconds=entry.time_ms)
    device_time = at.replace(tzinfo=None)
    kind: Literal["cgm", "bg"] = "cgm" if entry.kind == "sgv" else "bg"
    value: float | None = entry.value
    special: Literal["NRes"] | None = None
    details = {"source": "nightscout", "uploader": uploader, **entry.details}
    if entry.device:
        details["ns_device"] = entry.device[:128]
    if kind == "cgm" and value is not None and value < SGV_ERROR_CODE_BELOW:
        # an error code, not glucose: the ingester quarantines it as special_value
        details["ns_error_code"] = int(value)
        value, special = None, "NRes"
    return Reading(
        key=reading_key(
            serial,
            kind,
            sequence=None,
            session_start=None,
            time_offset_min=None,
            device_time=device_time,
        ),
        device=DeviceInfo(
            serial=serial,
            kind="cgm" if kind == "cgm" else "glucose_meter",
            model=entry.device[:64],
        ),
        kind=kind,
        device_time=device_time,
        clock_offset_s=0.0,
        time=at,
        value=value,
        special=special,
        unit="mg/dL",
        details=details,
    )
