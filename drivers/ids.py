"""Insulin Delivery Service (IDS 1.0) status characteristics and history events.

Sources (docs/ble-profiles.md, "IDS"): IDD Status Changed, IDD Status, IDD Annunciation
Status, IDD Features and the History Data header follow sig-profiles.md §11. Every
decoded history event layout and every event type code was checked against two public
implementations written by IDS contributors: ehealthinnovation/AndroidBLEParser (its
history event parsers and tests) and tidepool-org/InsulinDeliveryServiceKit (its
PumpHistoryEvents and IDHistoryDataHandlerTests). The IDS specification text itself
could not be read here; where the two sources are silent the docstring says so.

E2E protection (IDD Features bit 0) appends an E2E-Counter (uint8) and an E2E-CRC
(uint16, little-endian) to these characteristics. The CRC is the CGMS CRC-16/MCRF4XX
over every preceding octet, counter included: ehealthinnovation/CCInsulinDelivery
appends ``crcMCRF4XX`` to its IDS control point writes; no public IDS vector with a
valid CRC *and* counter was found to check the counter's position against.

The IDD Record Access Control Point codec lives here too (bottom of the module).

Unknown or manufacturer event types are kept as raw event data, never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final, Protocol

from drivers import _wire
from drivers._wire import Reader, build, check_enum, check_flags, check_range
from drivers.crc import CRC_SIZE, append_crc, crc16_mcrf4xx, strip_crc
from drivers.errors import CRCError, DecodeError, EncodeError
from drivers.ieee11073 import SFloat
from drivers.racp import FILTERED_OPERATORS, RacpOpcode, RacpOperator, RacpResponseCode
from drivers.sigtime import DateTime, DstOffset, TimeZone

E2E_SIZE: Final = 3  # E2E-Counter uint8 + E2E-CRC uint16
E2E_CRC_NOT_SUPPORTED: Final = 0xFFFF  # IDD Features CRC field without E2E protection


def _check_counter(counter: int | None) -> None:
    if counter is not None:
        check_range("e2e_counter", counter, 0, 0xFF)


def _split_e2e(characteristic: str, data: bytes, e2e_expected: bool) -> tuple[bytes, int | None]:
    """Strip and check [E2E-Counter, E2E-CRC]; return the body and the counter."""
    data = bytes(data)
    if not e2e_expected:
        return data, None
    if len(data) < E2E_SIZE:
        raise DecodeError(characteristic, data, "truncated: no room for E2E-Counter and CRC")
    protected = strip_crc(characteristic, data)
    return protected[:-1], protected[-1]


def _with_e2e(body: bytes, counter: int | None) -> bytes:
    return body if counter is None else append_crc(body + _wire.u8(counter))


# --- IDD Status Changed (0x2B20) --------------------------------------------------------


class IddStatusChangedFlags(IntFlag):
    """16-bit flags; bits 8-15 RFU (kept)."""

    THERAPY_CONTROL_STATE_CHANGED = 1 << 0
    OPERATIONAL_STATE_CHANGED = 1 << 1
    RESERVOIR_STATUS_CHANGED = 1 << 2
    ANNUNCIATION_STATUS_CHANGED = 1 << 3
    TOTAL_DAILY_INSULIN_STATUS_CHANGED = 1 << 4
    ACTIVE_BASAL_RATE_STATUS_CHANGED = 1 << 5
    ACTIVE_BOLUS_STATUS_CHANGED = 1 << 6
    HISTORY_EVENT_RECORDED = 1 << 7


@dataclass(frozen=True, slots=True)
class IddStatusChanged:
    """IDD Status Changed: 16-bit flags · [E2E-Counter · E2E-CRC]."""

    flags: IddStatusChangedFlags
    e2e_counter: int | None = None

    CHARACTERISTIC = "IDD Status Changed"
    SIZE = 2

    def __post_init__(self) -> None:
        check_flags("flags", self.flags, IddStatusChangedFlags, 16)
        _check_counter(self.e2e_counter)

    def __bytes__(self) -> bytes:
        return _with_e2e(_wire.u16(int(self.flags)), self.e2e_counter)

    @classmethod
    def from_bytes(cls, data: bytes, *, e2e_expected: bool | None = None) -> IddStatusChanged:
        """``e2e_expected`` None infers E2E protection from the length (2 or 5)."""
        if e2e_expected is None:
            e2e_expected = len(data) == cls.SIZE + E2E_SIZE
        body, counter = _split_e2e(cls.CHARACTERISTIC, data, e2e_expected)
        r = Reader(cls.CHARACTERISTIC, body)
        flags = IddStatusChangedFlags(r.u16("Flags"))
        r.finish()
        return cls(flags, counter)


# --- IDD Status (0x2B21) ----------------------------------------------------------------


class TherapyControlState(IntEnum):
    UNDETERMINED = 0x0F
    STOP = 0x33
    PAUSE = 0x3C
    RUN = 0x55


class OperationalState(IntEnum):
    UNDETERMINED = 0x0F
    OFF = 0x33
    STANDBY = 0x3C
    PREPARING = 0x55
    PRIMING = 0x5A
    WAITING = 0x66
    READY = 0x96


class IddStatusFlags(IntFlag):
    """IDD Status flags octet; bits 1-7 RFU (kept)."""

    RESERVOIR_ATTACHED = 1 << 0


NO_IDD_STATUS_FLAGS: Final = IddStatusFlags(0)


@dataclass(frozen=True, slots=True)
class IddStatus:
    """IDD Status: therapy state · operational state · reservoir (SFLOAT IU) · flags."""

    therapy_control_state: TherapyControlState
    operational_state: OperationalState
    reservoir_remaining_iu: SFloat
    flags: IddStatusFlags = NO_IDD_STATUS_FLAGS
    e2e_counter: int | None = None

    CHARACTERISTIC = "IDD Status"
    SIZE = 5

    def __post_init__(self) -> None:
        check_enum("therapy_control_state", self.therapy_control_state, TherapyControlState)
        check_enum("operational_state", self.operational_state, OperationalState)
        if not isinstance(self.reservoir_remaining_iu, SFloat):
            raise EncodeError("reservoir_remaining_iu must be an SFloat")
        check_flags("flags", self.flags, IddStatusFlags, 8)
        _check_counter(self.e2e_counter)

    @property
    def reservoir_attached(self) -> bool:
        return bool(self.flags & IddStatusFlags.RESERVOIR_ATTACHED)

    def __bytes__(self) -> bytes:
        body = (
            bytes((self.therapy_control_state, self.operational_state))
            + bytes(self.reservoir_remaining_iu)
            + _wire.u8(int(self.flags))
        )
        return _with_e2e(body, self.e2e_counter)

    @classmethod
    def from_bytes(cls, data: bytes, *, e2e_expected: bool | None = None) -> IddStatus:
        """``e2e_expected`` None infers E2E protection from the length (5 or 8)."""
        if e2e_expected is None:
            e2e_expected = len(data) == cls.SIZE + E2E_SIZE
        body, counter = _split_e2e(cls.CHARACTERISTIC, data, e2e_expected)
        r = Reader(cls.CHARACTERISTIC, body)
        therapy = r.enum(
            TherapyControlState, r.u8("Therapy Control State"), "Therapy Control State"
        )
        operational = r.enum(OperationalState, r.u8("Operational State"), "Operational State")
        reservoir = SFloat.from_raw(r.u16("Reservoir Remaining Amount"))
        flags = IddStatusFlags(r.u8("Flags"))
        r.finish()
        return cls(therapy, operational, reservoir, flags, counter)


# --- IDD Annunciation Status (0x2B22) ---------------------------------------------------


class AnnunciationStatus(IntEnum):
    UNDETERMINED = 0x0F
    PENDING = 0x33
    SNOOZED = 0x3C
    CONFIRMED = 0x55


# Annunciation Type (uint16); the codes cross-checked in sig-profiles.md §11. Others
# (including manufacturer-specific ones) are kept as plain numbers.
# IDS annunciation types (16-bit codes at Hamming distance >= 4, so a flipped bit never
# turns one type into another); the Tidepool InsulinDeliveryServiceKit enum agrees.
ANNUNCIATION_TYPE_NAMES: Final[dict[int, str]] = {
    0x000F: "system_issue",
    0x0033: "mechanical_issue",
    0x003C: "occlusion_detected",
    0x0055: "reservoir_issue",
    0x005A: "reservoir_empty",
    0x0066: "reservoir_low",
    0x0069: "priming_issue",
    0x0096: "infusion_set_incomplete",
    0x0099: "infusion_set_detached",
    0x00A5: "power_source_insufficient",
    0x00AA: "battery_empty",
    0x00C3: "battery_low",
    0x00CC: "battery_medium",
    0x00F0: "battery_full",
    0x00FF: "temperature_out_of_range",
    0x030C: "bolus_canceled",
    0x0330: "tbr_over",
    0x033F: "tbr_canceled",
    0x0356: "max_delivery",
    0x0359: "date_time_issue",
}

ANNUNCIATION_PRESENT: Final = 0x01  # flags bit 0
AUX_INFO_COUNT: Final = 5  # flags bits 1-5: AuxInfo1..5 present
ANNUNCIATION_RFU_FLAGS: Final = 0xC0  # flags bits 6-7


@dataclass(frozen=True, slots=True)
class IddAnnunciationStatus:
    """IDD Annunciation Status.

    Flags (bit 0 annunciation present, bits 1-5 AuxInfo1-5 present) · [Instance ID uint16 ·
    Type uint16 · Status **uint8** · AuxInfo1..5 uint16 each, as flagged] · [E2E]. With
    no annunciation, ``instance_id``/``type``/``status`` are None and no AuxInfo is sent.
    ``aux_info`` has five slots, None where absent.
    """

    instance_id: int | None = None
    type: int | None = None
    status: AnnunciationStatus | None = None
    aux_info: tuple[int | None, ...] = (None,) * AUX_INFO_COUNT
    e2e_counter: int | None = None

    CHARACTERISTIC = "IDD Annunciation Status"

    def __post_init__(self) -> None:
        head = (self.instance_id, self.type, self.status)
        if any(v is None for v in head) and any(v is not None for v in head):
            raise EncodeError("instance_id, type and status go together (all or none)")
        if self.instance_id is not None:
            check_range("instance_id", self.instance_id, 0, 0xFFFF)
            check_range("type", self.type, 0, 0xFFFF)
            check_enum("status", self.status, AnnunciationStatus)
        if not isinstance(self.aux_info, tuple) or len(self.aux_info) != AUX_INFO_COUNT:
            raise EncodeError("aux_info must be a tuple of five optional uint16")
        for i, aux in enumerate(self.aux_info):
            if aux is not None:
                if self.instance_id is None:
                    raise EncodeError("AuxInfo needs an annunciation")
                check_range(f"aux_info[{i}]", aux, 0, 0xFFFF)
        _check_counter(self.e2e_counter)

    @property
    def present(self) -> bool:
        return self.instance_id is not None

    @property
    def flags(self) -> int:
        f = ANNUNCIATION_PRESENT if self.present else 0
        for i, aux in enumerate(self.aux_info):
            if aux is not None:
                f |= 1 << (i + 1)
        return f

    @property
    def type_name(self) -> str | None:
        return None if self.type is None else ANNUNCIATION_TYPE_NAMES.get(self.type)

    def __bytes__(self) -> bytes:
        out = bytearray(_wire.u8(self.flags))
        if self.instance_id is not None and self.type is not None and self.status is not None:
            out += _wire.u16(self.instance_id) + _wire.u16(self.type) + _wire.u8(self.status)
            for aux in self.aux_info:
                if aux is not None:
                    out += _wire.u16(aux)
        return _with_e2e(bytes(out), self.e2e_counter)

    @staticmethod
    def _implied_size(flags: int) -> int:
        if not flags & ANNUNCIATION_PRESENT:
            return 1
        return 6 + 2 * bin(flags & 0x3E).count("1")

    @classmethod
    def from_bytes(cls, data: bytes, *, e2e_expected: bool | None = None) -> IddAnnunciationStatus:
        """``e2e_expected`` None infers E2E protection from the flag-implied length."""
        data = bytes(data)
        if e2e_expected is None and data:
            e2e_expected = len(data) == cls._implied_size(data[0]) + E2E_SIZE
        body, counter = _split_e2e(cls.CHARACTERISTIC, data, bool(e2e_expected))
        r = Reader(cls.CHARACTERISTIC, body)
        flags = r.u8("Flags")
        if flags & ANNUNCIATION_RFU_FLAGS:
            raise r.error(f"RFU flag bits set: 0x{flags:02X}")
        if not flags & ANNUNCIATION_PRESENT:
            if flags:
                raise r.error("AuxInfo flagged without an annunciation")
            r.finish()
            return cls(e2e_counter=counter)
        instance = r.u16("Annunciation Instance ID")
        kind = r.u16("Annunciation Type")
        status = r.enum(AnnunciationStatus, r.u8("Annunciation Status"), "Annunciation Status")
        aux = tuple(
            r.u16(f"AuxInfo{i + 1}") if flags & (1 << (i + 1)) else None
            for i in range(AUX_INFO_COUNT)
        )
        r.finish()
        return cls(instance, kind, status, aux, counter)


# --- IDD Features (0x2B23) --------------------------------------------------------------


class IddFeatureBits(IntFlag):
    """IDD Features flags (24 bits); only the positions cross-checked are named."""

    E2E_PROTECTION = 1 << 0
    BASAL_RATE = 1 << 1
    FEATURE_EXTENSION = 1 << 23


@dataclass(frozen=True, slots=True)
class IddFeatures:
    """IDD Features: E2E-CRC (uint16) · E2E-Counter (uint8) · Insulin Concentration
    (SFLOAT, IU/mL) · Flags (24 bits). Always 8 octets.

    The CRC leads the value and covers the octets after it when E2E protection is
    supported; otherwise it must be 0xFFFF (as for CGM Feature).
    """

    insulin_concentration: SFloat
    features: IddFeatureBits
    e2e_counter: int = 0

    CHARACTERISTIC = "IDD Features"
    SIZE = 8

    def __post_init__(self) -> None:
        if not isinstance(self.insulin_concentration, SFloat):
            raise EncodeError("insulin_concentration must be an SFloat")
        check_flags("features", self.features, IddFeatureBits, 24)
        check_range("e2e_counter", self.e2e_counter, 0, 0xFF)

    @property
    def e2e_protection(self) -> bool:
        return bool(self.features & IddFeatureBits.E2E_PROTECTION)

    def __bytes__(self) -> bytes:
        body = (
            _wire.u8(self.e2e_counter)
            + bytes(self.insulin_concentration)
            + _wire.u24(int(self.features))
        )
        crc = crc16_mcrf4xx(body) if self.e2e_protection else E2E_CRC_NOT_SUPPORTED
        return _wire.u16(crc) + body

    @classmethod
    def from_bytes(cls, data: bytes) -> IddFeatures:
        r = Reader(cls.CHARACTERISTIC, data)
        crc = r.u16("E2E-CRC")
        counter = r.u8("E2E-Counter")
        concentration = SFloat.from_raw(r.u16("Insulin Concentration"))
        features = IddFeatureBits(r.u24("Flags"))
        r.finish()
        if features & IddFeatureBits.E2E_PROTECTION:
            calculated = crc16_mcrf4xx(r.data[CRC_SIZE:])
            if crc != calculated:
                raise CRCError(cls.CHARACTERISTIC, r.data, crc, calculated)
        elif crc != E2E_CRC_NOT_SUPPORTED:
            raise r.error(f"no E2E protection but the CRC field is 0x{crc:04X}, not 0xFFFF")
        return cls(concentration, features, counter)


# --- IDD History Data (0x2B28): event data ----------------------------------------------


class IddEventType(IntEnum):
    """History event types (Hamming codes): sig-profiles.md §11, checked against
    ehealthinnovation/BLEIDSSim ``history.py`` and tidepool-org/InsulinDeliveryServiceKit."""

    REFERENCE_TIME = 0x000F
    REFERENCE_TIME_BASE_OFFSET = 0x0033
    BOLUS_CALCULATED_PART_1 = 0x003C
    BOLUS_CALCULATED_PART_2 = 0x0055
    BOLUS_PROGRAMMED_PART_1 = 0x005A
    BOLUS_PROGRAMMED_PART_2 = 0x0066
    BOLUS_DELIVERED_PART_1 = 0x0069
    BOLUS_DELIVERED_PART_2 = 0x0096
    DELIVERED_BASAL_RATE_CHANGED = 0x0099
    TBR_ADJUSTMENT_STARTED = 0x00A5
    TBR_ADJUSTMENT_ENDED = 0x00AA
    TBR_ADJUSTMENT_CHANGED = 0x00C3
    PROFILE_TEMPLATE_ACTIVATED = 0x00CC
    BASAL_RATE_PROFILE_TEMPLATE_TIME_BLOCK_CHANGED = 0x00F0
    TOTAL_DAILY_INSULIN_DELIVERY = 0x00FF
    THERAPY_CONTROL_STATE_CHANGED = 0x0303
    OPERATIONAL_STATE_CHANGED = 0x030C
    RESERVOIR_REMAINING_AMOUNT_CHANGED = 0x0330
    ANNUNCIATION_STATUS_CHANGED_PART_1 = 0x033F
    ANNUNCIATION_STATUS_CHANGED_PART_2 = 0x0356
    ISF_PROFILE_TEMPLATE_TIME_BLOCK_CHANGED = 0x0359
    I2CHO_RATIO_PROFILE_TEMPLATE_TIME_BLOCK_CHANGED = 0x0365
    TARGET_GLUCOSE_RANGE_PROFILE_TEMPLATE_TIME_BLOCK_CHANGED = 0x036A
    PRIMING_STARTED = 0x0395
    PRIMING_DONE = 0x039A
    DATA_CORRUPTION = 0x03A6
    POINTER_EVENT = 0x03A9
    BOLUS_TEMPLATE_CHANGED_PART_1 = 0x03C0
    BOLUS_TEMPLATE_CHANGED_PART_2 = 0x03CF
    TBR_TEMPLATE_CHANGED = 0x03F3
    MAX_BOLUS_AMOUNT_CHANGED = 0x03FC


class BolusType(IntEnum):
    UNDETERMINED = 0x0F
    FAST = 0x33
    EXTENDED = 0x3C
    MULTIWAVE = 0x55


class BolusActivationType(IntEnum):
    UNDETERMINED = 0x0F
    MANUAL_BOLUS = 0x33
    RECOMMENDED_BOLUS = 0x3C
    MANUALLY_CHANGED_RECOMMENDED_BOLUS = 0x55
    COMMANDED_BOLUS = 0x5A


class BolusEndReason(IntEnum):
    UNDETERMINED = 0x0F
    PROGRAMMED_AMOUNT_REACHED = 0x33  # "programmed duration over" in sig-profiles
    BOLUS_CANCELLED = 0x3C
    ERROR_ABORT = 0x55


class TbrType(IntEnum):
    UNDETERMINED = 0x0F
    ABSOLUTE = 0x33  # IU/h
    RELATIVE = 0x3C  # percent of the basal rate


class TbrEndReason(IntEnum):
    UNDETERMINED = 0x0F
    PROGRAMMED_DURATION_OVER = 0x33
    CANCELLED = 0x3C
    ERROR_ABORT = 0x55


class ReferenceTimeReason(IntEnum):
    UNDETERMINED = 0x0F
    SET_DATE_TIME = 0x33
    PERIODIC_RECORDING = 0x3C
    DATE_TIME_LOSS = 0x55


class EventData(Protocol):
    def __bytes__(self) -> bytes: ...


def _sfloat(r: Reader, what: str) -> SFloat:
    return SFloat.from_raw(r.u16(what))


def _opt(flag: bool, read: Callable[[], int]) -> int | None:
    return read() if flag else None


def _opt_u8(value: int | None) -> bytes:
    return b"" if value is None else _wire.u8(value)


def _flags(r: Reader, rfu: int) -> int:
    flags = r.u8("Flags")
    if flags & rfu:
        raise r.error(f"RFU flag bits set: 0x{flags:02X}")
    return flags


@dataclass(frozen=True, slots=True)
class ReferenceTimeEvent:
    """0x000F: recording reason · Date Time · Time Zone · DST Offset.

    Verified against ehealthinnovation/AndroidBLEParser and tidepool-org/
    InsulinDeliveryServiceKit.
    """

    recording_reason: ReferenceTimeReason
    date_time: DateTime
    time_zone: TimeZone
    dst_offset: DstOffset

    def __bytes__(self) -> bytes:
        return (
            _wire.u8(self.recording_reason)
            + bytes(self.date_time)
            + bytes(self.time_zone)
            + _wire.u8(self.dst_offset)
        )

    @classmethod
    def read(cls, r: Reader) -> ReferenceTimeEvent:
        reason = r.enum(ReferenceTimeReason, r.u8("Recording Reason"), "Recording Reason")
        dt = DateTime.read(r)
        zone = TimeZone.read(r)
        dst = r.enum(DstOffset, r.u8("DST Offset"), "DST Offset")
        return cls(reason, dt, zone, dst)


@dataclass(frozen=True, slots=True)
class BolusPart1Event:
    """0x005A programmed / 0x0069 delivered, part 1: ID · type · fast · extended · duration.

    Amounts in IU (SFLOAT); duration in minutes. Delivered layout per sig-profiles §11;
    the programmed event shares it (verified against ehealthinnovation/AndroidBLEParser
    and tidepool-org/InsulinDeliveryServiceKit, which read duration in minutes).
    """

    bolus_id: int
    bolus_type: BolusType
    fast_amount_iu: SFloat
    extended_amount_iu: SFloat
    duration_min: int

    def __post_init__(self) -> None:
        check_range("bolus_id", self.bolus_id, 0, 0xFFFF)
        check_enum("bolus_type", self.bolus_type, BolusType)
        check_range("duration_min", self.duration_min, 0, 0xFFFF)

    def __bytes__(self) -> bytes:
        return (
            _wire.u16(self.bolus_id)
            + _wire.u8(self.bolus_type)
            + bytes(self.fast_amount_iu)
            + bytes(self.extended_amount_iu)
            + _wire.u16(self.duration_min)
        )

    @classmethod
    def read(cls, r: Reader) -> BolusPart1Event:
        bolus_id = r.u16("Bolus ID")
        kind = r.enum(BolusType, r.u8("Bolus Type"), "Bolus Type")
        fast = _sfloat(r, "Fast Amount")
        extended = _sfloat(r, "Extended Amount")
        duration = r.u16("Duration")
        return build(r, lambda: cls(bolus_id, kind, fast, extended, duration))


@dataclass(frozen=True, slots=True)
class BolusProgrammedPart2Event:
    """0x0066: flags · [delay min uint16] · [template uint8] · [activation type].

    Flags: bit 0 delay, 1 template, 2 activation type present, 3 reason correction,
    4 reason meal (verified against ehealthinnovation/AndroidBLEParser; tidepool-org/
    InsulinDeliveryServiceKit agrees on the delay field).
    """

    delay_time_min: int | None = None
    template_number: int | None = None
    activation_type: BolusActivationType | None = None
    reason_correction: bool = False  # flags bit 3
    reason_meal: bool = False  # flags bit 4

    def __post_init__(self) -> None:
        if self.delay_time_min is not None:
            check_range("delay_time_min", self.delay_time_min, 0, 0xFFFF)
        if self.template_number is not None:
            check_range("template_number", self.template_number, 0, 0xFF)
        if self.activation_type is not None:
            check_enum("activation_type", self.activation_type, BolusActivationType)

    def __bytes__(self) -> bytes:
        flags = (
            (self.delay_time_min is not None)
            | (self.template_number is not None) << 1
            | (self.activation_type is not None) << 2
            | self.reason_correction << 3
            | self.reason_meal << 4
        )
        out = bytearray(_wire.u8(flags))
        if self.delay_time_min is not None:
            out += _wire.u16(self.delay_time_min)
        if self.template_number is not None:
            out += _wire.u8(self.template_number)
        if self.activation_type is not None:
            out += _wire.u8(self.activation_type)
        return bytes(out)

    @classmethod
    def read(cls, r: Reader) -> BolusProgrammedPart2Event:
        flags = r.u8("Flags")
        if flags & 0xE0:
            raise r.error(f"RFU flag bits set: 0x{flags:02X}")
        delay = _opt(bool(flags & 1), lambda: r.u16("Bolus Delay Time"))
        template = _opt(bool(flags & 2), lambda: r.u8("Bolus Template Number"))
        activation = (
            r.enum(BolusActivationType, r.u8("Activation Type"), "Activation Type")
            if flags & 4
            else None
        )
        return cls(delay, template, activation, bool(flags & 8), bool(flags & 16))


@dataclass(frozen=True, slots=True)
class BolusDeliveredPart2Event:
    """0x0096: flags · start time offset uint32 (s) · [activation] · [end reason] · [annunciation ID]."""

    start_time_offset_s: int
    activation_type: BolusActivationType | None = None
    end_reason: BolusEndReason | None = None
    annunciation_instance_id: int | None = None

    def __post_init__(self) -> None:
        check_range("start_time_offset_s", self.start_time_offset_s, 0, 0xFFFF_FFFF)
        if self.activation_type is not None:
            check_enum("activation_type", self.activation_type, BolusActivationType)
        if self.end_reason is not None:
            check_enum("end_reason", self.end_reason, BolusEndReason)
        if self.annunciation_instance_id is not None:
            check_range("annunciation_instance_id", self.annunciation_instance_id, 0, 0xFFFF)

    def __bytes__(self) -> bytes:
        flags = (
            (self.activation_type is not None)
            | (self.end_reason is not None) << 1
            | (self.annunciation_instance_id is not None) << 2
        )
        out = bytearray(_wire.u8(flags) + _wire.u32(self.start_time_offset_s))
        if self.activation_type is not None:
            out += _wire.u8(self.activation_type)
        if self.end_reason is not None:
            out += _wire.u8(self.end_reason)
        if self.annunciation_instance_id is not None:
            out += _wire.u16(self.annunciation_instance_id)
        return bytes(out)

    @classmethod
    def read(cls, r: Reader) -> BolusDeliveredPart2Event:
        flags = r.u8("Flags")
        if flags & 0xF8:
            raise r.error(f"RFU flag bits set: 0x{flags:02X}")
        start = r.u32("Bolus Start Time Offset")
        activation = (
            r.enum(BolusActivationType, r.u8("Activation Type"), "Activation Type")
            if flags & 1
            else None
        )
        end = r.enum(BolusEndReason, r.u8("End Reason"), "End Reason") if flags & 2 else None
        annunciation = _opt(bool(flags & 4), lambda: r.u16("Annunciation Instance ID"))
        return cls(start, activation, end, annunciation)


@dataclass(frozen=True, slots=True)
class DeliveredBasalRateChangedEvent:
    """0x0099: flags · old rate SFLOAT (IU/h) · new rate SFLOAT (IU/h) · [context uint8]."""

    old_rate_iu_h: SFloat
    new_rate_iu_h: SFloat
    context: int | None = None  # 0x0F undetermined, 0x33 device based, 0x3C remote, ...

    def __post_init__(self) -> None:
        if self.context is not None:
            check_range("context", self.context, 0, 0xFF)

    def __bytes__(self) -> bytes:
        out = _wire.u8(self.context is not None) + bytes(self.old_rate_iu_h)
        out += bytes(self.new_rate_iu_h)
        return out + (_wire.u8(self.context) if self.context is not None else b"")

    @classmethod
    def read(cls, r: Reader) -> DeliveredBasalRateChangedEvent:
        flags = r.u8("Flags")
        if flags & 0xFE:
            raise r.error(f"RFU flag bits set: 0x{flags:02X}")
        old, new = _sfloat(r, "Old Basal Rate"), _sfloat(r, "New Basal Rate")
        context = _opt(bool(flags & 1), lambda: r.u8("Basal Delivery Context"))
        return cls(old, new, context)


@dataclass(frozen=True, slots=True)
class TbrStartedEvent:
    """0x00A5: flags (bit 0 template number present) · TBR type · value SFLOAT ·
    programmed duration min uint16 · [template number uint8].

    ``value`` is IU/h for an absolute TBR, a dimensionless factor for a relative one.
    Verified against ehealthinnovation/AndroidBLEParser and tidepool-org/
    InsulinDeliveryServiceKit (both agree; flag bits 1-7 are RFU in the event).
    """

    tbr_type: TbrType
    value: SFloat
    duration_min: int
    template_number: int | None = None

    def __post_init__(self) -> None:
        check_enum("tbr_type", self.tbr_type, TbrType)
        check_range("duration_min", self.duration_min, 0, 0xFFFF)
        if self.template_number is not None:
            check_range("template_number", self.template_number, 0, 0xFF)

    def __bytes__(self) -> bytes:
        out = _wire.u8(self.template_number is not None) + _wire.u8(self.tbr_type)
        out += bytes(self.value) + _wire.u16(self.duration_min)
        return out + _opt_u8(self.template_number)

    @classmethod
    def read(cls, r: Reader) -> TbrStartedEvent:
        flags = _flags(r, 0xFE)
        kind = r.enum(TbrType, r.u8("TBR Type"), "TBR Type")
        value = _sfloat(r, "TBR Adjustment Value")
        duration = r.u16("TBR Duration Programmed")
        template = _opt(bool(flags & 1), lambda: r.u8("TBR Template Number"))
        return build(r, lambda: cls(kind, value, duration, template))


@dataclass(frozen=True, slots=True)
class TbrChangedEvent:
    """0x00C3: flags (bit 0 template number present) · TBR type · value SFLOAT ·
    programmed duration min uint16 · elapsed duration min uint16 · [template number].

    Verified against ehealthinnovation/AndroidBLEParser and tidepool-org/
    InsulinDeliveryServiceKit.
    """

    tbr_type: TbrType
    value: SFloat
    duration_min: int
    elapsed_min: int
    template_number: int | None = None

    def __post_init__(self) -> None:
        check_enum("tbr_type", self.tbr_type, TbrType)
        check_range("duration_min", self.duration_min, 0, 0xFFFF)
        check_range("elapsed_min", self.elapsed_min, 0, 0xFFFF)
        if self.template_number is not None:
            check_range("template_number", self.template_number, 0, 0xFF)

    def __bytes__(self) -> bytes:
        out = _wire.u8(self.template_number is not None) + _wire.u8(self.tbr_type)
        out += bytes(self.value) + _wire.u16(self.duration_min) + _wire.u16(self.elapsed_min)
        return out + _opt_u8(self.template_number)

    @classmethod
    def read(cls, r: Reader) -> TbrChangedEvent:
        flags = _flags(r, 0xFE)
        kind = r.enum(TbrType, r.u8("TBR Type"), "TBR Type")
        value = _sfloat(r, "TBR Adjustment Value")
        duration = r.u16("TBR Duration Programmed")
        elapsed = r.u16("TBR Duration Elapsed")
        template = _opt(bool(flags & 1), lambda: r.u8("TBR Template Number"))
        return build(r, lambda: cls(kind, value, duration, elapsed, template))


@dataclass(frozen=True, slots=True)
class TbrEndedEvent:
    """0x00AA: flags (bit 0 last template number, bit 1 annunciation ID present) ·
    last set TBR type · effective duration min uint16 · end reason · [last template
    number uint8] · [annunciation instance ID uint16]. The event carries no TBR value.

    Verified against ehealthinnovation/AndroidBLEParser (and its JDRF parser) and
    tidepool-org/InsulinDeliveryServiceKit.
    """

    last_tbr_type: TbrType
    effective_duration_min: int
    end_reason: TbrEndReason
    last_template_number: int | None = None
    annunciation_instance_id: int | None = None

    def __post_init__(self) -> None:
        check_enum("last_tbr_type", self.last_tbr_type, TbrType)
        check_range("effective_duration_min", self.effective_duration_min, 0, 0xFFFF)
        check_enum("end_reason", self.end_reason, TbrEndReason)
        if self.last_template_number is not None:
            check_range("last_template_number", self.last_template_number, 0, 0xFF)
        if self.annunciation_instance_id is not None:
            check_range("annunciation_instance_id", self.annunciation_instance_id, 0, 0xFFFF)

    def __bytes__(self) -> bytes:
        flags = (self.last_template_number is not None) | (
            self.annunciation_instance_id is not None
        ) << 1
        out = _wire.u8(flags) + _wire.u8(self.last_tbr_type)
        out += _wire.u16(self.effective_duration_min) + _wire.u8(self.end_reason)
        out += _opt_u8(self.last_template_number)
        if self.annunciation_instance_id is not None:
            out += _wire.u16(self.annunciation_instance_id)
        return out

    @classmethod
    def read(cls, r: Reader) -> TbrEndedEvent:
        flags = _flags(r, 0xFC)
        kind = r.enum(TbrType, r.u8("Last Set TBR Type"), "Last Set TBR Type")
        duration = r.u16("Effective TBR Duration")
        end = r.enum(TbrEndReason, r.u8("TBR End Reason"), "TBR End Reason")
        template = _opt(bool(flags & 1), lambda: r.u8("Last Set TBR Template Number"))
        annunciation = _opt(bool(flags & 2), lambda: r.u16("Annunciation Instance ID"))
        return build(r, lambda: cls(kind, duration, end, template, annunciation))


@dataclass(frozen=True, slots=True)
class TotalDailyInsulinEvent:
    """0x00FF: flags (bit 0 date time changed warning) · bolus sum SFLOAT (IU) · basal
    sum SFLOAT (IU) · date (year uint16, month uint8, day uint8).

    Verified against ehealthinnovation/AndroidBLEParser and tidepool-org/
    InsulinDeliveryServiceKit (both read the flags octet first).
    """

    bolus_iu: SFloat
    basal_iu: SFloat
    date: DateTime  # hours, minutes and seconds are always 0
    date_time_changed_warning: bool = False

    def __post_init__(self) -> None:
        if (self.date.hours, self.date.minutes, self.date.seconds) != (0, 0, 0):
            raise EncodeError("total daily insulin carries a date without a time")

    def __bytes__(self) -> bytes:
        out = _wire.u8(self.date_time_changed_warning)
        return out + bytes(self.bolus_iu) + bytes(self.basal_iu) + bytes(self.date)[:4]

    @classmethod
    def read(cls, r: Reader) -> TotalDailyInsulinEvent:
        warning = bool(_flags(r, 0xFE) & 1)
        bolus, basal = _sfloat(r, "Total Bolus"), _sfloat(r, "Total Basal")
        year, month, day = r.u16("Year"), r.u8("Month"), r.u8("Day")
        return build(r, lambda: cls(bolus, basal, DateTime(year, month, day), warning))


@dataclass(frozen=True, slots=True)
class ReservoirRemainingEvent:
    """0x0330: reservoir remaining amount SFLOAT (IU), no flags.

    Verified against ehealthinnovation/AndroidBLEParser and tidepool-org/
    InsulinDeliveryServiceKit.
    """

    remaining_iu: SFloat

    def __bytes__(self) -> bytes:
        return bytes(self.remaining_iu)

    @classmethod
    def read(cls, r: Reader) -> ReservoirRemainingEvent:
        return cls(_sfloat(r, "Reservoir Remaining Amount"))


@dataclass(frozen=True, slots=True)
class AnnunciationChangedPart1Event:
    """0x033F: flags · instance ID uint16 · type uint16 · status uint8 · [AuxInfo1] ·
    [AuxInfo2] (verified against ehealthinnovation/AndroidBLEParser and tidepool-org/
    InsulinDeliveryServiceKit)."""

    instance_id: int
    type: int
    status: AnnunciationStatus
    aux_info1: int | None = None
    aux_info2: int | None = None

    def __post_init__(self) -> None:
        check_range("instance_id", self.instance_id, 0, 0xFFFF)
        check_range("type", self.type, 0, 0xFFFF)
        check_enum("status", self.status, AnnunciationStatus)
        for name, aux in (("aux_info1", self.aux_info1), ("aux_info2", self.aux_info2)):
            if aux is not None:
                check_range(name, aux, 0, 0xFFFF)

    def __bytes__(self) -> bytes:
        flags = (self.aux_info1 is not None) | (self.aux_info2 is not None) << 1
        out = bytearray(_wire.u8(flags) + _wire.u16(self.instance_id) + _wire.u16(self.type))
        out += _wire.u8(self.status)
        for aux in (self.aux_info1, self.aux_info2):
            if aux is not None:
                out += _wire.u16(aux)
        return bytes(out)

    @classmethod
    def read(cls, r: Reader) -> AnnunciationChangedPart1Event:
        flags = r.u8("Flags")
        if flags & 0xFC:
            raise r.error(f"RFU flag bits set: 0x{flags:02X}")
        instance, kind = r.u16("Annunciation Instance ID"), r.u16("Annunciation Type")
        status = r.enum(AnnunciationStatus, r.u8("Annunciation Status"), "Annunciation Status")
        aux1 = _opt(bool(flags & 1), lambda: r.u16("AuxInfo1"))
        aux2 = _opt(bool(flags & 2), lambda: r.u16("AuxInfo2"))
        return cls(instance, kind, status, aux1, aux2)


@dataclass(frozen=True, slots=True)
class AnnunciationChangedPart2Event:
    """0x0356: flags · [AuxInfo3] · [AuxInfo4] · [AuxInfo5] (verified as part 1)."""

    aux_info3: int | None = None
    aux_info4: int | None = None
    aux_info5: int | None = None

    def __post_init__(self) -> None:
        for name, aux in (
            ("aux_info3", self.aux_info3),
            ("aux_info4", self.aux_info4),
            ("aux_info5", self.aux_info5),
        ):
            if aux is not None:
                check_range(name, aux, 0, 0xFFFF)

    def __bytes__(self) -> bytes:
        auxes = (self.aux_info3, self.aux_info4, self.aux_info5)
        flags = sum(1 << i for i, aux in enumerate(auxes) if aux is not None)
        return _wire.u8(flags) + b"".join(_wire.u16(a) for a in auxes if a is not None)

    @classmethod
    def read(cls, r: Reader) -> AnnunciationChangedPart2Event:
        flags = r.u8("Flags")
        if flags & 0xF8:
            raise r.error(f"RFU flag bits set: 0x{flags:02X}")
        aux3 = _opt(bool(flags & 1), lambda: r.u16("AuxInfo3"))
        aux4 = _opt(bool(flags & 2), lambda: r.u16("AuxInfo4"))
        aux5 = _opt(bool(flags & 4), lambda: r.u16("AuxInfo5"))
        return cls(aux3, aux4, aux5)


_T = IddEventType
EVENT_READERS: Final[dict[int, Callable[[Reader], EventData]]] = {
    _T.REFERENCE_TIME: ReferenceTimeEvent.read,
    _T.BOLUS_PROGRAMMED_PART_1: BolusPart1Event.read,
    _T.BOLUS_PROGRAMMED_PART_2: BolusProgrammedPart2Event.read,
    _T.BOLUS_DELIVERED_PART_1: BolusPart1Event.read,
    _T.BOLUS_DELIVERED_PART_2: BolusDeliveredPart2Event.read,
    _T.DELIVERED_BASAL_RATE_CHANGED: DeliveredBasalRateChangedEvent.read,
    _T.TBR_ADJUSTMENT_STARTED: TbrStartedEvent.read,
    _T.TBR_ADJUSTMENT_CHANGED: TbrChangedEvent.read,
    _T.TBR_ADJUSTMENT_ENDED: TbrEndedEvent.read,
    _T.TOTAL_DAILY_INSULIN_DELIVERY: TotalDailyInsulinEvent.read,
    _T.RESERVOIR_REMAINING_AMOUNT_CHANGED: ReservoirRemainingEvent.read,
    _T.ANNUNCIATION_STATUS_CHANGED_PART_1: AnnunciationChangedPart1Event.read,
    _T.ANNUNCIATION_STATUS_CHANGED_PART_2: AnnunciationChangedPart2Event.read,
}
EVENT_CLASSES: Final[dict[int, tuple[type, ...]]] = {
    _T.REFERENCE_TIME: (ReferenceTimeEvent,),
    _T.BOLUS_PROGRAMMED_PART_1: (BolusPart1Event,),
    _T.BOLUS_PROGRAMMED_PART_2: (BolusProgrammedPart2Event,),
    _T.BOLUS_DELIVERED_PART_1: (BolusPart1Event,),
    _T.BOLUS_DELIVERED_PART_2: (BolusDeliveredPart2Event,),
    _T.DELIVERED_BASAL_RATE_CHANGED: (DeliveredBasalRateChangedEvent,),
    _T.TBR_ADJUSTMENT_STARTED: (TbrStartedEvent,),
    _T.TBR_ADJUSTMENT_CHANGED: (TbrChangedEvent,),
    _T.TBR_ADJUSTMENT_ENDED: (TbrEndedEvent,),
    _T.TOTAL_DAILY_INSULIN_DELIVERY: (TotalDailyInsulinEvent,),
    _T.RESERVOIR_REMAINING_AMOUNT_CHANGED: (ReservoirRemainingEvent,),
    _T.ANNUNCIATION_STATUS_CHANGED_PART_1: (AnnunciationChangedPart1Event,),
    _T.ANNUNCIATION_STATUS_CHANGED_PART_2: (AnnunciationChangedPart2Event,),
}


@dataclass(frozen=True, slots=True)
class IddHistoryData:
    """IDD History Data: Event Type uint16 · Sequence Number uint32 · Relative Offset
    uint16 (s) · Event Data · [E2E-Counter · E2E-CRC].

    ``event_data`` is a decoded event for the types in :data:`EVENT_READERS` and the raw
    octets (``bytes``) for every other type, known or not.
    """

    event_type: int
    sequence_number: int
    relative_offset_s: int
    event_data: EventData | bytes = b""
    e2e_counter: int | None = None

    CHARACTERISTIC = "IDD History Data"

    def __post_init__(self) -> None:
        check_range("event_type", self.event_type, 0, 0xFFFF)
        check_range("sequence_number", self.sequence_number, 0, 0xFFFF_FFFF)
        check_range("relative_offset_s", self.relative_offset_s, 0, 0xFFFF)
        _check_counter(self.e2e_counter)
        expected = EVENT_CLASSES.get(self.event_type)
        if expected is None:
            if not isinstance(self.event_data, bytes):
                raise EncodeError(f"event type 0x{self.event_type:04X} carries raw bytes")
        elif not isinstance(self.event_data, expected):
            raise EncodeError(
                f"event type 0x{self.event_type:04X} needs {expected[0].__name__} event data"
            )

    @property
    def event_name(self) -> str | None:
        try:
            return IddEventType(self.event_type).name.lower()
        except ValueError:
            return None

    def __bytes__(self) -> bytes:
        body = (
            _wire.u16(self.event_type)
            + _wire.u32(self.sequence_number)
            + _wire.u16(self.relative_offset_s)
            + bytes(self.event_data)
        )
        return _with_e2e(body, self.e2e_counter)

    @classmethod
    def from_bytes(cls, data: bytes, *, e2e_expected: bool = False) -> IddHistoryData:
        body, counter = _split_e2e(cls.CHARACTERISTIC, data, e2e_expected)
        r = Reader(cls.CHARACTERISTIC, body)
        event_type = r.u16("Event Type")
        sequence = r.u32("Sequence Number")
        offset = r.u16("Relative Offset")
        reader = EVENT_READERS.get(event_type)
        event: EventData | bytes
        if reader is None:
            event = r.take(r.remaining, "Event Data")
        else:
            read = reader
            event = build(r, lambda: read(r))
        r.finish()
        if isinstance(event_type, int) and event_type in IddEventType._value2member_map_:
            event_type = IddEventType(event_type)
        return build(r, lambda: cls(event_type, sequence, offset, event, counter))


# --- IDD Record Access Control Point (0x2B27) -------------------------------------------
#
# The GLS/CGMS RACP procedures with Hamming-distance codes. Op codes, operators and
# filter types: ehealthinnovation/CCInsulinDelivery IDSRecordAccessControlPoint.swift
# and tidepool-org/InsulinDeliveryServiceKit RecordAccessControlPoint.swift agree.
# Response code values: only Success is a Hamming code (0xF0); the error values are the
# plain GLS numbers 0x02-0x0A (Tidepool lists all of them, CCInsulinDelivery 0x0A).
# Both clients send a filter type octet with All/First/Last records too; it is accepted
# and kept. Sequence numbers are uint32; the count response is uint32.

IDD_RACP_CHARACTERISTIC: Final = "IDD Record Access Control Point"

IDD_RACP_OPCODES: Final[dict[RacpOpcode, int]] = {
    RacpOpcode.REPORT_STORED_RECORDS: 0x33,
    RacpOpcode.DELETE_STORED_RECORDS: 0x3C,
    RacpOpcode.ABORT_OPERATION: 0x55,
    RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS: 0x5A,
    RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE: 0x66,
    RacpOpcode.RESPONSE_CODE: 0x0F,
}
IDD_RACP_OPERATORS: Final[dict[RacpOperator, int]] = {
    RacpOperator.NULL: 0x0F,
    RacpOperator.ALL_RECORDS: 0x33,
    RacpOperator.LESS_THAN_OR_EQUAL_TO: 0x3C,
    RacpOperator.GREATER_THAN_OR_EQUAL_TO: 0x55,
    RacpOperator.WITHIN_RANGE_OF: 0x5A,
    RacpOperator.FIRST_RECORD: 0x66,
    RacpOperator.LAST_RECORD: 0x69,
}
IDD_RACP_RESPONSE_CODES: Final[dict[RacpResponseCode, int]] = {
    RacpResponseCode.SUCCESS: 0xF0,
    RacpResponseCode.OP_CODE_NOT_SUPPORTED: 0x02,
    RacpResponseCode.INVALID_OPERATOR: 0x03,
    RacpResponseCode.OPERATOR_NOT_SUPPORTED: 0x04,
    RacpResponseCode.INVALID_OPERAND: 0x05,
    RacpResponseCode.NO_RECORDS_FOUND: 0x06,
    RacpResponseCode.ABORT_UNSUCCESSFUL: 0x07,
    RacpResponseCode.PROCEDURE_NOT_COMPLETED: 0x08,
    RacpResponseCode.OPERAND_NOT_SUPPORTED: 0x09,
}
# 0x0A "procedure not applicable" (IDS only) has no shared enum member: decoded as an error.
IDD_RACP_PROCEDURE_NOT_APPLICABLE: Final = 0x0A
_IDD_OPCODE_FROM: Final = {v: k for k, v in IDD_RACP_OPCODES.items()}
_IDD_OPERATOR_FROM: Final = {v: k for k, v in IDD_RACP_OPERATORS.items()}
_IDD_RESPONSE_FROM: Final = {v: k for k, v in IDD_RACP_RESPONSE_CODES.items()}
_IDD_REQUESTS: Final = frozenset(
    {
        RacpOpcode.REPORT_STORED_RECORDS,
        RacpOpcode.DELETE_STORED_RECORDS,
        RacpOpcode.ABORT_OPERATION,
        RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
    }
)
_IDD_FILTER_OPTIONAL: Final = frozenset(
    {RacpOperator.ALL_RECORDS, RacpOperator.FIRST_RECORD, RacpOperator.LAST_RECORD}
)


class IddFilterType(IntEnum):
    SEQUENCE_NUMBER = 0x0F
    SEQUENCE_NUMBER_REFERENCE_TIME_EVENTS = 0x33
    SEQUENCE_NUMBER_NON_REFERENCE_TIME_EVENTS = 0x3C


@dataclass(frozen=True, slots=True)
class IddRacpRequest:
    """Op Code · Operator · [Filter Type · uint32 value(s)], procedures as shared enums.

    Filtered operators need a filter type and one (two for a range) sequence numbers;
    All/First/Last records may carry a lone filter type; the rest carry nothing.
    """

    opcode: RacpOpcode
    operator: RacpOperator
    filter_type: IddFilterType | None = None
    operand: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.opcode not in _IDD_REQUESTS:
            raise EncodeError(f"{self.opcode!r} is not a request op code")
        check_enum("operator", self.operator, RacpOperator)
        if self.filter_type is not None:
            check_enum("filter_type", self.filter_type, IddFilterType)
        if self.operator in FILTERED_OPERATORS:
            want = 2 if self.operator is RacpOperator.WITHIN_RANGE_OF else 1
            if self.filter_type is None or len(self.operand) != want:
                raise EncodeError(f"{self.operator.name} takes a filter and {want} value(s)")
            for value in self.operand:
                check_range("sequence number", value, 0, 0xFFFF_FFFF)
        elif self.operand or (
            self.filter_type is not None and self.operator not in _IDD_FILTER_OPTIONAL
        ):
            raise EncodeError(f"{self.operator.name} takes no operand")

    def __bytes__(self) -> bytes:
        out = bytes((IDD_RACP_OPCODES[self.opcode], IDD_RACP_OPERATORS[self.operator]))
        if self.filter_type is not None:
            out += _wire.u8(self.filter_type) + b"".join(_wire.u32(v) for v in self.operand)
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> IddRacpRequest:
        r = Reader(IDD_RACP_CHARACTERISTIC, data)
        opcode = _IDD_OPCODE_FROM.get(r.u8("Op Code"))
        operator = _IDD_OPERATOR_FROM.get(r.u8("Operator"))
        if opcode is None or operator is None:
            raise r.error("unknown op code or operator")
        filter_type: IddFilterType | None = None
        values: tuple[int, ...] = ()
        if operator in FILTERED_OPERATORS or (operator in _IDD_FILTER_OPTIONAL and r.remaining):
            filter_type = r.enum(IddFilterType, r.u8("Filter Type"), "Filter Type")
            if operator in FILTERED_OPERATORS:
                count = 2 if operator is RacpOperator.WITHIN_RANGE_OF else 1
                values = tuple(r.u32("Sequence Number") for _ in range(count))
        r.finish()
        return build(r, lambda: cls(opcode, operator, filter_type, values))


@dataclass(frozen=True, slots=True)
class IddRacpResponse:
    """Number of Stored Records (``66 0F`` + uint32) or Response Code (``0F 0F`` +
    request op code + response value)."""

    opcode: RacpOpcode
    number_of_records: int | None = None
    request_opcode: RacpOpcode | None = None
    response_code: RacpResponseCode | None = None

    def __post_init__(self) -> None:
        if self.opcode is RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            check_range("number_of_records", self.number_of_records, 0, 0xFFFF_FFFF)
            if self.request_opcode is not None or self.response_code is not None:
                raise EncodeError("a count response carries only the count")
        elif self.opcode is RacpOpcode.RESPONSE_CODE:
            if self.number_of_records is not None:
                raise EncodeError("a response code carries no count")
            check_enum("request_opcode", self.request_opcode, RacpOpcode)
            check_enum("response_code", self.response_code, RacpResponseCode)
        else:
            raise EncodeError(f"{self.opcode!r} is not a response op code")

    @classmethod
    def count(cls, number: int) -> IddRacpResponse:
        return cls(RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE, number)

    @classmethod
    def code(cls, request: RacpOpcode, code: RacpResponseCode) -> IddRacpResponse:
        return cls(RacpOpcode.RESPONSE_CODE, None, request, code)

    def __bytes__(self) -> bytes:
        head = bytes((IDD_RACP_OPCODES[self.opcode], IDD_RACP_OPERATORS[RacpOperator.NULL]))
        if self.number_of_records is not None:
            return head + _wire.u32(self.number_of_records)
        assert self.request_opcode is not None and self.response_code is not None
        return head + bytes(
            (IDD_RACP_OPCODES[self.request_opcode], IDD_RACP_RESPONSE_CODES[self.response_code])
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> IddRacpResponse:
        r = Reader(IDD_RACP_CHARACTERISTIC, data)
        opcode = _IDD_OPCODE_FROM.get(r.u8("Op Code"))
        if r.u8("Operator") != IDD_RACP_OPERATORS[RacpOperator.NULL]:
            raise r.error("a response carries the Null operator")
        if opcode is RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            number = r.u32("Number of Records")
            r.finish()
            return cls.count(number)
        if opcode is not RacpOpcode.RESPONSE_CODE:
            raise r.error("not an IDD RACP response op code")
        request = _IDD_OPCODE_FROM.get(r.u8("Request Op Code"))
        value = r.u8("Response Code Value")
        r.finish()
        code = _IDD_RESPONSE_FROM.get(value)
        if request is None or code is None:
            raise r.error(f"unknown request op code or response value 0x{value:02X}")
        return cls.code(request, code)


def decode_idd_racp(data: bytes) -> IddRacpRequest | IddRacpResponse:
    """Decode either direction of the IDD RACP by its op code."""
    data = bytes(data)
    if data and _IDD_OPCODE_FROM.get(data[0]) in _IDD_REQUESTS:
        return IddRacpRequest.from_bytes(data)
    return IddRacpResponse.from_bytes(data)
