"""Continuous Glucose Monitoring Service (CGMS 1.0.1) characteristics.

CGM Measurement (0x2AA7), CGM Feature (0x2AA8), CGM Status (0x2AA9), CGM Session Start
Time (0x2AAA), CGM Session Run Time (0x2AAB) and the CGM Specific Ops Control Point
(0x2AAC). Layouts follow the GATT characteristic XML and CGMS 1.0.1 §3; every integer is
little-endian and the E2E-CRC (CRC-16/MCRF4XX, ``drivers.crc``) closes the value when the
sensor supports it (CGM Feature bit 12).

Decisions (docs/ble-profiles.md has the reasoning and the tests that pin them):

* Sensor Status Annunciation octets are sent in significance order of the 24-bit field:
  Status octet (flag bit 7), then Cal/Temp (bit 6), then Warning (bit 5), each only
  when its flag is set. A lone bit-5 octet is therefore the Warning octet.
* Session Start Time zone is in 15-minute units (8 -> +120 min); DST codes map to
  0/30/60/120 minutes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final

from drivers import _wire
from drivers._wire import Reader, build, check_enum, check_flags, check_range
from drivers.crc import CRC_SIZE, append_crc, crc16_mcrf4xx, strip_crc
from drivers.errors import CRCError, DecodeError, EncodeError
from drivers.gls import GlucoseType, SampleLocation, read_type_location, type_location_octet
from drivers.ieee11073 import SFloat
from drivers.sigtime import DateTime, DstOffset, TimeZone

# --- annunciation octets (cgm_measurement XML, Sensor Status Annunciation bits) ---------


class CgmStatusOctet(IntFlag):
    """Status octet: bits 0-7 of the 24-bit annunciation field; 6-7 RFU."""

    SESSION_STOPPED = 1 << 0
    DEVICE_BATTERY_LOW = 1 << 1
    SENSOR_TYPE_INCORRECT = 1 << 2
    SENSOR_MALFUNCTION = 1 << 3
    DEVICE_SPECIFIC_ALERT = 1 << 4
    GENERAL_DEVICE_FAULT = 1 << 5


class CgmCalTempOctet(IntFlag):
    """Cal/Temp octet: bits 8-15 of the annunciation field (here shifted to 0-7)."""

    TIME_SYNCHRONIZATION_REQUIRED = 1 << 0  # bit 8
    CALIBRATION_NOT_ALLOWED = 1 << 1  # bit 9
    CALIBRATION_RECOMMENDED = 1 << 2  # bit 10
    CALIBRATION_REQUIRED = 1 << 3  # bit 11
    SENSOR_TEMPERATURE_TOO_HIGH = 1 << 4  # bit 12
    SENSOR_TEMPERATURE_TOO_LOW = 1 << 5  # bit 13
    CALIBRATION_PENDING = 1 << 6  # bit 14: later GSS revisions; RFU in the 2014 XML


class CgmWarningOctet(IntFlag):
    """Warning octet: bits 16-23 of the annunciation field (here shifted to 0-7)."""

    RESULT_LOWER_THAN_PATIENT_LOW_LEVEL = 1 << 0  # bit 16
    RESULT_HIGHER_THAN_PATIENT_HIGH_LEVEL = 1 << 1  # bit 17
    RESULT_LOWER_THAN_HYPO_LEVEL = 1 << 2  # bit 18
    RESULT_HIGHER_THAN_HYPER_LEVEL = 1 << 3  # bit 19
    RATE_OF_DECREASE_EXCEEDED = 1 << 4  # bit 20
    RATE_OF_INCREASE_EXCEEDED = 1 << 5  # bit 21
    RESULT_LOWER_THAN_DEVICE_CAN_PROCESS = 1 << 6  # bit 22
    RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS = 1 << 7  # bit 23


NO_STATUS: Final = CgmStatusOctet(0)
NO_CAL_TEMP: Final = CgmCalTempOctet(0)
NO_WARNING: Final = CgmWarningOctet(0)


def _fixed_body(
    characteristic: str, data: bytes, size: int, crc_expected: bool | None
) -> tuple[bytes, bool]:
    """Split a fixed-size value from its optional E2E-CRC and check the CRC.

    ``crc_expected`` None infers presence from the length (``size`` or ``size + 2``).
    """
    data = bytes(data)
    if crc_expected is None:
        if len(data) not in (size, size + CRC_SIZE):
            raise DecodeError(
                characteristic,
                data,
                f"expected {size} or {size + CRC_SIZE} octets, got {len(data)}",
            )
        crc_expected = len(data) == size + CRC_SIZE
    want = size + CRC_SIZE if crc_expected else size
    if len(data) != want:
        raise DecodeError(characteristic, data, f"expected {want} octets, got {len(data)}")
    return (strip_crc(characteristic, data) if crc_expected else data), crc_expected


# --- CGM Measurement (0x2AA7) -----------------------------------------------------------


class CgmMeasurementFlags(IntFlag):
    """Flags octet of a CGM Measurement record; bits 2-4 RFU."""

    TREND_PRESENT = 0x01
    QUALITY_PRESENT = 0x02
    WARNING_OCTET_PRESENT = 0x20
    CAL_TEMP_OCTET_PRESENT = 0x40
    STATUS_OCTET_PRESENT = 0x80


CGM_MEASUREMENT_RFU_FLAGS: Final = 0x1C  # bits 2-4
CGM_RECORD_MIN_SIZE: Final = 6  # Size 1 + Flags 1 + Glucose SFLOAT 2 + Time Offset 2
CGM_MEASUREMENT: Final = "CGM Measurement"


def _implied_size(flags: int) -> int:
    """Record size the flags imply, without the E2E-CRC."""
    size = CGM_RECORD_MIN_SIZE
    size += sum(1 for bit in (0x20, 0x40, 0x80) if flags & bit)  # annunciation octets
    size += 2 if flags & 0x01 else 0  # trend SFLOAT
    size += 2 if flags & 0x02 else 0  # quality SFLOAT
    return size


@dataclass(frozen=True, slots=True)
class CgmMeasurement:
    """One CGM Measurement record (a notification may hold several).

    ``glucose_mg_dl`` is mg/dL; ``time_offset_min`` minutes since Session Start Time
    (uint16); ``trend_mg_dl_min`` (mg/dL)/min; ``quality_pct`` percent. An annunciation
    octet is None when absent (distinct from present and zero). ``e2e_crc`` says whether
    the record carries an E2E-CRC.
    """

    glucose_mg_dl: SFloat
    time_offset_min: int
    status: CgmStatusOctet | None = None
    cal_temp: CgmCalTempOctet | None = None
    warning: CgmWarningOctet | None = None
    trend_mg_dl_min: SFloat | None = None
    quality_pct: SFloat | None = None
    e2e_crc: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.glucose_mg_dl, SFloat):
            raise EncodeError("glucose_mg_dl must be an SFloat")
        check_range("time_offset_min", self.time_offset_min, 0, 0xFFFF)
        if self.status is not None:
            check_flags("status", self.status, CgmStatusOctet, 8)
        if self.cal_temp is not None:
            check_flags("cal_temp", self.cal_temp, CgmCalTempOctet, 8)
        if self.warning is not None:
            check_flags("warning", self.warning, CgmWarningOctet, 8)
        for name, value in (("trend", self.trend_mg_dl_min), ("quality", self.quality_pct)):
            if value is not None and not isinstance(value, SFloat):
                raise EncodeError(f"{name} must be an SFloat")
        if not isinstance(self.e2e_crc, bool):
            raise EncodeError("e2e_crc must be a bool")

    @property
    def flags(self) -> CgmMeasurementFlags:
        f = CgmMeasurementFlags(0)
        if self.trend_mg_dl_min is not None:
            f |= CgmMeasurementFlags.TREND_PRESENT
        if self.quality_pct is not None:
            f |= CgmMeasurementFlags.QUALITY_PRESENT
        if self.warning is not None:
            f |= CgmMeasurementFlags.WARNING_OCTET_PRESENT
        if self.cal_temp is not None:
            f |= CgmMeasurementFlags.CAL_TEMP_OCTET_PRESENT
        if self.status is not None:
            f |= CgmMeasurementFlags.STATUS_OCTET_PRESENT
        return f

    @property
    def size(self) -> int:
        """The Size field: the whole record including Size itself and any E2E-CRC."""
        return _implied_size(int(self.flags)) + (CRC_SIZE if self.e2e_crc else 0)

    @property
    def annunciation(self) -> int:
        """The 24-bit Sensor Status Annunciation value (absent octets count as 0)."""
        return int(self.status or 0) | int(self.cal_temp or 0) << 8 | int(self.warning or 0) << 16

    def __bytes__(self) -> bytes:
        out = bytearray((self.size, int(self.flags)))
        out += bytes(self.glucose_mg_dl) + _wire.u16(self.time_offset_min)
        # Annunciation octets in significance order: Status, Cal/Temp, Warning.
        for octet in (self.status, self.cal_temp, self.warning):
            if octet is not None:
                out += _wire.u8(int(octet))
        if self.trend_mg_dl_min is not None:
            out += bytes(self.trend_mg_dl_min)
        if self.quality_pct is not None:
            out += bytes(self.quality_pct)
        return append_crc(bytes(out)) if self.e2e_crc else bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, *, crc_expected: bool | None = None) -> CgmMeasurement:
        """Exactly one record; see :func:`parse_cgm_measurements` for ``crc_expected``."""
        records = parse_cgm_measurements(data, crc_expected=crc_expected)
        if len(records) != 1:
            raise DecodeError(CGM_MEASUREMENT, data, f"{len(records)} records, expected one")
        return records[0]


def _read_record(data: bytes, pos: int, crc_expected: bool | None) -> CgmMeasurement:
    size = data[pos]
    if size < CGM_RECORD_MIN_SIZE:
        raise DecodeError(CGM_MEASUREMENT, data, f"record at {pos}: Size {size} below 6")
    if pos + size > len(data):
        raise DecodeError(CGM_MEASUREMENT, data, f"record at {pos}: Size {size} overruns the value")
    record = data[pos : pos + size]
    flags = record[1]
    if flags & CGM_MEASUREMENT_RFU_FLAGS:
        raise DecodeError(CGM_MEASUREMENT, data, f"record at {pos}: RFU flag bits 0x{flags:02X}")
    implied = _implied_size(flags)
    if crc_expected is None:  # infer from Size: equal -> no CRC, +2 -> CRC
        if size not in (implied, implied + CRC_SIZE):
            raise DecodeError(
                CGM_MEASUREMENT,
                data,
                f"record at {pos}: Size {size} matches neither {implied} nor {implied + 2}",
            )
        has_crc = size == implied + CRC_SIZE
    else:
        has_crc = crc_expected
        want = implied + (CRC_SIZE if has_crc else 0)
        if size != want:
            raise DecodeError(
                CGM_MEASUREMENT,
                data,
                f"record at {pos}: Size {size}, flags 0x{flags:02X} imply {want}",
            )
    if has_crc:  # CRC over the whole record before it, Size and Flags included
        record = strip_crc(CGM_MEASUREMENT, record, whole=data)
    r = Reader(CGM_MEASUREMENT, record, pos=2)
    glucose = SFloat.from_raw(r.u16("CGM Glucose Concentration"))
    offset = r.u16("Time Offset")
    status = CgmStatusOctet(r.u8("Status octet")) if flags & 0x80 else None
    cal_temp = CgmCalTempOctet(r.u8("Cal/Temp octet")) if flags & 0x40 else None
    warning = CgmWarningOctet(r.u8("Warning octet")) if flags & 0x20 else None
    trend = SFloat.from_raw(r.u16("CGM Trend Information")) if flags & 0x01 else None
    quality = SFloat.from_raw(r.u16("CGM Quality")) if flags & 0x02 else None
    r.finish()
    return build(
        r,
        lambda: CgmMeasurement(glucose, offset, status, cal_temp, warning, trend, quality, has_crc),
    )


def parse_cgm_measurements(data: bytes, *, crc_expected: bool | None) -> list[CgmMeasurement]:
    """Every record of one CGM Measurement notification, in order.

    ``crc_expected`` is the CGM Feature E2E-CRC bit: True means every record must end in a
    valid CRC, False that none carries one. None infers it per record from the Size field
    (equal to the flag-implied length: no CRC; two more: a CRC, which is then checked);
    that is what ``diatabase decode`` uses when no CGM Feature is at hand.
    """
    data = bytes(data)
    if not data:
        raise DecodeError(CGM_MEASUREMENT, data, "empty value")
    records: list[CgmMeasurement] = []
    pos = 0
    while pos < len(data):
        record = _read_record(data, pos, crc_expected)
        records.append(record)
        pos += data[pos]
    return records


def encode_cgm_measurements(records: Iterable[CgmMeasurement]) -> bytes:
    """Records back to back, each with or without its CRC as it says."""
    out = b"".join(bytes(r) for r in records)
    if not out:
        raise EncodeError("a CGM Measurement value holds at least one record")
    return out


# --- CGM Feature (0x2AA8) ---------------------------------------------------------------


class CgmFeatureBits(IntFlag):
    """CGM Feature (24 bits); bits 17-23 RFU (kept when received)."""

    CALIBRATION = 1 << 0
    PATIENT_HIGH_LOW_ALERTS = 1 << 1
    HYPO_ALERTS = 1 << 2
    HYPER_ALERTS = 1 << 3
    RATE_OF_INCREASE_DECREASE_ALERTS = 1 << 4
    DEVICE_SPECIFIC_ALERT = 1 << 5
    SENSOR_MALFUNCTION_DETECTION = 1 << 6
    SENSOR_TEMPERATURE_HIGH_LOW_DETECTION = 1 << 7
    SENSOR_RESULT_HIGH_LOW_DETECTION = 1 << 8
    LOW_BATTERY_DETECTION = 1 << 9
    SENSOR_TYPE_ERROR_DETECTION = 1 << 10
    GENERAL_DEVICE_FAULT = 1 << 11
    E2E_CRC = 1 << 12
    MULTIPLE_BOND = 1 << 13
    MULTIPLE_SESSIONS = 1 << 14
    CGM_TREND_INFORMATION = 1 << 15
    CGM_QUALITY = 1 << 16


CRC_NOT_SUPPORTED: Final = 0xFFFF  # CGM Feature: E2E-CRC field value when bit 12 is 0


@dataclass(frozen=True, slots=True)
class CgmFeature:
    """CGM Feature: 24 feature bits, Type/Sample Location octet, E2E-CRC (always 6 octets).

    The CRC field is derived: the CRC over the first 4 octets when ``E2E_CRC`` is set,
    0xFFFF otherwise (CGMS §3.2: "If the device doesn't support E2E-safety the value of
    the field shall be set to 0xFFFF").
    """

    features: CgmFeatureBits
    type: GlucoseType
    sample_location: SampleLocation

    CHARACTERISTIC = "CGM Feature"
    SIZE = 6

    def __post_init__(self) -> None:
        check_flags("features", self.features, CgmFeatureBits, 24)
        check_enum("type", self.type, GlucoseType)
        check_enum("sample_location", self.sample_location, SampleLocation)

    @property
    def e2e_crc_supported(self) -> bool:
        return bool(self.features & CgmFeatureBits.E2E_CRC)

    def __bytes__(self) -> bytes:
        body = _wire.u24(int(self.features)) + type_location_octet(self.type, self.sample_location)
        return append_crc(body) if self.e2e_crc_supported else body + _wire.u16(CRC_NOT_SUPPORTED)

    @classmethod
    def from_bytes(cls, data: bytes) -> CgmFeature:
        r = Reader(cls.CHARACTERISTIC, data)
        features = CgmFeatureBits(r.u24("CGM Feature"))
        kind, location = read_type_location(r, "CGM Type-Sample Location")
        crc = r.u16("E2E-CRC")
        r.finish()
        if features & CgmFeatureBits.E2E_CRC:
            calculated = crc16_mcrf4xx(r.data[:4])
            if crc != calculated:
                raise CRCError(cls.CHARACTERISTIC, r.data, crc, calculated)
        elif crc != CRC_NOT_SUPPORTED:
            raise r.error(f"E2E-CRC not supported but the CRC field is 0x{crc:04X}, not 0xFFFF")
        return build(r, lambda: cls(features, kind, location))


# --- CGM Status (0x2AA9) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CgmStatus:
    """CGM Status: Time Offset (uint16 min) + the 3-octet annunciation + [E2E-CRC].

    The status field always has three octets, least significant first: Status, Cal/Temp,
    Warning (XML: "identical to the structure of the Status Annunciation Field").
    """

    time_offset_min: int
    status: CgmStatusOctet = NO_STATUS
    cal_temp: CgmCalTempOctet = NO_CAL_TEMP
    warning: CgmWarningOctet = NO_WARNING
    e2e_crc: bool = False

    CHARACTERISTIC = "CGM Status"
    SIZE = 5  # Time Offset 2 + CGM Status 3

    def __post_init__(self) -> None:
        check_range("time_offset_min", self.time_offset_min, 0, 0xFFFF)
        check_flags("status", self.status, CgmStatusOctet, 8)
        check_flags("cal_temp", self.cal_temp, CgmCalTempOctet, 8)
        check_flags("warning", self.warning, CgmWarningOctet, 8)
        if not isinstance(self.e2e_crc, bool):
            raise EncodeError("e2e_crc must be a bool")

    def __bytes__(self) -> bytes:
        body = _wire.u16(self.time_offset_min) + bytes(
            (int(self.status), int(self.cal_temp), int(self.warning))
        )
        return append_crc(body) if self.e2e_crc else body

    @classmethod
    def from_bytes(cls, data: bytes, *, crc_expected: bool | None = None) -> CgmStatus:
        """``crc_expected`` None infers the CRC from the length (5 or 7 octets)."""
        body, has_crc = _fixed_body(cls.CHARACTERISTIC, data, cls.SIZE, crc_expected)
        r = Reader(cls.CHARACTERISTIC, body)
        offset = r.u16("Time Offset")
        status = CgmStatusOctet(r.u8("Status octet"))
        cal_temp = CgmCalTempOctet(r.u8("Cal/Temp octet"))
        warning = CgmWarningOctet(r.u8("Warning octet"))
        r.finish()
        return cls(offset, status, cal_temp, warning, has_crc)


# --- CGM Session Start Time (0x2AAA) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionStartTime:
    """Session Start Time: Date Time + Time Zone (15-min units) + DST Offset + [E2E-CRC]."""

    start_time: DateTime
    time_zone: TimeZone
    dst_offset: DstOffset
    e2e_crc: bool = False

    CHARACTERISTIC = "CGM Session Start Time"
    SIZE = 9  # Date Time 7 + Time Zone 1 + DST Offset 1

    def __post_init__(self) -> None:
        if not isinstance(self.start_time, DateTime):
            raise EncodeError("start_time must be a DateTime")
        if not isinstance(self.time_zone, TimeZone):
            raise EncodeError("time_zone must be a TimeZone")
        check_enum("dst_offset", self.dst_offset, DstOffset)
        if not isinstance(self.e2e_crc, bool):
            raise EncodeError("e2e_crc must be a bool")

    @property
    def time_zone_min(self) -> int | None:
        """Standard-time offset from UTC in minutes (octet 8 -> 120); None if unknown."""
        return self.time_zone.minutes

    @property
    def dst_offset_min(self) -> int | None:
        """Daylight-saving offset in minutes (code 4 -> 60); None if unknown."""
        return self.dst_offset.minutes

    @property
    def utc_offset_min(self) -> int | None:
        """Local time minus UTC (zone + DST) in minutes; None when either is unknown."""
        if self.time_zone_min is None or self.dst_offset_min is None:
            return None
        return self.time_zone_min + self.dst_offset_min

    def __bytes__(self) -> bytes:
        body = bytes(self.start_time) + bytes(self.time_zone) + _wire.u8(self.dst_offset)
        return append_crc(body) if self.e2e_crc else body

    @classmethod
    def from_bytes(cls, data: bytes, *, crc_expected: bool | None = None) -> SessionStartTime:
        """``crc_expected`` None infers the CRC from the length (9 or 11 octets)."""
        body, has_crc = _fixed_body(cls.CHARACTERISTIC, data, cls.SIZE, crc_expected)
        r = Reader(cls.CHARACTERISTIC, body)
        start = DateTime.read(r, "Session Start Time")
        zone = TimeZone.read(r)
        dst = r.enum(DstOffset, r.u8("DST Offset"), "DST Offset")
        r.finish()
        return cls(start, zone, dst, has_crc)


# --- CGM Session Run Time (0x2AAB) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRunTime:
    """Session Run Time: expected session length, uint16 hours (XML unit time.hour)."""

    run_time_hours: int
    e2e_crc: bool = False

    CHARACTERISTIC = "CGM Session Run Time"
    SIZE = 2

    def __post_init__(self) -> None:
        check_range("run_time_hours", self.run_time_hours, 0, 0xFFFF)
        if not isinstance(self.e2e_crc, bool):
            raise EncodeError("e2e_crc must be a bool")

    def __bytes__(self) -> bytes:
        body = _wire.u16(self.run_time_hours)
        return append_crc(body) if self.e2e_crc else body

    @classmethod
    def from_bytes(cls, data: bytes, *, crc_expected: bool | None = None) -> SessionRunTime:
        """``crc_expected`` None infers the CRC from the length (2 or 4 octets)."""
        body, has_crc = _fixed_body(cls.CHARACTERISTIC, data, cls.SIZE, crc_expected)
        return cls(int.from_bytes(body, "little"), has_crc)


# --- CGM Specific Ops Control Point (0x2AAC) --------------------------------------------


class CgmSocpOpcode(IntEnum):
    """SOCP op codes (cgm_specific_ops_control_point XML, CGMS §3.7)."""

    SET_COMMUNICATION_INTERVAL = 1
    GET_COMMUNICATION_INTERVAL = 2
    COMMUNICATION_INTERVAL_RESPONSE = 3
    SET_GLUCOSE_CALIBRATION_VALUE = 4
    GET_GLUCOSE_CALIBRATION_VALUE = 5
    GLUCOSE_CALIBRATION_VALUE_RESPONSE = 6
    SET_PATIENT_HIGH_ALERT_LEVEL = 7
    GET_PATIENT_HIGH_ALERT_LEVEL = 8
    PATIENT_HIGH_ALERT_LEVEL_RESPONSE = 9
    SET_PATIENT_LOW_ALERT_LEVEL = 10
    GET_PATIENT_LOW_ALERT_LEVEL = 11
    PATIENT_LOW_ALERT_LEVEL_RESPONSE = 12
    SET_HYPO_ALERT_LEVEL = 13
    GET_HYPO_ALERT_LEVEL = 14
    HYPO_ALERT_LEVEL_RESPONSE = 15
    SET_HYPER_ALERT_LEVEL = 16
    GET_HYPER_ALERT_LEVEL = 17
    HYPER_ALERT_LEVEL_RESPONSE = 18
    SET_RATE_OF_DECREASE_ALERT_LEVEL = 19
    GET_RATE_OF_DECREASE_ALERT_LEVEL = 20
    RATE_OF_DECREASE_ALERT_LEVEL_RESPONSE = 21
    SET_RATE_OF_INCREASE_ALERT_LEVEL = 22
    GET_RATE_OF_INCREASE_ALERT_LEVEL = 23
    RATE_OF_INCREASE_ALERT_LEVEL_RESPONSE = 24
    RESET_DEVICE_SPECIFIC_ALERT = 25
    START_SESSION = 26
    STOP_SESSION = 27
    RESPONSE_CODE = 28


class CgmSocpResponseCode(IntEnum):
    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERAND = 3
    PROCEDURE_NOT_COMPLETED = 4
    PARAMETER_OUT_OF_RANGE = 5


class CgmCalibrationStatus(IntFlag):
    """Calibration Status octet; bits 3-7 RFU (kept)."""

    REJECTED = 1 << 0
    DATA_OUT_OF_RANGE = 1 << 1
    PROCESS_PENDING = 1 << 2


NO_CALIBRATION_STATUS: Final = CgmCalibrationStatus(0)

_Op = CgmSocpOpcode
_U8_OPERAND: Final = frozenset(
    {_Op.SET_COMMUNICATION_INTERVAL, _Op.COMMUNICATION_INTERVAL_RESPONSE}
)
_U16_OPERAND: Final = frozenset({_Op.GET_GLUCOSE_CALIBRATION_VALUE})  # record number
_CALIBRATION_OPERAND: Final = frozenset(
    {_Op.SET_GLUCOSE_CALIBRATION_VALUE, _Op.GLUCOSE_CALIBRATION_VALUE_RESPONSE}
)
_LEVEL_OPERAND: Final = frozenset(
    op
    for op in _Op
    if 7 <= op <= 24 and (op - 7) % 3 != 1  # set and response, not get
)
CALIBRATION_SIZE: Final = 10  # SFLOAT 2 + time 2 + type/location 1 + next 2 + record 2 + status 1


@dataclass(frozen=True, slots=True)
class CgmCalibration:
    """Calibration record: operand of op codes 4 (set) and 6 (response)."""

    glucose_mg_dl: SFloat
    time_min: int
    type: GlucoseType
    sample_location: SampleLocation
    next_time_min: int
    record_number: int
    status: CgmCalibrationStatus = NO_CALIBRATION_STATUS

    def __post_init__(self) -> None:
        if not isinstance(self.glucose_mg_dl, SFloat):
            raise EncodeError("glucose_mg_dl must be an SFloat")
        check_range("time_min", self.time_min, 0, 0xFFFF)
        check_enum("type", self.type, GlucoseType)
        check_enum("sample_location", self.sample_location, SampleLocation)
        check_range("next_time_min", self.next_time_min, 0, 0xFFFF)
        check_range("record_number", self.record_number, 0, 0xFFFF)
        check_flags("status", self.status, CgmCalibrationStatus, 8)

    def __bytes__(self) -> bytes:
        return (
            bytes(self.glucose_mg_dl)
            + _wire.u16(self.time_min)
            + type_location_octet(self.type, self.sample_location)
            + _wire.u16(self.next_time_min)
            + _wire.u16(self.record_number)
            + _wire.u8(int(self.status))
        )

    @classmethod
    def read(cls, r: Reader) -> CgmCalibration:
        glucose = SFloat.from_raw(r.u16("Calibration Glucose Concentration"))
        time_min = r.u16("Calibration Time")
        kind, location = read_type_location(r, "Calibration Type-Sample Location")
        next_min = r.u16("Next Calibration Time")
        record = r.u16("Calibration Data Record Number")
        status = CgmCalibrationStatus(r.u8("Calibration Status"))
        return build(r, lambda: cls(glucose, time_min, kind, location, next_min, record, status))


def _operand_size(opcode: CgmSocpOpcode) -> int:
    if opcode in _U8_OPERAND:
        return 1
    if opcode in _U16_OPERAND or opcode in _LEVEL_OPERAND:
        return 2
    if opcode in _CALIBRATION_OPERAND:
        return CALIBRATION_SIZE
    if opcode is CgmSocpOpcode.RESPONSE_CODE:
        return 2
    return 0


@dataclass(frozen=True, slots=True)
class CgmSocp:
    """One CGM Specific Ops Control Point PDU, request or indication.

    Exactly the operand field the op code needs is set: ``value`` (communication interval
    in minutes, uint8; calibration record number, uint16), ``level`` (alert levels, SFLOAT
    mg/dL or mg/dL/min), ``calibration`` (op codes 4 and 6), or ``request_opcode`` +
    ``response_code`` (op code 28).
    """

    opcode: CgmSocpOpcode
    value: int | None = None
    level: SFloat | None = None
    calibration: CgmCalibration | None = None
    request_opcode: int | None = None
    response_code: CgmSocpResponseCode | None = None
    e2e_crc: bool = False

    CHARACTERISTIC = "CGM Specific Ops Control Point"

    def __post_init__(self) -> None:
        check_enum("opcode", self.opcode, CgmSocpOpcode)
        op = self.opcode
        given = {
            "value": self.value is not None,
            "level": self.level is not None,
            "calibration": self.calibration is not None,
            "response": self.request_opcode is not None or self.response_code is not None,
        }
        need = (
            "value"
            if op in _U8_OPERAND or op in _U16_OPERAND
            else "level"
            if op in _LEVEL_OPERAND
            else "calibration"
            if op in _CALIBRATION_OPERAND
            else "response"
            if op is CgmSocpOpcode.RESPONSE_CODE
            else None
        )
        for name, present in given.items():
            if present != (name == need):
                raise EncodeError(
                    f"{op.name}: operand {name} must be {'given' if name == need else 'absent'}"
                )
        if self.value is not None:
            check_range("value", self.value, 0, 0xFF if op in _U8_OPERAND else 0xFFFF)
        if self.level is not None and not isinstance(self.level, SFloat):
            raise EncodeError("level must be an SFloat")
        if self.calibration is not None and not isinstance(self.calibration, CgmCalibration):
            raise EncodeError("calibration must be a CgmCalibration")
        if need == "response":
            check_range("request_opcode", self.request_opcode, 0, 0xFF)
            check_enum("response_code", self.response_code, CgmSocpResponseCode)
        if not isinstance(self.e2e_crc, bool):
            raise EncodeError("e2e_crc must be a bool")

    def __bytes__(self) -> bytes:
        out = bytearray(_wire.u8(self.opcode))
        if self.value is not None:
            out += _wire.u8(self.value) if self.opcode in _U8_OPERAND else _wire.u16(self.value)
        elif self.level is not None:
            out += bytes(self.level)
        elif self.calibration is not None:
            out += bytes(self.calibration)
        elif self.request_opcode is not None and self.response_code is not None:
            out += bytes((self.request_opcode, self.response_code))
        return append_crc(bytes(out)) if self.e2e_crc else bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, *, crc_expected: bool | None = None) -> CgmSocp:
        """``crc_expected`` None infers the CRC from the op-code-implied length."""
        data = bytes(data)
        if not data:
            raise DecodeError(cls.CHARACTERISTIC, data, "empty value")
        head = Reader(cls.CHARACTERISTIC, data)
        opcode = head.enum(CgmSocpOpcode, head.u8("Op Code"), "Op Code")
        body, has_crc = _fixed_body(
            cls.CHARACTERISTIC, data, 1 + _operand_size(opcode), crc_expected
        )
        r = Reader(cls.CHARACTERISTIC, body, pos=1)
        value = level = calibration = request = code = None
        if opcode in _U8_OPERAND:
            value = r.u8("Communication Interval")
        elif opcode in _U16_OPERAND:
            value = r.u16("Calibration Data Record Number")
        elif opcode in _LEVEL_OPERAND:
            level = SFloat.from_raw(r.u16("Alert Level"))
        elif opcode in _CALIBRATION_OPERAND:
            calibration = CgmCalibration.read(r)
        elif opcode is CgmSocpOpcode.RESPONSE_CODE:
            request = r.u8("Request Op Code")
            code = r.enum(CgmSocpResponseCode, r.u8("Response Code Value"), "Response Code Value")
        r.finish()
        return build(r, lambda: cls(opcode, value, level, calibration, request, code, has_crc))
