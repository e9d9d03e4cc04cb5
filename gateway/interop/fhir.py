"""FHIR R4 export: one patient's stored glucose readings (and their CGM summary) as a
Bundle of Observations.

Pure: stored readings in, JSON-ready dicts out, no I/O. The codes follow LOINC and the
HL7 "Continuous Glucose Monitoring" implementation guide 1.0.0 (STU 1, on R4); every
decision (units, identifiers, special values, flags) is written down in docs/fhir.md.
Everything here is deterministic: the same readings give the same bytes.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from drivers.units import to_mmol_l
from gateway.agp import AgpSummary, days_with_data, summarise
from gateway.ingest.pipeline import PLAUSIBLE_MG_DL, Flag
from gateway.report import cgm_points, gmi_note
from gateway.store.base import StoredReading

Resource = dict[str, Any]

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CGM_IG: Final = "http://hl7.org/fhir/uv/cgm/StructureDefinition/"
# Our own identifier systems (docs/fhir.md): the idempotency key a reading has from the
# hub to the store, the device's own serial number, the registry's pseudonym, store flags.
READING_KEY_SYSTEM: Final = "urn:diatabase:reading-key"
DEVICE_SERIAL_SYSTEM: Final = "urn:diatabase:device-serial"
PATIENT_SYSTEM: Final = "urn:diatabase:patient"
FLAG_SYSTEM: Final = "urn:diatabase:reading-flag"
# Resource ids are UUIDv5 in this namespace (= uuid5(NAMESPACE_URL, "urn:diatabase:fhir")),
# so a reading has the same Observation.id in every export and fullUrl can be urn:uuid.
ID_NAMESPACE: Final = uuid.UUID("2d57c4b7-b966-5205-9ed3-e5693b973a99")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

UnitFamily = Literal["mass", "molar"]
# How each reported unit maps: kg/L (GLS) and mg/dL (CGMS) are mass concentrations,
# mol/L (GLS) a molar one; the family decides the LOINC code, never the other way round.
UNIT_FAMILY: Final[dict[str, UnitFamily]] = {
    "mg/dL": "mass",
    "kg/L": "mass",
    "mmol/L": "molar",
    "mol/L": "molar",
}


class ExportError(Exception):
    """A stored reading cannot be expressed in FHIR as it stands."""


class UnsupportedReadingError(ExportError):
    def __init__(self, key: str, kind: str, unit: str) -> None:
        super().__init__(f"reading {key}: no FHIR glucose code for kind {kind!r} in {unit!r}")
        self.key, self.kind, self.unit = key, kind, unit


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    display: str | None = None  # LOINC display, only where checked against LOINC / the IG

    def coding(self, system: str = LOINC) -> dict[str, str]:
        out = {"system": system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out


@dataclass(frozen=True, slots=True)
class GlucoseCode:
    code: Code
    ucum: str  # Quantity.code
    unit: str  # Quantity.unit: the human form the CGM IG fixes (mg/dl, mmol/l)
    profile: str | None = None


READING_CODES: Final[dict[tuple[str, UnitFamily], GlucoseCode]] = {
    ("bg", "mass"): GlucoseCode(
        Code("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer"), "mg/dL", "mg/dl"
    ),
    ("bg", "molar"): GlucoseCode(
        Code("14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer"),
        "mmol/L",
        "mmol/l",
    ),
    ("cgm", "mass"): GlucoseCode(
        Code("99504-3", "Glucose [Mass/volume] in Interstitial fluid"),
        "mg/dL",
        "mg/dl",
        CGM_IG + "cgm-sensor-reading-mass-per-volume",
    ),
    ("cgm", "molar"): GlucoseCode(
        Code("105272-9", "Glucose [Moles/volume] in Interstitial fluid"),
        "mmol/L",
        "mmol/l",
        CGM_IG + "cgm-sensor-reading-moles-per-volume",
    ),
}

# CGM summary (IG 1.0.0): a panel observation whose members are the figures below; the
# five times in ranges are components of one 106793-3 observation.
SUMMARY_PANEL = Code("107931-8", "Continuous glucose monitoring summary panel - Reporting Period")
MEAN_GLUCOSE = Code(
    "97507-8", "Average glucose [Mass/volume] in Interstitial fluid during Reporting Period"
)
TIMES_IN_RANGES = Code("106793-3", "Continuous glucose monitoring time in ranges panel")
GMI = Code("97506-0")
CV = Code("104638-2")
DAYS_OF_WEAR = Code(
    "104636-6", "Days continuous glucose monitor device worn [#] Reporting Period Estimated"
)
SENSOR_ACTIVE = Code("104637-4")
# AgpSummary.time_in_ranges_pct keys -> component codes, very low first.
RANGE_CODES: Final[dict[str, Code]] = {
    "very_low": Code(
        "104642-4",
        "Time below range, very low in Reporting Period Interstitial fluid by calculation",
    ),
    "low": Code(
        "104641-6", "Time below range, low in Reporting Period Interstitial fluid by calculation"
    ),
    "in_range": Code(
        "97510-2",
        "Glucose measurements in range out of Total glucose measurements during reporting period",
    ),
    "high": Code(
        "104640-8", "Time above range, high in Reporting Period Interstitial fluid by calculation"
    ),
    "very_high": Code(
        "104639-0",
        "Time above range, very high in Reporting Period Interstitial fluid by calculation",
    ),
}


@dataclass(frozen=True, slots=True)
class CgmSummary:
    """The AGP of the window (the same numbers as ``diatabase report agp``) and days of wear."""

    agp: AgpSummary
    days_worn: int


def cgm_summary(readings: Iterable[StoredReading], start: datetime, end: datetime) -> CgmSummary:
    points = cgm_points(readings)
    return CgmSummary(
        summarise(points, start, end), days_with_data((t for t, _ in points), start, end)
    )


def resource_id(resource_type: str, natural_key: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{resource_type}|{natural_key}"))


def full_url(resource: Resource) -> str:
    return f"urn:uuid:{resource['id']}"


def fhir_datetime(dt: datetime) -> str:
    """UTC with a Z; milliseconds only when the time has them (the stores keep ms)."""
    if dt.tzinfo is None:
        raise ExportError(f"naive time {dt.isoformat()} (expected UTC)")
    utc = dt.astimezone(UTC)
    spec = "milliseconds" if utc.microsecond else "seconds"
    return utc.isoformat(timespec=spec).replace("+00:00", "Z")


def subject(patient_id: str) -> dict[str, Any]:
    """The pseudonym as a Patient reference (when it is a valid FHIR id) and identifier."""
    ref: dict[str, Any] = {"identifier": {"system": PATIENT_SYSTEM, "value": patient_id}}
    if _FHIR_ID.match(patient_id):
        ref = {"reference": f"Patient/{patient_id}", **ref}
    return ref


def _category() -> list[dict[str, Any]]:
    return [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}]


def glucose_code(r: StoredReading) -> GlucoseCode:
    family = UNIT_FAMILY.get(r.unit)
    code = READING_CODES.get((r.kind, family)) if family else None
    if code is None:
        raise UnsupportedReadingError(r.key, r.kind, r.unit)
    return code


def _absent_reason(value: float | None) -> str:
    if value is None:
        return "unknown"
    if math.isnan(value):
        return "not-a-number"
    if math.isinf(value):
        return "positive-infinity" if value > 0 else "negative-infinity"
    return "error"  # a finite report whose conversion failed


def reading_value(r: StoredReading) -> float | None:
    """The number in the reading's unit family: mg/dL as stored (the same value the AGP
    uses), or mmol/L converted from what the device reported. None: no finite value."""
    if r.value is None or not math.isfinite(r.value):
        return None
    if UNIT_FAMILY.get(r.unit) == "molar":
        return to_mmol_l(r.value, r.unit)
    mg = r.mg_dl
    return mg if mg is not None and math.isfinite(mg) else None


def _flag_note(flag: str) -> str:
    if flag == Flag.OUT_OF_RANGE.value:
        low, high = PLAUSIBLE_MG_DL
        return (
            f"Outside the plausible range {low:g}-{high:g} mg/dL: stored as the device "
            "reported it and flagged for review."
        )
    return f"Flagged {flag!r} by the gateway."


def device_resource(serial: str, device_kind: str, model: str = "") -> Resource:
    name = model or f"{device_kind.replace('_', ' ')} {serial}"
    dev: Resource = {"resourceType": "Device", "id": resource_id("Device", serial)}
    if device_kind == "cgm":
        dev["meta"] = {"profile": [CGM_IG + "cgm-device"]}
    dev["identifier"] = [{"system": DEVICE_SERIAL_SYSTEM, "value": serial}]
    dev["serialNumber"] = serial
    dev["deviceName"] = [{"name": name, "type": "user-friendly-name"}]
    if model:
        dev["modelNumber"] = model
    return dev


def reading_observation(r: StoredReading, device: Resource) -> Resource:
    if not r.key:
        raise ExportError(f"reading of {r.serial} at {r.time.isoformat()} has no key")
    code = glucose_code(r)
    obs: Resource = {"resourceType": "Observation", "id": resource_id("Observation", r.key)}
    meta: dict[str, Any] = {}
    if code.profile:
        meta["profile"] = [code.profile]
    if r.flags:
        meta["tag"] = [{"system": FLAG_SYSTEM, "code": f} for f in r.flags]
    if meta:
        obs["meta"] = meta
    obs |= {
        "identifier": [{"system": READING_KEY_SYSTEM, "value": r.key}],
        "status": "final",
        "category": _category(),
        "code": {"coding": [code.code.coding()]},
        "subject": subject(r.patient_id),
        "effectiveDateTime": fhir_datetime(r.time),
        "device": {"reference": full_url(device)},
    }
    value = reading_value(r)
    if value is None:
        reported_ok = r.value is not None and math.isfinite(r.value)
        reason = _absent_reason(r.mg_dl if reported_ok else r.value)
        obs["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT_REASON, "code": reason}]}
    else:
        obs["valueQuantity"] = {
            "value": value,
            "unit": code.unit,
            "system": UCUM,
            "code": code.ucum,
        }
    notes = [_flag_note(f) for f in r.flags]
    if r.status:
        notes.append("Device status: " + ", ".join(r.status) + ".")
    if notes:
        obs["note"] = [{"text": n} for n in notes]
    return obs


def _percent(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "%", "system": UCUM, "code": "%"}


def summary_observations(
    patient_id: str, summary: CgmSummary, start: datetime, end: datetime
) -> list[Resource]:
    """The CGM IG summary: the panel first, then its members. A figure the AGP withholds
    (GMI below 70 % CGM activity) is there with a dataAbsentReason and the reason why,
    and then neither it nor the panel claims the IG profile it no longer meets."""
    s = summary.agp
    window = f"{patient_id}|{fhir_datetime(start)}|{fhir_datetime(end)}"

    def obs(code: Code, profile: str | None, **body: Any) -> Resource:
        out: Resource = {
            "resourceType": "Observation",
            "id": resource_id("Observation", f"{window}|{code.code}"),
        }
        if profile:
            out["meta"] = {"profile": [CGM_IG + profile]}
        return out | {
            "status": "final",
            "category": _category(),
            "code": {"coding": [code.coding()]},
            "subject": subject(patient_id),
            "effectivePeriod": {"start": fhir_datetime(start), "end": fhir_datetime(end)},
            **body,
        }

    members: list[Resource] = []
    if s.mean_mg_dl is not None:
        mean = {"value": s.mean_mg_dl, "unit": "mg/dl", "system": UCUM, "code": "mg/dL"}
        members.append(
            obs(MEAN_GLUCOSE, "cgm-summary-mean-glucose-mass-per-volume", valueQuantity=mean)
        )
    components = [
        {"code": {"coding": [c.coding()]}, "valueQuantity": _percent(s.time_in_ranges_pct[key])}
        for key, c in RANGE_CODES.items()
    ]
    members.append(obs(TIMES_IN_RANGES, "cgm-summary-times-in-ranges", component=components))
    if s.gmi_pct is not None:
        members.append(obs(GMI, "cgm-summary-gmi", valueQuantity=_percent(s.gmi_pct)))
    else:
        absent = {"coding": [{"system": DATA_ABSENT_REASON, "code": "not-performed"}]}
        why = gmi_note(s) or "not computed"
        members.append(
            obs(GMI, None, dataAbsentReason=absent, note=[{"text": f"GMI not computed: {why}."}])
        )
    if s.cv_pct is not None:
        members.append(
            obs(CV, "cgm-summary-coefficient-of-variation", valueQuantity=_percent(s.cv_pct))
        )
    days = {"value": summary.days_worn, "unit": "days", "system": UCUM, "code": "d"}
    members.append(obs(DAYS_OF_WEAR, "cgm-summary-days-of-wear", valueQuantity=days))
    members.append(
        obs(
            SENSOR_ACTIVE,
            "cgm-summary-sensor-active-percentage",
            valueQuantity=_percent(s.active_pct),
        )
    )
    complete = all("meta" in m for m in members) and s.mean_mg_dl is not None
    panel = obs(
        SUMMARY_PANEL,
        "cgm-summary" if complete else None,
        hasMember=[{"reference": full_url(m)} for m in members],
    )
    return [panel, *members]


def bundle(
    patient_id: str,
    start: datetime,
    end: datetime,
    readings: Sequence[StoredReading],
    *,
    models: Mapping[str, str] | None = None,
    summary: bool = False,
) -> Resource:
    """A collection Bundle: the devices, one Observation per bg/cgm reading in [start, end)
    (by time, then key), then, with ``summary`` and any CGM readings, the CGM summary.

    ``models``: device serial -> model, from the registry, for Device.modelNumber.
    No timestamp or lastUpdated: two exports of the same data are byte-identical.
    """
    models = models or {}
    chosen = sorted(
        (r for r in readings if r.kind in ("bg", "cgm") and start <= r.time < end),
        key=lambda r: (r.time, r.key),
    )
    devices: dict[str, Resource] = {}
    for r in chosen:
        if r.serial not in devices:
            devices[r.serial] = device_resource(r.serial, r.device_kind, models.get(r.serial, ""))
    resources: list[Resource] = [devices[s] for s in sorted(devices)]
    resources += [reading_observation(r, devices[r.serial]) for r in chosen]
    if summary:
        cgm = cgm_summary(chosen, start, end)
        if cgm.agp.readings:
            resources += summary_observations(patient_id, cgm, start, end)
    out: Resource = {
        "resourceType": "Bundle",
        "id": resource_id(
            "Bundle", f"{patient_id}|{fhir_datetime(start)}|{fhir_datetime(end)}|{summary}"
        ),
        "type": "collection",
    }
    if resources:  # FHIR JSON has no empty arrays: an empty export has no entry at all
        out["entry"] = [{"fullUrl": full_url(res), "resource": res} for res in resources]
    return out
