"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) medical floats.

Both are ``mantissa x 10**exponent`` with two's-complement fields (IEEE 11073-20601
§F.7/F.8; the GATT XML for Glucose Measurement says "a signed 4-bit integer exponent
followed by a signed 12-bit Mantissa, each in twos-complement form"). The exponent is
**not** excess-8 (docs/ble-profiles.md, Decisions: SFLOAT exponent).

Values are exact decimals on the wire, so conversions go through :class:`decimal.Decimal`
and the encoder rounds half away from zero (123.45 -> mantissa 1235, exponent -1 ->
0xF4D3). A value remembers its raw encoding: ``0xB070`` (112e-5) and ``0xA460`` (1120e-6)
denote the same number but are different values here, so decode -> encode is byte-exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import ClassVar, Final, Literal, Self

from drivers.errors import DecodeError, EncodeError

Special = Literal["NaN", "NRes", "+INF", "-INF", "reserved"]
SPECIALS: Final[tuple[Special, ...]] = ("NaN", "NRes", "+INF", "-INF", "reserved")

# IEEE 11073-20601 special values (exponent 0, mantissa at the edge of its range).
SFLOAT_SPECIALS: Final[dict[int, Special]] = {
    0x07FF: "NaN",  # +(2**11 - 1)
    0x0800: "NRes",  # -(2**11)
    0x07FE: "+INF",  # +(2**11 - 2)
    0x0802: "-INF",  # -(2**11 - 2)
    0x0801: "reserved",  # -(2**11 - 1), reserved for future use
}
FLOAT_SPECIALS: Final[dict[int, Special]] = {
    0x007FFFFF: "NaN",  # +(2**23 - 1)
    0x00800000: "NRes",  # -(2**23)
    0x007FFFFE: "+INF",  # +(2**23 - 2)
    0x00800002: "-INF",  # -(2**23 - 2)
    0x00800001: "reserved",  # -(2**23 - 1)
}


