"""Date Time, Time Zone, DST Offset and Current Time."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DecodeError, EncodeError
from drivers.sigtime import (
    AdjustReason,
    CurrentTime,
    DateTime,
    DayOfWeek,
    DstOffset,
    TimeZone,
)
from tests.drivers.codec_strategies import (
    FUZZ,
    ROUND_TRIP,
    current_times,
    date_times,
    only_decode_errors,
    time_zones,
)


def test_date_time_vector() -> None:
    value = DateTime.from_bytes(bytes.fromhex("e4070c1f173b3b"))
    assert value == DateTime(2020, 12, 31, 23, 59, 59)
    assert value.to_datetime() == datetime(2020, 12, 31, 23, 59, 59)
    assert bytes(value) == bytes.fromhex("e4070c1f173b3b")


@pytest.mark.parametrize("data", ["00000000000000", "e4070000000000", "e4070c00000000"])
def test_date_time_unknown(data: str) -> None:
    value = DateTime.from_bytes(bytes.fromhex(data))
    assert value.to_datetime() is None
    assert not value.is_known


@pytest.mark.parametrize(
    "data",
    [
        "e4070d01000000",  # month 13
        "e4070c20000000",  # day 32
        "e4070c01180000",  # hour 24
        "e4070c01003c00",  # minute 60
        "e4070c0100003c",  # second 60
        "e507021e000000",  # 2021-02-30 does not exist
        "0100010100000000"[:14],  # year 1, before 1582
        "e4070c1f173b",  # truncated
        "e4070c1f173b3b00",  # too long
    ],
)
def test_date_time_rejects(data: str) -> None:
    with pytest.raises(DecodeError):
        DateTime.from_bytes(bytes.fromhex(data))


def test_time_zone_units() -> None:
    assert TimeZone.from_bytes(b"\x08").minutes == 120
    assert TimeZone.from_bytes(b"\xd0").minutes == -720  # -48 x 15
    assert TimeZone.from_bytes(b"\x80").minutes is None  # -128 unknown
    assert TimeZone.from_minutes(330) == TimeZone(22)
    with pytest.raises(DecodeError):
        TimeZone.from_bytes(b"\x39")  # 57 is out of range
    with pytest.raises(EncodeError):
        TimeZone.from_minutes(10)


def test_dst_offset_minutes() -> None:
    assert [d.minutes for d in DstOffset] == [0, 30, 60, 120, None]
    assert DstOffset.from_minutes(60) is DstOffset.DAYLIGHT_TIME
    with pytest.raises(EncodeError):
        DstOffset.from_minutes(45)


def test_current_time_vector() -> None:
    data = bytes.fromhex("e4070c1f173b3b04 80 03".replace(" ", ""))
    value = CurrentTime.from_bytes(data)
    assert value == CurrentTime(
        DateTime(2020, 12, 31, 23, 59, 59),
        DayOfWeek.THURSDAY,
        128,
        AdjustReason.MANUAL_TIME_UPDATE | AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE,
    )
    assert value.to_datetime() == datetime(2020, 12, 31, 23, 59, 59, 500000)
    assert bytes(value) == data


def test_current_time_from_datetime() -> None:
    value = CurrentTime.from_datetime(datetime(2024, 2, 29, 12, 0, 0, 250000))
    assert value == CurrentTime(DateTime(2024, 2, 29, 12, 0, 0), DayOfWeek.THURSDAY, 64)


@pytest.mark.parametrize("data", ["e4070c1f173b3b0480", "e4070c1f173b3b08800300"])
def test_current_time_rejects(data: str) -> None:
    with pytest.raises(DecodeError):
        CurrentTime.from_bytes(bytes.fromhex(data))


@FUZZ
@given(st.binary(max_size=12))
def test_fuzz_time(data: bytes) -> None:
    only_decode_errors(DateTime.from_bytes, data)
    only_decode_errors(TimeZone.from_bytes, data)
    only_decode_errors(CurrentTime.from_bytes, data)


@ROUND_TRIP
@given(date_times, time_zones, current_times)
def test_round_trip_time(dt: DateTime, tz: TimeZone, ct: CurrentTime) -> None:
    assert DateTime.from_bytes(bytes(dt)) == dt
    assert TimeZone.from_bytes(bytes(tz)) == tz
    assert CurrentTime.from_bytes(bytes(ct)) == ct
