"""Characteristic name -> decoder returning a JSON-ready dict (``diatabase decode``).

Every decoder raises only :class:`~drivers.errors.DecodeError` (CRCError included).
Keys are snake_case; enumerations and flag bits are snake_case names (an RFU bit shows
as ``bit_N``). ``sfloat``/``float`` give ``{"value": n}`` or ``{"special": name}``;
inside records an SFLOAT is a number or, for a special value, its name (e.g.
``"concentration": "NRes"``). Absent annunciation octets or sensor status give an empty
list. Date-times are ISO local date-times without a zone, None when unknown.

Without a CGM Feature at hand, E2E-CRC presence is inferred: for CGM Measurement per
record from the Size field (equal to the flag-implied length: no CRC; two more: CRC,
checked), for the fixed-size CGM characteristics and SOCP from the length. RACP is
decoded with GLS filter types and no CRC; IDD History Data without E2E protection.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any, Final

from drivers import cgms, gls, ids, racp
from drivers._wire import flag_names
from drivers.ieee11073 import Float, SFloat
from drivers.sigtime import DateTime, TimeZone

Json = dict[str, Any]


def _num(value: SFloat | None) -> float | None:
    return None if value is None else value.value


def _num_or_special(value: SFloat | None) -> float | str | None:
    """A number, the special's name ("NaN", "NRes", ...) or None when absent."""
    if value is None:
        return None
    return value.value if value.value is not None else value.special


def _name(value: IntEnum | None) -> str | None:
    return None if value is None else value.name.lower()


def _dt(value: DateTime | None) -> str | None:
    return None if value is None else value.isoformat()


def _sfloat(data: bytes) -> Json:
    return SFloat.from_bytes(data).to_json()


def _float(data: bytes) -> Json:
    return Float.from_bytes(data).to_json()


def _glucose_measurement(data: bytes) -> Json:
    m = gls.GlucoseMeasurement.from_bytes(data)
    return {
        "sequence_number": m.sequence_number,
        "base_time": _dt(m.base_time),
        "time_offset_min": m.time_offset_min,
        "time": m.time.isoformat() if m.time else None,
        "concentration": _num_or_special(m.concentration),
        "unit": m.unit,
        "mg_dl": m.mg_dl,
        "mmol_l": m.mmol_l,
        "type": _name(m.type),
        "sample_location": _name(m.sample_location),
        "sensor_status": flag_names(m.sensor_status or 0, gls.GlucoseSensorStatus),
        "context_follows": m.context_follows,
    }


def _glucose_context(data: bytes) -> Json:
    c = gls.GlucoseContext.from_bytes(data)
    return {
        "sequence_number": c.sequence_number,
        "extended_flags": c.extended_flags,
        "carbohydrate_id": _name(c.carbohydrate_id),
        "carbohydrate_kg": _num(c.carbohydrate_kg),
        "meal": _name(c.meal),
        "tester": _name(c.tester),
        "health": _name(c.health),
        "exercise_duration_s": c.exercise_duration_s,
        "exercise_intensity_pct": c.exercise_intensity_pct,
        "medication_id": _name(c.medication_id),
        "medication": _num(c.medication),
        "medication_unit": c.medication_unit,
        "hba1c_pct": _num(c.hba1c_pct),
    }


def _glucose_feature(data: bytes) -> Json:
    f = gls.GlucoseFeature.from_bytes(data)
    return {"features": flag_names(f.features, gls.GlucoseFeatureBits)}


def _operand_json(value: racp.FilterValue) -> int | str | None:
    return value.isoformat() if isinstance(value, DateTime) else value


def _opcode_json(opcode: int | None, names: type[IntEnum]) -> str | int | None:
    if opcode is None:
        return None
    try:
        return names(opcode).name.lower()
    except ValueError:
        return opcode  # an op code the server did not know, echoed back


def _racp(data: bytes) -> Json:
    pdu = racp.decode_racp(data)
    if isinstance(pdu, racp.RacpResponse):
        return {
            "opcode": _name(pdu.opcode),
            "operator": _name(pdu.operator),
            "request_opcode": _opcode_json(pdu.request_opcode, racp.RacpOpcode),
            "response_code": _name(pdu.response_code),
            "number_of_records": pdu.number_of_records,
        }
    return {
        "opcode": _name(pdu.opcode),
        "operator": _name(pdu.operator),
        "filter_type": _name(pdu.filter_type),
        "operand": [_operand_json(v) for v in pdu.operand],
    }


def _annunciation(
    status: cgms.CgmStatusOctet | None,
    cal_temp: cgms.CgmCalTempOctet | None,
    warning: cgms.CgmWarningOctet | None,
) -> Json:
    return {
        "status": flag_names(status or 0, cgms.CgmStatusOctet),
        "cal_temp": flag_names(cal_temp or 0, cgms.CgmCalTempOctet),
        "warning": flag_names(warning or 0, cgms.CgmWarningOctet),
    }


def _cgm_measurement(data: bytes) -> Json:
    records = cgms.parse_cgm_measurements(data, crc_expected=None)
    return {
        "records": [
            {
                "size": r.size,
                "glucose_mg_dl": _num_or_special(r.glucose_mg_dl),
                "time_offset_min": r.time_offset_min,
                **_annunciation(r.status, r.cal_temp, r.warning),
                "trend_mg_dl_min": _num_or_special(r.trend_mg_dl_min),
                "quality_pct": _num_or_special(r.quality_pct),
                "crc": "ok" if r.e2e_crc else "absent",
            }
            for r in records
        ]
    }


