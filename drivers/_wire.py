"""Little-endian readers and writers shared by the SIG codecs (private to ``drivers``).

Every multi-octet integer in the Bluetooth SIG personal-health characteristics is sent
least significant octet first (GATT characteristic XML notes: "fields ... in the order
of LSO to MSO"). A :class:`Reader` turns every way a value can be short, long or out of
range into :class:`~drivers.errors.DecodeError`, so codecs never leak ``IndexError``,
``struct.error`` or ``ValueError`` from an enum lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import TypeVar

from drivers.errors import DecodeError, EncodeError

E = TypeVar("E", bound=IntEnum)
T = TypeVar("T")


class Reader:
    """A cursor over one characteristic value."""

    __slots__ = ("characteristic", "data", "pos")

    def __init__(self, characteristic: str, data: bytes, pos: int = 0) -> None:
        self.characteristic = characteristic
        self.data = bytes(data)
        self.pos = pos

    def error(self, reason: str) -> DecodeError:
        return DecodeError(self.characteristic, self.data, reason)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.remaining < n:
            raise self.error(
                f"truncated: {what} needs {n} octet(s) at offset {self.pos}, "
                f"{max(self.remaining, 0)} left"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "little", signed=False)

    def sint(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "little", signed=True)

    def u8(self, what: str) -> int:
        return self.uint(1, what)

    def u16(self, what: str) -> int:
        return self.uint(2, what)

    def u24(self, what: str) -> int:
        return self.uint(3, what)

    def u32(self, what: str) -> int:
        return self.uint(4, what)

    def s8(self, what: str) -> int:
        return self.sint(1, what)

    def s16(self, what: str) -> int:
        return self.sint(2, what)

    def enum(self, cls: type[E], value: int, what: str) -> E:
        """``cls(value)``, or DecodeError naming the field for an RFU/unknown value."""
        try:
            return cls(value)
        except ValueError:
            raise self.error(f"{what}: reserved or unknown value 0x{value:02X}") from None

    def finish(self) -> None:
        """Reject trailing octets: every length in these profiles is implied by its flags."""
        if self.remaining:
            raise self.error(f"{self.remaining} unexpected trailing octet(s) at offset {self.pos}")


def build(reader: Reader, factory: Callable[[], T]) -> T:
    """Run a constructor whose range checks raise EncodeError; report them as DecodeError."""
    try:
        return factory()
    except EncodeError as err:
        raise reader.error(str(err)) from err


def u8(value: int) -> bytes:
    return value.to_bytes(1, "little")


def u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def u24(value: int) -> bytes:
    return value.to_bytes(3, "little")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def s8(value: int) -> bytes:
    return value.to_bytes(1, "little", signed=True)


def s16(value: int) -> bytes:
    return value.to_bytes(2, "little", signed=True)


def check_range(name: str, value: object, low: int, high: int) -> None:
    """EncodeError unless ``low <= value <= high`` (and ``value`` is an int, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise EncodeError(f"{name} {value} outside {low}..{high}")


def check_enum(name: str, value: object, cls: type[IntEnum]) -> None:
    if not isinstance(value, cls):
        raise EncodeError(f"{name} must be a {cls.__name__}, got {value!r}")


def check_flags(name: str, value: object, cls: type[int], bits: int) -> None:
    """EncodeError unless ``value`` is an instance of the IntFlag ``cls`` fitting ``bits``."""
    if not isinstance(value, cls):
        raise EncodeError(f"{name} must be a {cls.__name__}, got {value!r}")
    if not 0 <= int(value) < (1 << bits):
        raise EncodeError(f"{name} 0x{int(value):X} does not fit in {bits} bits")


def snake(name: str | None) -> str:
    return (name or "").lower()


def flag_names(value: int, cls: type[int]) -> list[str]:
    """Snake-case names of the set bits, lowest first; unnamed (RFU) bits as ``bit_N``."""
    names: list[str] = []
    for bit in range(max(int(value).bit_length(), 0)):
        if int(value) >> bit & 1:
            try:
                member = cls(1 << bit)
                name = getattr(member, "name", None)
            except ValueError:
                name = None
            names.append(name.lower() if name else f"bit_{bit}")
    return names
