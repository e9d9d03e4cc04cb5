"""Hypothesis strategies for the SIG codec values, and the shared fuzz settings."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from drivers.cgms import (
    CgmCalibration,
    CgmCalibrationStatus,
    CgmCalTempOctet,
    CgmFeature,
    CgmFeatureBits,
    CgmMeasurement,
    CgmSocp,
    CgmSocpOpcode,
    CgmSocpResponseCode,
    CgmStatus,
    CgmStatusOctet,
    CgmWarningOctet,
    SessionRunTime,
    SessionStartTime,
)
from drivers.errors import DecodeError
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
from drivers.ieee11073 import Float, SFloat
from drivers.racp import (
    CgmsFilterType,
    GlsFilterType,
    RacpOpcode,
    RacpOperator,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
)
from drivers.sigtime import AdjustReason, CurrentTime, DateTime, DayOfWeek, DstOffset, TimeZone

T = TypeVar("T")

# Modest budgets: the whole codec suite must stay quick on two cores.
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=200, deadline=None)


def only_decode_errors(decode: Callable[[bytes], Any], data: bytes) -> None:
    """Run ``decode``; a DecodeError is fine, anything else fails the test."""
    with contextlib.suppress(DecodeError):
        decode(data)


def optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | strategy


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
sfloats = st.integers(0, 0xFFFF).map(SFloat.from_raw)
floats32 = st.integers(0, 0xFFFF_FFFF).map(Float.from_raw)

known_date_times = st.datetimes(
    min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(DateTime.from_datetime)
unknown_date_times = st.builds(
    DateTime,
    year=st.just(0),
    month=st.integers(0, 12),
    day=st.integers(0, 31),
    hours=st.integers(0, 23),
    minutes=st.integers(0, 59),
    seconds=st.integers(0, 59),
)
date_times = known_date_times | unknown_date_times
time_zones = (st.integers(-48, 56) | st.just(-128)).map(TimeZone)
current_times = st.builds(
    CurrentTime,
    date_time=date_times,
    day_of_week=st.sampled_from(DayOfWeek),
    fractions256=u8,
    adjust_reason=st.integers(0, 0xFF).map(AdjustReason),
)


def flags_of(cls: Callable[[int], T], bits: int) -> st.SearchStrategy[T]:
    return st.integers(0, (1 << bits) - 1).map(cls)


@st.composite
def glucose_measurements(draw: st.DrawFn) -> GlucoseMeasurement:
    group = draw(
        optional(
            st.tuples(
                sfloats,
                st.sampled_from(["kg/L", "mol/L"]),
                st.sampled_from(GlucoseType),
                st.sampled_from(SampleLocation),
            )
        )
    )
    conc, unit, kind, location = group if group else (None, None, None, None)
    return GlucoseMeasurement(
        sequence_number=draw(u16),
        base_time=draw(date_times),
        time_offset_min=draw(optional(st.integers(-0x8000, 0x7FFF))),
        concentration=conc,
        unit=unit,  # type: ignore[arg-type]
        type=kind,
        sample_location=location,
        sensor_status=draw(optional(flags_of(GlucoseSensorStatus, 16))),
        context_follows=draw(st.booleans()),
    )


@st.composite
def glucose_contexts(draw: st.DrawFn) -> GlucoseContext:
    carb = draw(optional(st.tuples(st.sampled_from(CarbohydrateId), sfloats)))
    tester_health = draw(
        optional(st.tuples(st.sampled_from(GlucoseTester), st.sampled_from(Health)))
    )
    exercise = draw(optional(st.tuples(u16, st.integers(0, 100))))
    med = draw(
        optional(st.tuples(st.sampled_from(MedicationId), sfloats, st.sampled_from(["kg", "L"])))
    )
    return GlucoseContext(
        sequence_number=draw(u16),
        extended_flags=draw(optional(u8)),
        carbohydrate_id=carb[0] if carb else None,
        carbohydrate_kg=carb[1] if carb else None,
        meal=draw(optional(st.sampled_from(Meal))),
        tester=tester_health[0] if tester_health else None,
        health=tester_health[1] if tester_health else None,
        exercise_duration_s=exercise[0] if exercise else None,
        exercise_intensity_pct=exercise[1] if exercise else None,
        medication_id=med[0] if med else None,
        medication=med[1] if med else None,
        medication_unit=med[2] if med else None,  # type: ignore[arg-type]
        hba1c_pct=draw(optional(sfloats)),
    )


glucose_features = flags_of(GlucoseFeatureBits, 16).map(GlucoseFeature)


@st.composite
def racp_requests(draw: st.DrawFn) -> RacpRequest:
    opcode = draw(
        st.sampled_from(
            [
                RacpOpcode.REPORT_STORED_RECORDS,
                RacpOpcode.DELETE_STORED_RECORDS,
                RacpOpcode.ABORT_OPERATION,
                RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
            ]
        )
    )
    if opcode is RacpOpcode.ABORT_OPERATION:
        return RacpRequest(opcode, RacpOperator.NULL)
    operator = draw(st.sampled_from([op for op in RacpOperator if op is not RacpOperator.NULL]))
    if operator not in (2, 3, 4):
        return RacpRequest(opcode, operator)
    filter_type = draw(st.sampled_from([*GlsFilterType, *CgmsFilterType]))
    values: st.SearchStrategy[int | DateTime] = (
        known_date_times if filter_type is GlsFilterType.USER_FACING_TIME else u16
    )
    count = 2 if operator is RacpOperator.WITHIN_RANGE_OF else 1
    operand = tuple(draw(values) for _ in range(count))
    return RacpRequest(opcode, operator, filter_type, operand)


racp_responses = st.builds(RacpResponse.count, u16) | st.builds(
    RacpResponse.code, u8, st.sampled_from(RacpResponseCode)
)

cgm_measurements = st.builds(
    CgmMeasurement,
    glucose_mg_dl=sfloats,
    time_offset_min=u16,
    status=optional(flags_of(CgmStatusOctet, 8)),
    cal_temp=optional(flags_of(CgmCalTempOctet, 8)),
    warning=optional(flags_of(CgmWarningOctet, 8)),
    trend_mg_dl_min=optional(sfloats),
    quality_pct=optional(sfloats),
    e2e_crc=st.booleans(),
)
cgm_features = st.builds(
    CgmFeature,
    features=flags_of(CgmFeatureBits, 24),
    type=st.sampled_from(GlucoseType),
    sample_location=st.sampled_from(SampleLocation),
)
cgm_statuses = st.builds(
    CgmStatus,
    time_offset_min=u16,
    status=flags_of(CgmStatusOctet, 8),
    cal_temp=flags_of(CgmCalTempOctet, 8),
    warning=flags_of(CgmWarningOctet, 8),
    e2e_crc=st.booleans(),
)
session_start_times = st.builds(
    SessionStartTime,
    start_time=date_times,
    time_zone=time_zones,
    dst_offset=st.sampled_from(DstOffset),
    e2e_crc=st.booleans(),
)
session_run_times = st.builds(SessionRunTime, run_time_hours=u16, e2e_crc=st.booleans())
cgm_calibrations = st.builds(
    CgmCalibration,
    glucose_mg_dl=sfloats,
    time_min=u16,
    type=st.sampled_from(GlucoseType),
    sample_location=st.sampled_from(SampleLocation),
    next_time_min=u16,
    record_number=u16,
    status=flags_of(CgmCalibrationStatus, 8),
)


@st.composite
def cgm_socps(draw: st.DrawFn) -> CgmSocp:
    op = draw(st.sampled_from(CgmSocpOpcode))
    crc = draw(st.booleans())
    if op in (1, 3):
        return CgmSocp(op, value=draw(u8), e2e_crc=crc)
    if op == 5:
        return CgmSocp(op, value=draw(u16), e2e_crc=crc)
    if op in (4, 6):
        return CgmSocp(op, calibration=draw(cgm_calibrations), e2e_crc=crc)
    if 7 <= op <= 24 and (op - 7) % 3 != 1:
        return CgmSocp(op, level=draw(sfloats), e2e_crc=crc)
    if op == 28:
        return CgmSocp(
            op,
            request_opcode=draw(u8),
            response_code=draw(st.sampled_from(CgmSocpResponseCode)),
            e2e_crc=crc,
        )
    return CgmSocp(op, e2e_crc=crc)