def _cgm_feature(data: bytes) -> Json:
    f = cgms.CgmFeature.from_bytes(data)
    return {
        "features": flag_names(f.features, cgms.CgmFeatureBits),
        "type": _name(f.type),
        "sample_location": _name(f.sample_location),
        "e2e_crc_supported": f.e2e_crc_supported,
    }


def _cgm_status(data: bytes) -> Json:
    s = cgms.CgmStatus.from_bytes(data)
    return {
        "time_offset_min": s.time_offset_min,
        **_annunciation(s.status, s.cal_temp, s.warning),
    }


def _cgm_session_start(data: bytes) -> Json:
    s = cgms.SessionStartTime.from_bytes(data)
    return {
        "start_time": _dt(s.start_time),
        "time_zone_min": s.time_zone_min,
        "dst_offset_min": s.dst_offset_min,
    }


def _cgm_session_run(data: bytes) -> Json:
    s = cgms.SessionRunTime.from_bytes(data)
    return {"run_time_hours": s.run_time_hours}


def _cgm_socp(data: bytes) -> Json:
    p = cgms.CgmSocp.from_bytes(data)
    out: Json = {"opcode": _name(p.opcode)}
    if p.value is not None:
        out["value"] = p.value
    if p.level is not None:
        out["level"] = _num(p.level)
    if p.calibration is not None:
        c = p.calibration
        out["calibration"] = {
            "glucose_mg_dl": _num(c.glucose_mg_dl),
            "time_min": c.time_min,
            "type": _name(c.type),
            "sample_location": _name(c.sample_location),
            "next_time_min": c.next_time_min,
            "record_number": c.record_number,
            "status": flag_names(c.status, cgms.CgmCalibrationStatus),
        }
    if p.request_opcode is not None:
        out["request_opcode"] = _opcode_json(p.request_opcode, cgms.CgmSocpOpcode)
        out["response_code"] = _name(p.response_code)
    out["crc"] = "ok" if p.e2e_crc else "absent"
    return out


def _idd_status_changed(data: bytes) -> Json:
    s = ids.IddStatusChanged.from_bytes(data)
    return {
        "flags": flag_names(s.flags, ids.IddStatusChangedFlags),
        "e2e_counter": s.e2e_counter,
    }


def _idd_status(data: bytes) -> Json:
    s = ids.IddStatus.from_bytes(data)
    return {
        "therapy_control_state": _name(s.therapy_control_state),
        "operational_state": _name(s.operational_state),
        "reservoir_remaining_iu": _num(s.reservoir_remaining_iu),
        "reservoir_attached": s.reservoir_attached,
        "e2e_counter": s.e2e_counter,
    }


def _idd_annunciation(data: bytes) -> Json:
    a = ids.IddAnnunciationStatus.from_bytes(data)
    return {
        "annunciation_present": a.present,
        "instance_id": a.instance_id,
        "type": a.type,
        "type_name": a.type_name,
        "status": _name(a.status),
        "aux_info": list(a.aux_info),
        "e2e_counter": a.e2e_counter,
    }


def _idd_features(data: bytes) -> Json:
    f = ids.IddFeatures.from_bytes(data)
    return {
        "insulin_concentration": _num(f.insulin_concentration),
        "features": flag_names(f.features, ids.IddFeatureBits),
        "e2e_counter": f.e2e_counter,
    }


def _event_json(event: ids.EventData | bytes) -> Json:
    if isinstance(event, bytes):
        return {"raw": event.hex()}
    out: Json = {}
    for name in type(event).__dataclass_fields__:  # type: ignore[attr-defined]
        value = getattr(event, name)
        if isinstance(value, SFloat):
            out[name] = value.value
        elif isinstance(value, IntEnum):
            out[name] = value.name.lower()
        elif isinstance(value, DateTime):
            if name == "date":  # total daily insulin: a date without a time
                known = value.to_datetime()
                out[name] = known.date().isoformat() if known else None
            else:
                out[name] = value.isoformat()
        elif isinstance(value, TimeZone):
            out[f"{name}_min"] = value.minutes
        else:
            out[name] = value
    return out


def _idd_racp(data: bytes) -> Json:
    pdu = ids.decode_idd_racp(data)
    if isinstance(pdu, ids.IddRacpResponse):
        return {
            "opcode": _name(pdu.opcode),
            "request_opcode": _name(pdu.request_opcode),
            "response_code": _name(pdu.response_code),
            "number_of_records": pdu.number_of_records,
        }
    return {
        "opcode": _name(pdu.opcode),
        "operator": _name(pdu.operator),
        "filter_type": _name(pdu.filter_type),
        "operand": list(pdu.operand),
    }


def _idd_history(data: bytes) -> Json:
    h = ids.IddHistoryData.from_bytes(data)
    return {
        "event_type": h.event_name or f"0x{h.event_type:04x}",
        "sequence_number": h.sequence_number,
        "relative_offset_s": h.relative_offset_s,
        "event_data": _event_json(h.event_data),
        "e2e_counter": h.e2e_counter,
    }


CODECS: Final[dict[str, Callable[[bytes], dict[str, Any]]]] = {
    "sfloat": _sfloat,
    "float": _float,
    "glucose-measurement": _glucose_measurement,
    "glucose-context": _glucose_context,
    "glucose-feature": _glucose_feature,
    "racp": _racp,
    "cgm-measurement": _cgm_measurement,
    "cgm-feature": _cgm_feature,
    "cgm-status": _cgm_status,
    "cgm-session-start": _cgm_session_start,
    "cgm-session-run": _cgm_session_run,
    "cgm-socp": _cgm_socp,
    "idd-status-changed": _idd_status_changed,
    "idd-status": _idd_status,
    "idd-annunciation": _idd_annunciation,
    "idd-features": _idd_features,
    "idd-history": _idd_history,
    "idd-racp": _idd_racp,
}
