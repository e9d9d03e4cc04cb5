"""Glucose Service (GLS 1.0) characteristics: Measurement, Measurement Context, Feature.

Layouts follow the GATT characteristic XML (glucose_measurement, glucose_measurement_
context, glucose_feature) and GLS 1.0 §3; docs/ble-profiles.md has the tables. Fields
are little-endian; in a Type-Sample Location or Tester-Health octet the field listed
first is the least significant nibble (XML notes).

Decoding is strict: a length that differs from the one the flags imply, an RFU flag
bit, or an RFU enumeration value is a DecodeError (the layout or meaning is then not
knowable). RFU bits of the Sensor Status Annunciation are kept, not rejected: they
carry no layout and a newer meter may define them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, IntFlag
from typing import Final, Literal

from drivers import _wire
from drivers._wire import Reader, build, check_enum, check_flags, check_range
from drivers.errors import EncodeError
from drivers.ieee11073 import SFloat
from drivers.sigtime import DateTime
from drivers.units import to_mg_dl, to_mmol_l

ConcentrationUnit = Literal["kg/L", "mol/L"]
MedicationUnit = Literal["kg", "L"]


# --- shared enumerations ---------------------------------------------------------------


class GlucoseType(IntEnum):
    """Type nibble (glucose_measurement XML; reused by CGM Feature); 0 and 11-15 RFU."""

    CAPILLARY_WHOLE_BLOOD = 1
    CAPILLARY_PLASMA = 2
    VENOUS_WHOLE_BLOOD = 3
    VENOUS_PLASMA = 4
    ARTERIAL_WHOLE_BLOOD = 5
    ARTERIAL_PLASMA = 6
    UNDETERMINED_WHOLE_BLOOD = 7
    UNDETERMINED_PLASMA = 8
    INTERSTITIAL_FLUID = 9
    CONTROL_SOLUTION = 10


class SampleLocation(IntEnum):
    """Sample Location nibble (glucose_measurement XML; CGM Feature XML adds 5)."""

    FINGER = 1
    ALTERNATE_SITE_TEST = 2
    EARLOBE = 3
    CONTROL_SOLUTION = 4
    SUBCUTANEOUS_TISSUE = 5  # cgm_feature XML only
    NOT_AVAILABLE = 15


def read_type_location(reader: Reader, what: str) -> tuple[GlucoseType, SampleLocation]:
    """One octet: Type in bits 0-3, Sample Location in bits 4-7 (XML nibble note)."""
    octet = reader.u8(what)
    return (
        reader.enum(GlucoseType, octet & 0x0F, f"{what} type"),
        reader.enum(SampleLocation, octet >> 4, f"{what} sample location"),
    )


def type_location_octet(kind: GlucoseType, location: SampleLocation) -> bytes:
    return _wire.u8(int(kind) | int(location) << 4)


# --- Glucose Measurement (0x2A18) -------------------------------------------------------


class GlucoseMeasurementFlags(IntFlag):
    """Flags octet of Glucose Measurement; bits 5-7 RFU."""

    TIME_OFFSET_PRESENT = 0x01
    CONCENTRATION_PRESENT = 0x02  # with the Type-Sample Location octet
    UNIT_MOL_L = 0x04  # 0: kg/L, 1: mol/L
    SENSOR_STATUS_PRESENT = 0x08
    CONTEXT_FOLLOWS = 0x10


GLUCOSE_MEASUREMENT_RFU_FLAGS: Final = 0xE0  # bits 5-7


class GlucoseSensorStatus(IntFlag):
    """Sensor Status Annunciation (16 bits); bits 12-15 RFU (kept when received)."""

    DEVICE_BATTERY_LOW = 1 << 0
    SENSOR_MALFUNCTION = 1 << 1
    SAMPLE_SIZE_INSUFFICIENT = 1 << 2
    STRIP_INSERTION_ERROR = 1 << 3
    STRIP_TYPE_INCORRECT = 1 << 4
    RESULT_TOO_HIGH = 1 << 5
    RESULT_TOO_LOW = 1 << 6
    TEMPERATURE_TOO_HIGH = 1 << 7
    TEMPERATURE_TOO_LOW = 1 << 8
    READ_INTERRUPTED = 1 << 9
    GENERAL_DEVICE_FAULT = 1 << 10
    TIME_FAULT = 1 << 11


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    """One Glucose Measurement record.

    ``time_offset_min`` is a signed 16-bit minute offset added to ``base_time`` (XML:
    sint16). ``concentration`` is the SFLOAT as sent, in ``unit`` (kg/L or mol/L);
    ``type``/``sample_location`` come with it. Optional fields are None when absent.
    """

    sequence_number: int
    base_time: DateTime
    time_offset_min: int | None = None
    concentration: SFloat | None = None
    unit: ConcentrationUnit | None = None
    type: GlucoseType | None = None
    sample_location: SampleLocation | None = None
    sensor_status: GlucoseSensorStatus | None = None
    context_follows: bool = False

    CHARACTERISTIC = "Glucose Measurement"
    MIN_SIZE = 10  # flags 1 + sequence 2 + base time 7
    MAX_SIZE = 17  # + time offset 2 + concentration 2 + type/location 1 + status 2

    def __post_init__(self) -> None:
        check_range("sequence_number", self.sequence_number, 0, 0xFFFF)
        if not isinstance(self.base_time, DateTime):
            raise EncodeError("base_time must be a DateTime")
        if self.time_offset_min is not None:
            check_range("time_offset_min", self.time_offset_min, -0x8000, 0x7FFF)
        group = (self.concentration, self.unit, self.type, self.sample_location)
        if any(v is None for v in group) and any(v is not None for v in group):
            raise EncodeError(
                "concentration, unit, type and sample_location go together (all or none)"
            )
        if self.concentration is not None:
            if not isinstance(self.concentration, SFloat):
                raise EncodeError("concentration must be an SFloat")
            if self.unit not in ("kg/L", "mol/L"):
                raise EncodeError(f"unit must be 'kg/L' or 'mol/L', got {self.unit!r}")
            check_enum("type", self.type, GlucoseType)
            check_enum("sample_location", self.sample_location, SampleLocation)
        if self.sensor_status is not None:
            check_flags("sensor_status", self.sensor_status, GlucoseSensorStatus, 16)
        if not isinstance(self.context_follows, bool):
            raise EncodeError("context_follows must be a bool")

    @property
    def flags(self) -> GlucoseMeasurementFlags:
        f = GlucoseMeasurementFlags(0)
        if self.time_offset_min is not None:
            f |= GlucoseMeasurementFlags.TIME_OFFSET_PRESENT
        if self.concentration is not None:
            f |= GlucoseMeasurementFlags.CONCENTRATION_PRESENT
            if self.unit == "mol/L":
                f |= GlucoseMeasurementFlags.UNIT_MOL_L
        if self.sensor_status is not None:
            f |= GlucoseMeasurementFlags.SENSOR_STATUS_PRESENT
        if self.context_follows:
            f |= GlucoseMeasurementFlags.CONTEXT_FOLLOWS
        return f

    @property
    def time(self) -> datetime | None:
        """Base Time plus Time Offset (device wall clock); None when the date is unknown."""
        base = self.base_time.to_datetime()
        if base is None:
            return None
        return base + timedelta(minutes=self.time_offset_min or 0)

    @property
    def mg_dl(self) -> float | None:
        """Concentration in mg/dL; None when absent or a special SFLOAT value."""
        if self.concentration is None or self.concentration.value is None or self.unit is None:
            return None
        return to_mg_dl(self.concentration.value, self.unit)

    @property
    def mmol_l(self) -> float | None:
        """Concentration in mmol/L; None when absent or a special SFLOAT value."""
        if self.concentration is None or self.concentration.value is None or self.unit is None:
            return None
        return to_mmol_l(self.concentration.value, self.unit)

    @classmethod
    def from_bytes(cls, data: bytes) -> GlucoseMeasurement:
        r = Reader(cls.CHARACTERISTIC, data)
        flags = r.u8("Flags")
        if flags & GLUCOSE_MEASUREMENT_RFU_FLAGS:
            raise r.error(f"RFU flag bits set: 0x{flags:02X}")
        seq = r.u16("Sequence Number")
        base = DateTime.read(r, "Base Time")
        offset = r.s16("Time Offset") if flags & 0x01 else None  # flag bit 0
        conc: SFloat | None = None
        unit: ConcentrationUnit | None = None
        kind: GlucoseType | None = None
        location: SampleLocation | None = None
        if flags & 0x02:  # flag bit 1: concentration + Type-Sample Location
            conc = SFloat.from_raw(r.u16("Glucose Concentration"))
            unit = "mol/L" if flags & 0x04 else "kg/L"  # flag bit 2
            kind, location = read_type_location(r, "Type-Sample Location")
        status = GlucoseSensorStatus(r.u16("Sensor Status Annunciation")) if flags & 0x08 else None
        r.finish()
        return build(
            r,
            lambda: cls(seq, base, offset, conc, unit, kind, location, status, bool(flags & 0x10)),
        )

    def __bytes__(self) -> bytes:
        out = bytearray(_wire.u8(int(self.flags)))
        out += _wire.u16(self.sequence_number)
        out += bytes(self.base_time)
        if self.time_offset_min is not None:
            out += _wire.s16(self.time_offset_min)
        if self.concentration is not None:
            assert self.type is not None and self.sample_location is not None
            out += bytes(self.concentration)
            out += type_location_octet(self.type, self.sample_location)
        if self.sensor_status is not None:
            out += _wire.u16(int(self.sensor_status))
        return bytes(out)


# --- Glucose Measurement Context (0x2A34) -----------------------------------------------


class GlucoseContextFlags(IntFlag):
    """Flags octet of Glucose Measurement Context (no RFU bits)."""

    CARBOHYDRATE_PRESENT = 0x01
    MEAL_PRESENT = 0x02
    TESTER_HEALTH_PRESENT = 0x04
    EXERCISE_PRESENT = 0x08
    MEDICATION_PRESENT = 0x10
    MEDICATION_UNIT_LITRES = 0x20  # 0: kilograms, 1: litres
    HBA1C_PRESENT = 0x40
    EXTENDED_FLAGS_PRESENT = 0x80


class CarbohydrateId(IntEnum):
    BREAKFAST = 1
    LUNCH = 2
    DINNER = 3
    SNACK = 4
    DRINK = 5
    SUPPER = 6
    BRUNCH = 7


class Meal(IntEnum):
    PREPRANDIAL = 1
    POSTPRANDIAL = 2
    FASTING = 3
    CASUAL = 4
    BEDTIME = 5


class GlucoseTester(IntEnum):
    SELF = 1
    HEALTH_CARE_PROFESSIONAL = 2
    LAB_TEST = 3
    NOT_AVAILABLE = 15


class Health(IntEnum):
    MINOR_HEALTH_ISSUES = 1
    MAJOR_HEALTH_ISSUES = 2
    DURING_MENSES = 3
    UNDER_STRESS = 4
    NO_HEALTH_ISSUES = 5
    NOT_AVAILABLE = 15


class MedicationId(IntEnum):
    RAPID_ACTING_INSULIN = 1
    SHORT_ACTING_INSULIN = 2
    INTERMEDIATE_ACTING_INSULIN = 3
    LONG_ACTING_INSULIN = 4
    PRE_MIXED_INSULIN = 5


EXERCISE_DURATION_OVERRUN: Final = 0xFFFF  # XML: 65535 = "Overrun"


@dataclass(frozen=True, slots=True)
class GlucoseContext:
    """Glucose Measurement Context; pairs (id + amount, tester + health, ...) go together.

    Units as the XML states them: carbohydrate in kilograms, medication in kilograms or
    litres, HbA1c in percent, exercise duration in seconds (65535 = overrun).
    ``extended_flags`` is the raw Extended Flags octet (all bits RFU), None if absent.
    """

    sequence_number: int
    extended_flags: int | None = None
    carbohydrate_id: CarbohydrateId | None = None
    carbohydrate_kg: SFloat | None = None
    meal: Meal | None = None
    tester: GlucoseTester | None = None
    health: Health | None = None
    exercise_duration_s: int | None = None
    exercise_intensity_pct: int | None = None
    medication_id: MedicationId | None = None
    medication: SFloat | None = None
    medication_unit: MedicationUnit | None = None
    hba1c_pct: SFloat | None = None

    CHARACTERISTIC = "Glucose Measurement Context"

    def __post_init__(self) -> None:
        check_range("sequence_number", self.sequence_number, 0, 0xFFFF)
        if self.extended_flags is not None:
            check_range("extended_flags", self.extended_flags, 0, 0xFF)
        pairs = (
            ("carbohydrate", (self.carbohydrate_id, self.carbohydrate_kg)),
            ("tester/health", (self.tester, self.health)),
            ("exercise", (self.exercise_duration_s, self.exercise_intensity_pct)),
            ("medication", (self.medication_id, self.medication, self.medication_unit)),
        )
        for name, group in pairs:
            if any(v is None for v in group) and any(v is not None for v in group):
                raise EncodeError(f"{name} fields go together (all or none)")
        if self.carbohydrate_id is not None:
            check_enum("carbohydrate_id", self.carbohydrate_id, CarbohydrateId)
        if self.meal is not None:
            check_enum("meal", self.meal, Meal)
        if self.tester is not None:
            check_enum("tester", self.tester, GlucoseTester)
            check_enum("health", self.health, Health)
        if self.exercise_duration_s is not None:
            check_range("exercise_duration_s", self.exercise_duration_s, 0, 0xFFFF)
            assert self.exercise_intensity_pct is not None
            check_range("exercise_intensity_pct", self.exercise_intensity_pct, 0, 100)
        if self.medication_id is not None:
            check_enum("medication_id", self.medication_id, MedicationId)
            if self.medication_unit not in ("kg", "L"):
                raise EncodeError(
                    f"medication_unit must be 'kg' or 'L', not {self.medication_unit!r}"
                )
        for name, value in (
            ("carbohydrate_kg", self.carbohydrate_kg),
            ("medication", self.medication),
            ("hba1c_pct", self.hba1c_pct),
        ):
            if value is not None and not isinstance(value, SFloat):
                raise EncodeError(f"{name} must be an SFloat")

    @property
    def flags(self) -> GlucoseContextFlags:
        f = GlucoseContextFlags(0)
        if self.carbohydrate_id is not None:
            f |= GlucoseContextFlags.CARBOHYDRATE_PRESENT
        if self.meal is not None:
            f |= GlucoseContextFlags.MEAL_PRESENT
        if self.tester is not None:
            f |= GlucoseContextFlags.TESTER_HEALTH_PRESENT
        if self.exercise_duration_s is not None:
            f |= GlucoseContextFlags.EXERCISE_PRESENT
        if self.medication_id is not None:
            f |= GlucoseContextFlags.MEDICATION_PRESENT
            if self.medication_unit == "L":
                f |= GlucoseContextFlags.MEDICATION_UNIT_LITRES
        if self.hba1c_pct is not None:
            f |= GlucoseContextFlags.HBA1C_PRESENT
        if self.extended_flags is not None:
            f |= GlucoseContextFlags.EXTENDED_FLAGS_PRESENT
        return f

    @classmethod
    def from_bytes(cls, data: bytes) -> GlucoseContext:
        r = Reader(cls.CHARACTERISTIC, data)
        flags = r.u8("Flags")
        seq = r.u16("Sequence Number")
        # Extended Flags directly follow the sequence number (XML field order).
        ext = r.u8("Extended Flags") if flags & 0x80 else None
        carb_id = carb = None
        if flags & 0x01:
            carb_id = r.enum(CarbohydrateId, r.u8("Carbohydrate ID"), "Carbohydrate ID")
            carb = SFloat.from_raw(r.u16("Carbohydrate"))
        meal = r.enum(Meal, r.u8("Meal"), "Meal") if flags & 0x02 else None
        tester = health = None
        if flags & 0x04:  # Tester bits 0-3, Health bits 4-7 (XML nibble note)
            octet = r.u8("Tester-Health")
            tester = r.enum(GlucoseTester, octet & 0x0F, "Tester")
            health = r.enum(Health, octet >> 4, "Health")
        duration = intensity = None
        if flags & 0x08:
            duration = r.u16("Exercise Duration")
            intensity = r.u8("Exercise Intensity")
        med_id = med = None
        med_unit: MedicationUnit | None = None
        if flags & 0x10:
            med_id = r.enum(MedicationId, r.u8("Medication ID"), "Medication ID")
            med = SFloat.from_raw(r.u16("Medication"))
            med_unit = "L" if flags & 0x20 else "kg"
        hba1c = SFloat.from_raw(r.u16("HbA1c")) if flags & 0x40 else None
        r.finish()
        return build(
            r,
            lambda: cls(
                seq, ext, carb_id, carb, meal, tester, health, duration, intensity,
                med_id, med, med_unit, hba1c,
            ),
        )  # fmt: skip

    def __bytes__(self) -> bytes:
        out = bytearray(_wire.u8(int(self.flags)))
        out += _wire.u16(self.sequence_number)
        if self.extended_flags is not None:
            out += _wire.u8(self.extended_flags)
        if self.carbohydrate_id is not None and self.carbohydrate_kg is not None:
            out += _wire.u8(self.carbohydrate_id) + bytes(self.carbohydrate_kg)
        if self.meal is not None:
            out += _wire.u8(self.meal)
        if self.tester is not None and self.health is not None:
            out += _wire.u8(int(self.tester) | int(self.health) << 4)
        if self.exercise_duration_s is not None and self.exercise_intensity_pct is not None:
            out += _wire.u16(self.exercise_duration_s) + _wire.u8(self.exercise_intensity_pct)
        if self.medication_id is not None and self.medication is not None:
            out += _wire.u8(self.medication_id) + bytes(self.medication)
        if self.hba1c_pct is not None:
            out += bytes(self.hba1c_pct)
        return bytes(out)


# --- Glucose Feature (0x2A51) -----------------------------------------------------------


class GlucoseFeatureBits(IntFlag):
    """Glucose Feature (16 bits); bits 11-15 RFU (kept when received)."""

    LOW_BATTERY_DETECTION = 1 << 0
    SENSOR_MALFUNCTION_DETECTION = 1 << 1
    SENSOR_SAMPLE_SIZE = 1 << 2
    SENSOR_STRIP_INSERTION_ERROR_DETECTION = 1 << 3
    SENSOR_STRIP_TYPE_ERROR_DETECTION = 1 << 4
    SENSOR_RESULT_HIGH_LOW_DETECTION = 1 << 5
    SENSOR_TEMPERATURE_HIGH_LOW_DETECTION = 1 << 6
    SENSOR_READ_INTERRUPT_DETECTION = 1 << 7
    GENERAL_DEVICE_FAULT = 1 << 8
    TIME_FAULT = 1 << 9
    MULTIPLE_BOND = 1 << 10


NO_GLUCOSE_FEATURES: Final = GlucoseFeatureBits(0)


@dataclass(frozen=True, slots=True)
class GlucoseFeature:
    """Glucose Feature: one 16-bit field, exactly 2 octets."""

    features: GlucoseFeatureBits = NO_GLUCOSE_FEATURES

    CHARACTERISTIC = "Glucose Feature"

    def __post_init__(self) -> None:
        check_flags("features", self.features, GlucoseFeatureBits, 16)

    @classmethod
    def from_bytes(cls, data: bytes) -> GlucoseFeature:
        r = Reader(cls.CHARACTERISTIC, data)
        value = GlucoseFeatureBits(r.u16("Glucose Feature"))
        r.finish()
        return cls(value)

    def __bytes__(self) -> bytes:
        return _wire.u16(int(self.features))
