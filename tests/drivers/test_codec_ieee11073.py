"""IEEE 11073-20601 SFLOAT/FLOAT: specials, vectors from sig-profiles.md §2, encoder."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DecodeError, EncodeError
from drivers.ieee11073 import Float, SFloat, decode_float, decode_sfloat, encode_sfloat
from tests.drivers.codec_strategies import FUZZ, ROUND_TRIP, floats32, only_decode_errors, sfloats


@pytest.mark.parametrize(
    ("raw", "special"),
    [
        (0x07FF, "NaN"),
        (0x0800, "NRes"),
        (0x07FE, "+INF"),
        (0x0802, "-INF"),
        (0x0801, "reserved"),  # reserved, not NaN and not a number
    ],
)
def test_sfloat_specials(raw: int, special: str) -> None:
    value = SFloat.from_bytes(raw.to_bytes(2, "little"))
    assert value == SFloat(value=None, special=special, raw=raw)  # type: ignore[arg-type]
    assert value.mantissa is None and value.exponent is None
    assert bytes(value) == raw.to_bytes(2, "little")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0xFE01, -51.1),  # negative mantissa 0xE01 = -511, exponent -1
        (0x0FFE, -2.0),  # mantissa 0xFFE = -2, exponent 0
        (0xD001, 0.001),
        (0xC00B, 0.0011),
        (0xE001, 0.01),
        (0x3001, 1000.0),
        (0x400A, 100000.0),
        (0x07FD, 2045.0),  # top of the mantissa range is an ordinary number
        (0xB070, 0.00112),  # two's-complement exponent -5, not excess-8
        (0x8064, 1e-6),  # 100 x 10**-8 (an excess-8 reading would say 100)
        (0x0000, 0.0),
    ],
)
def test_sfloat_vectors(raw: int, expected: float) -> None:
    assert SFloat.from_bytes(raw.to_bytes(2, "little")) == SFloat(value=expected, raw=raw)


def test_sfloat_encoder_rounds_half_away_from_zero() -> None:
    assert SFloat.from_value(123.45) == SFloat.from_raw(0xF4D3)  # 1235 x 10**-1
    assert SFloat.from_value(123.45).value == 123.5
    assert SFloat.from_value(-123.45).raw == SFloat.from_raw(0xFB2D).raw  # -1235 x 10**-1
    assert encode_sfloat(123.45) == b"\xd3\xf4"


def test_sfloat_encoder_choices() -> None:
    assert SFloat.from_value(100).raw == 0x0064  # 100 x 10**0, trailing zeros not kept
    assert SFloat.from_value(20450).raw == 0x17FD  # 2045 x 10**1
    assert SFloat.from_value(112e-5).raw == 0xB070  # 1120 x 10**-6 stripped to 112 x 10**-5
    assert SFloat.from_value(112e-5, precision=6).raw == 0xA460  # precision keeps the zero
    assert SFloat.from_value(1.5, precision=2) == SFloat.from_raw(0xE096)  # 150 x 10**-2
    assert SFloat.from_value(0.0).raw == 0x0000
    assert SFloat.from_value(math.nan) == SFloat(special="NaN")
    assert SFloat.from_value(math.inf).raw == 0x07FE
    assert SFloat.from_value(-math.inf).raw == 0x0802


def test_sfloat_constructor_rounds_to_the_wire_value() -> None:
    assert SFloat(value=0.123456) == SFloat.from_raw(0xC4D3)  # 1235 x 10**-4


@pytest.mark.parametrize(
    "bad",
    [
        lambda: SFloat.from_value(2.046e10),  # beyond 2045 x 10**7
        lambda: SFloat.from_value(1.0, precision=9),  # exponent -9 does not exist
        lambda: SFloat.from_value(3000, precision=0),  # mantissa does not fit
        lambda: SFloat(value=1.0, special="NaN"),
        lambda: SFloat(),
        lambda: SFloat(value=math.nan),
        lambda: SFloat(special="bogus"),  # type: ignore[arg-type]
        lambda: SFloat(value=2.0, raw=0x0001),  # raw disagrees with value
        lambda: SFloat.from_raw(0x10000),
    ],
)
def test_sfloat_encode_errors(bad: object) -> None:
    with pytest.raises(EncodeError):
        bad()  # type: ignore[operator]


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x02\x03"])
def test_sfloat_wrong_length(data: bytes) -> None:
    with pytest.raises(DecodeError):
        SFloat.from_bytes(data)


def test_decode_helpers_with_offsets() -> None:
    data = bytes.fromhex("aa70b0")
    assert decode_sfloat(data, 1) == SFloat.from_raw(0xB070)
    with pytest.raises(DecodeError):
        decode_sfloat(data, 2)
    assert decode_float(bytes.fromhex("0087d612fe"), 1).value == 12345.67
    with pytest.raises(DecodeError):
        decode_float(b"\x00\x00\x00", 0)


def test_float_vectors() -> None:
    assert Float.from_bytes(bytes.fromhex("87d612fe")) == Float(value=12345.67, raw=0xFE12D687)
    assert Float.from_bytes(bytes.fromhex("01fe03fc")) == Float(value=26.1633, raw=0xFC03FE01)
    assert Float.from_value(12345.67).raw == 0xFE12D687
    assert bytes(Float.from_value(26.1633)) == bytes.fromhex("01fe03fc")


@pytest.mark.parametrize(
    ("raw", "special"),
    [
        (0x007FFFFF, "NaN"),
        (0x00800000, "NRes"),
        (0x00800001, "reserved"),
        (0x007FFFFE, "+INF"),
        (0x00800002, "-INF"),
    ],
)
def test_float_specials(raw: int, special: str) -> None:
    assert Float.from_bytes(raw.to_bytes(4, "little")).special == special


def test_to_json_and_to_float() -> None:
    assert SFloat.from_raw(0xB070).to_json() == {"value": 0.00112}
    assert SFloat.from_raw(0x0800).to_json() == {"special": "NRes"}
    assert SFloat.from_raw(0x0802).to_float() == -math.inf
    assert math.isnan(SFloat.from_raw(0x0801).to_float())
    assert str(SFloat.from_raw(0x3001)) == "1000"


@FUZZ
@given(st.binary(max_size=6))
def test_fuzz_sfloat_and_float(data: bytes) -> None:
    only_decode_errors(SFloat.from_bytes, data)
    only_decode_errors(Float.from_bytes, data)


@ROUND_TRIP
@given(sfloats)
def test_round_trip_sfloat(value: SFloat) -> None:
    assert SFloat.from_bytes(bytes(value)) == value
    assert SFloat(value=value.value, special=value.special, raw=value.raw) == value


@ROUND_TRIP
@given(floats32)
def test_round_trip_float(value: Float) -> None:
    assert Float.from_bytes(bytes(value)) == value


@ROUND_TRIP
@given(st.floats(min_value=-2045e7, max_value=2045e7, allow_nan=False))
def test_encoder_is_close(x: float) -> None:
    encoded = SFloat.from_value(x)
    assert encoded.value is not None
    # relative error bounded by half a unit in the 3-4 significant digits kept
    assert abs(encoded.value - x) <= max(abs(x) * 5e-3, 0.5e-8)
    assert SFloat.from_bytes(bytes(encoded)) == encoded
