"""Glucose Measurement, Glucose Measurement Context and Glucose Feature."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DecodeError, EncodeError
from drivers.gls import (
    CarbohydrateId,
    GlucoseContext,
    GlucoseFeature,
    GlucoseFeatureBits,
    GlucoseMeasurement,
    GlucoseSensorStatus,
    GlucoseTester,
    GlucoseType,
    Health,
    Meal,
    MedicationId,
    SampleLocation,
)
from drivers.ieee11073 import SFloat
from drivers.sigtime import DateTime
from tests.drivers.codec_strategies import (
    FUZZ,
    ROUND_TRIP,
    glucose_contexts,
    glucose_features,
    glucose_measurements,
    only_decode_errors,
)

BASE = DateTime(2020, 12, 31, 23, 59, 59)
BASE_HEX = "e4070c1f173b3b"


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_full_measurement_kg_l_112_mg_dl() -> None:
    value = GlucoseMeasurement.from_bytes(h(f"1b 0100 {BASE_HEX} 0500 70b0 11 0100"))
    assert value == GlucoseMeasurement(
        sequence_number=1,
        base_time=BASE,
        time_offset_min=5,
        concentration=SFloat.from_raw(0xB070),
        unit="kg/L",
        type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
        sample_location=SampleLocation.FINGER,
        sensor_status=GlucoseSensorStatus.DEVICE_BATTERY_LOW,
        context_follows=True,
    )
    assert value.mg_dl == 112.0
    assert value.time == datetime(2021, 1, 1, 0, 4, 59)


def test_mol_l_5_mmol_l() -> None:
    value = GlucoseMeasurement.from_bytes(h(f"06 2a00 {BASE_HEX} 05d0 42"))
    assert value == GlucoseMeasurement(
        42,
        BASE,
        concentration=SFloat.from_raw(0xD005),
        unit="mol/L",
        type=GlucoseType.CAPILLARY_PLASMA,  # low nibble 2
        sample_location=SampleLocation.CONTROL_SOLUTION,  # high nibble 4
    )
    assert value.mmol_l == 5.0
    assert value.mg_dl == 90.07795


def test_negative_time_offset_is_sint16() -> None:
    value = GlucoseMeasurement.from_bytes(h(f"01 0700 {BASE_HEX} ffff"))
    assert value == GlucoseMeasurement(7, BASE, time_offset_min=-1)
    assert value.time == datetime(2020, 12, 31, 23, 58, 59)
    value = GlucoseMeasurement.from_bytes(h(f"01 0700 {BASE_HEX} 0080"))
    assert value.time_offset_min == -32768


def test_unknown_base_time_has_no_time() -> None:
    value = GlucoseMeasurement.from_bytes(h("01 0100 00000000000000 0a00"))
    assert value.time is None and value.time_offset_min == 10


def test_special_concentration_has_no_mg_dl() -> None:
    value = GlucoseMeasurement.from_bytes(h(f"02 0100 {BASE_HEX} ff07 11"))
    assert value.concentration == SFloat(special="NaN")
    assert value.mg_dl is None and value.mmol_l is None


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination(flags: int) -> None:
    wire = bytes([flags]) + h("3412") + h(BASE_HEX)
    expected = GlucoseMeasurement(0x1234, BASE, context_follows=bool(flags & 0x10))
    if flags & 0x01:
        wire += h("c4ff")  # -60 minutes
        expected = replace(expected, time_offset_min=-60)
    if flags & 0x02:
        wire += h("70b0 19")  # type 9 (ISF), location 1 (finger)
        expected = replace(
            expected,
            concentration=SFloat.from_raw(0xB070),
            unit="mol/L" if flags & 0x04 else "kg/L",
            type=GlucoseType.INTERSTITIAL_FLUID,
            sample_location=SampleLocation.FINGER,
        )
    if flags & 0x08:
        wire += h("2008")  # bits 5 and 11
        status = GlucoseSensorStatus.RESULT_TOO_HIGH | GlucoseSensorStatus.TIME_FAULT
        expected = replace(expected, sensor_status=status)
    value = GlucoseMeasurement.from_bytes(wire)
    assert value == expected
    if flags & 0x06 != 0x04:  # a unit bit without a concentration is not re-encoded
        assert bytes(value) == wire


@pytest.mark.parametrize(
    "data",
    [
        f"20 0100 {BASE_HEX}",  # RFU flag bit 5
        f"80 0100 {BASE_HEX}",  # RFU flag bit 7
        f"00 0100 {BASE_HEX[:-2]}",  # truncated base time
        f"01 0100 {BASE_HEX} 05",  # truncated time offset
        f"02 0100 {BASE_HEX} 70b0",  # concentration without type-location
        f"00 0100 {BASE_HEX} 00",  # trailing octet
        f"02 0100 {BASE_HEX} 70b0 10",  # type 0 is RFU
        f"02 0100 {BASE_HEX} 70b0 b1",  # type 11 is RFU
        f"02 0100 {BASE_HEX} 70b0 61",  # sample location 6 is RFU
        "00 0100 e4070d01000000",  # month 13
        "",
    ],
)
def test_measurement_rejects(data: str) -> None:
    with pytest.raises(DecodeError):
        GlucoseMeasurement.from_bytes(h(data))


def test_measurement_range_checks() -> None:
    with pytest.raises(EncodeError):
        GlucoseMeasurement(0x10000, BASE)
    with pytest.raises(EncodeError):
        GlucoseMeasurement(1, BASE, time_offset_min=40000)
    with pytest.raises(EncodeError):
        GlucoseMeasurement(1, BASE, concentration=SFloat.from_value(1))  # no unit/type
    with pytest.raises(EncodeError):
        GlucoseMeasurement(
            1,
            BASE,
            None,
            SFloat.from_value(1),
            "mg/dL",  # type: ignore[arg-type]
            GlucoseType(1),
            SampleLocation(1),
        )


def test_context_everything() -> None:
    data = h("ff 0500 00 01 0a00 02 12 1000 50 01 3c00 0d00")
    assert GlucoseContext.from_bytes(data) == GlucoseContext(
        sequence_number=5,
        extended_flags=0,
        carbohydrate_id=CarbohydrateId.BREAKFAST,
        carbohydrate_kg=SFloat.from_raw(0x000A),
        meal=Meal.POSTPRANDIAL,
        tester=GlucoseTester.HEALTH_CARE_PROFESSIONAL,  # low nibble 2
        health=Health.MINOR_HEALTH_ISSUES,  # high nibble 1
        exercise_duration_s=16,
        exercise_intensity_pct=80,
        medication_id=MedicationId.RAPID_ACTING_INSULIN,
        medication=SFloat.from_raw(0x003C),
        medication_unit="L",
        hba1c_pct=SFloat.from_raw(0x000D),
    )
    assert bytes(GlucoseContext.from_bytes(data)) == data


def test_context_minimal_and_kilograms() -> None:
    assert GlucoseContext.from_bytes(h("00 0900")) == GlucoseContext(9)
    value = GlucoseContext.from_bytes(h("10 0900 05 00d0"))
    assert value == GlucoseContext(
        9,
        medication_id=MedicationId.PRE_MIXED_INSULIN,
        medication=SFloat.from_raw(0xD000),
        medication_unit="kg",
    )


@pytest.mark.parametrize(
    "data",
    [
        "00 09",  # truncated sequence number
        "00 0900 00",  # padded with a zero octet (Nordic accepts; the spec does not)
        "01 0900 00 0a00",  # carbohydrate id 0 RFU
        "02 0900 06",  # meal 6 RFU
        "04 0900 04",  # tester 4 RFU
        "08 0900 1000 65",  # intensity 101 %
        "80 0900",  # extended flags announced, missing
        "40 0900 0d",  # truncated HbA1c
    ],
)
def test_context_rejects(data: str) -> None:
    with pytest.raises(DecodeError):
        GlucoseContext.from_bytes(h(data))


def test_feature() -> None:
    value = GlucoseFeature.from_bytes(h("0304"))
    assert value == GlucoseFeature(
        GlucoseFeatureBits.LOW_BATTERY_DETECTION
        | GlucoseFeatureBits.SENSOR_MALFUNCTION_DETECTION
        | GlucoseFeatureBits.MULTIPLE_BOND
    )
    assert bytes(value) == h("0304")
    for bad in ("03", "030400"):
        with pytest.raises(DecodeError):
            GlucoseFeature.from_bytes(h(bad))


@FUZZ
@given(st.binary(max_size=20))
def test_fuzz_gls(data: bytes) -> None:
    only_decode_errors(GlucoseMeasurement.from_bytes, data)
    only_decode_errors(GlucoseContext.from_bytes, data)
    only_decode_errors(GlucoseFeature.from_bytes, data)


@FUZZ
@given(st.integers(0, 0xFF), st.binary(min_size=9, max_size=16))
def test_fuzz_gls_with_valid_looking_flags(flags: int, rest: bytes) -> None:
    only_decode_errors(GlucoseMeasurement.from_bytes, bytes([flags]) + rest)
    only_decode_errors(GlucoseContext.from_bytes, bytes([flags]) + rest)


@ROUND_TRIP
@given(glucose_measurements(), glucose_contexts(), glucose_features)
def test_round_trip_gls(m: GlucoseMeasurement, c: GlucoseContext, f: GlucoseFeature) -> None:
    assert GlucoseMeasurement.from_bytes(bytes(m)) == m
    assert GlucoseContext.from_bytes(bytes(c)) == c
    assert GlucoseFeature.from_bytes(bytes(f)) == f