def _twos(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def _exact(mantissa: int, exponent: int) -> float:
    # Correctly rounded: 112 x 10**-5 is 0.00112, not 0.0011200000000000001.
    return float(Decimal(mantissa).scaleb(exponent))


@dataclass(frozen=True, slots=True)
class _MedFloat:
    """Shared behaviour of SFLOAT and FLOAT; see the subclasses for the field widths."""

    value: float | None = None
    special: Special | None = None
    raw: int | None = None

    # field widths, set by the subclasses
    _EXP_BITS: ClassVar[int]
    _MANT_BITS: ClassVar[int]
    _SPECIALS: ClassVar[dict[int, Special]]
    _NAME: ClassVar[str]

    def __post_init__(self) -> None:
        if (self.value is None) == (self.special is None):
            raise EncodeError(f"{self._NAME}: exactly one of value and special must be given")
        if self.special is not None and self.special not in SPECIALS:
            raise EncodeError(f"{self._NAME}: unknown special {self.special!r}")
        if self.value is not None:
            if isinstance(self.value, bool) or not isinstance(self.value, int | float):
                raise EncodeError(f"{self._NAME}: value must be a number, got {self.value!r}")
            if not math.isfinite(self.value):
                raise EncodeError(
                    f"{self._NAME}: use special='NaN'/'+INF'/'-INF' for {self.value!r}"
                )
        if self.raw is None:
            raw = self._encode_raw()
            object.__setattr__(self, "raw", raw)
            # the value is what the wire carries: 0.123456 becomes 0.1235 as an SFLOAT
            object.__setattr__(self, "value", self._decode_raw(raw)[0])
        else:
            total = self._EXP_BITS + self._MANT_BITS
            if isinstance(self.raw, bool) or not isinstance(self.raw, int):
                raise EncodeError(f"{self._NAME}: raw must be an int")
            if not 0 <= self.raw < (1 << total):
                raise EncodeError(f"{self._NAME}: raw 0x{self.raw:X} does not fit {total} bits")
            value, special = self._decode_raw(self.raw)
            if (value, special) != (self.value, self.special):
                raise EncodeError(
                    f"{self._NAME}: raw 0x{self.raw:X} is {special or value}, "
                    f"not {self.special or self.value}"
                )
        if self.value is not None:
            # normalise int -> float so equal values compare and hash alike
            object.__setattr__(self, "value", float(self.value))

    # --- raw <-> (mantissa, exponent) ---------------------------------------------------

    @classmethod
    def _split(cls, raw: int) -> tuple[int, int]:
        mant = _twos(raw & ((1 << cls._MANT_BITS) - 1), cls._MANT_BITS)
        exp = _twos(raw >> cls._MANT_BITS, cls._EXP_BITS)
        return mant, exp

    @classmethod
    def _join(cls, mantissa: int, exponent: int) -> int:
        return ((exponent & ((1 << cls._EXP_BITS) - 1)) << cls._MANT_BITS) | (
            mantissa & ((1 << cls._MANT_BITS) - 1)
        )

    @classmethod
    def _decode_raw(cls, raw: int) -> tuple[float | None, Special | None]:
        special = cls._SPECIALS.get(raw)
        if special is not None:
            return None, special
        mant, exp = cls._split(raw)
        return _exact(mant, exp), None

    @classmethod
    def _max_mantissa(cls) -> int:
        # The encoder keeps clear of the special codes at the edges of the range.
        return (1 << (cls._MANT_BITS - 1)) - 3

    def _encode_raw(self) -> int:
        if self.special is not None:
            return {v: k for k, v in self._SPECIALS.items()}[self.special]
        assert self.value is not None
        mant, exp = self._choose(Decimal(repr(float(self.value))), None)
        return self._join(mant, exp)

    @classmethod
    def _choose(cls, d: Decimal, precision: int | None) -> tuple[int, int]:
        """Pick (mantissa, exponent) for ``d``: most precise fit, trailing zeros stripped."""
        exp_min = -(1 << (cls._EXP_BITS - 1))
        exp_max = (1 << (cls._EXP_BITS - 1)) - 1
        limit = cls._max_mantissa()
        exponents = [-precision] if precision is not None else list(range(exp_min, exp_max + 1))
        for exp in exponents:
            if not exp_min <= exp <= exp_max:
                raise EncodeError(f"{cls._NAME}: exponent {exp} outside {exp_min}..{exp_max}")
            try:
                mant = int(d.scaleb(-exp).quantize(Decimal(1), rounding=ROUND_HALF_UP))
            except InvalidOperation:
                continue
            if abs(mant) > limit:
                continue
            if mant == 0:
                return 0, 0 if precision is None else exp
            if precision is None:  # 100 is 100 x 10**0, not 1000 x 10**-1
                while mant % 10 == 0 and exp < 0:
                    mant //= 10
                    exp += 1
            return mant, exp
        raise EncodeError(f"{cls._NAME}: {d} cannot be represented")

    # --- public API ----------------------------------------------------------------------

    @property
    def mantissa(self) -> int | None:
        """The signed mantissa, or None for a special value."""
        return None if self.special is not None else self._split(self._raw())[0]

    @property
    def exponent(self) -> int | None:
        """The signed base-10 exponent, or None for a special value."""
        return None if self.special is not None else self._split(self._raw())[1]

    @property
    def is_special(self) -> bool:
        return self.special is not None

    def _raw(self) -> int:
        assert self.raw is not None  # set in __post_init__
        return self.raw

    @property
    def decimal(self) -> Decimal | None:
        """The exact decimal value, or None for a special value."""
        if self.special is not None:
            return None
        mant, exp = self._split(self._raw())
        return Decimal(mant).scaleb(exp)

    def to_float(self) -> float:
        """The value as a float; NaN for NaN/NRes/reserved, +-inf for the infinities."""
        if self.value is not None:
            return self.value
        return {"+INF": math.inf, "-INF": -math.inf}.get(self.special or "", math.nan)

    @classmethod
    def from_raw(cls, raw: int) -> Self:
        total = cls._EXP_BITS + cls._MANT_BITS
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < (1 << total):
            raise EncodeError(f"{cls._NAME}: raw {raw!r} does not fit {total} bits")
        value, special = cls._decode_raw(raw)
        return cls(value=value, special=special, raw=raw)

    @classmethod
    def from_value(cls, value: float, precision: int | None = None) -> Self:
        """Encode a number; NaN and infinities become their special codes.

        ``precision`` fixes the number of decimal places (the exponent is ``-precision``);
        without it the most precise exponent whose mantissa fits is chosen, then trailing
        zeros are moved into the exponent while it is negative (100 -> 0x0064). Halves round away from zero. EncodeError when
        the value does not fit (no silent clamping to infinity).
        """
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EncodeError(f"{cls._NAME}: value must be a number, got {value!r}")
        if math.isnan(value):
            return cls(special="NaN")
        if math.isinf(value):
            return cls(special="+INF" if value > 0 else "-INF")
        mant, exp = cls._choose(Decimal(repr(float(value))), precision)
        return cls.from_raw(cls._join(mant, exp))

    @classmethod
    def from_special(cls, special: Special) -> Self:
        return cls(special=special)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        size = (cls._EXP_BITS + cls._MANT_BITS) // 8
        if len(data) != size:
            raise DecodeError(cls._NAME, data, f"expected {size} octets, got {len(data)}")
        return cls.from_raw(int.from_bytes(data, "little"))

    def __bytes__(self) -> bytes:
        return self._raw().to_bytes((self._EXP_BITS + self._MANT_BITS) // 8, "little")

    def to_json(self) -> dict[str, float | str]:
        """``{"value": number}`` or ``{"special": name}``."""
        if self.special is not None:
            return {"special": self.special}
        assert self.value is not None
        return {"value": self.value}

    def __str__(self) -> str:
        return self.special if self.special is not None else format(self.decimal, "f")


@dataclass(frozen=True, slots=True)
class SFloat(_MedFloat):
    """16-bit SFLOAT: 4-bit two's-complement exponent (bits 12-15), 12-bit mantissa."""

    _EXP_BITS: ClassVar[int] = 4
    _MANT_BITS: ClassVar[int] = 12
    _SPECIALS: ClassVar[dict[int, Special]] = SFLOAT_SPECIALS
    _NAME: ClassVar[str] = "SFLOAT"


@dataclass(frozen=True, slots=True)
class Float(_MedFloat):
    """32-bit FLOAT: 8-bit two's-complement exponent (bits 24-31), 24-bit mantissa."""

    _EXP_BITS: ClassVar[int] = 8
    _MANT_BITS: ClassVar[int] = 24
    _SPECIALS: ClassVar[dict[int, Special]] = FLOAT_SPECIALS
    _NAME: ClassVar[str] = "FLOAT"


def decode_sfloat(data: bytes, offset: int = 0, *, characteristic: str = "SFLOAT") -> SFloat:
    """The SFLOAT at ``data[offset:offset+2]``; DecodeError when it is not all there."""
    if offset < 0 or len(data) < offset + 2:
        raise DecodeError(characteristic, data, f"truncated: SFLOAT at offset {offset}")
    return SFloat.from_raw(int.from_bytes(data[offset : offset + 2], "little"))


def decode_float(data: bytes, offset: int = 0, *, characteristic: str = "FLOAT") -> Float:
    """The FLOAT at ``data[offset:offset+4]``; DecodeError when it is not all there."""
    if offset < 0 or len(data) < offset + 4:
        raise DecodeError(characteristic, data, f"truncated: FLOAT at offset {offset}")
    return Float.from_raw(int.from_bytes(data[offset : offset + 4], "little"))


def encode_sfloat(value: float, precision: int | None = None) -> bytes:
    return bytes(SFloat.from_value(value, precision))


def encode_float(value: float, precision: int | None = None) -> bytes:
    return bytes(Float.from_value(value, precision))
