"""Device Information Service strings (DIS 1.1) and Battery Level (BAS 1.0).

Manufacturer Name (0x2A29), Model Number (0x2A24), Serial Number (0x2A25) and Firmware
Revision (0x2A26) are UTF-8 strings of the characteristic's whole length (DIS 1.1
§3.x, format ``utf8s``, no terminator). Some devices pad with NULs anyway, so trailing
NUL octets are stripped; invalid UTF-8 is a DecodeError.

Battery Level (0x2A19) is a uint8 percentage, 0..100 (BAS 1.0 §3.1); 101..255 are
rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from drivers._wire import check_range
from drivers.errors import DecodeError, EncodeError

BATTERY_LEVEL_MAX: Final = 100  # BAS: "0% to 100%"


def decode_dis_string(data: bytes, characteristic: str = "Device Information") -> str:
    """A DIS string: UTF-8, trailing NULs removed (devices that pad with them exist)."""
    body = bytes(data).rstrip(b"\x00")
    if b"\x00" in body:
        raise DecodeError(characteristic, data, "NUL inside the string")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DecodeError(characteristic, data, f"not UTF-8: {err.reason}") from err


def encode_dis_string(text: str) -> bytes:
    if not isinstance(text, str):
        raise EncodeError(f"a DIS string must be str, got {text!r}")
    if "\x00" in text:
        raise EncodeError("a DIS string cannot carry NUL characters")
    return text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class DisString:
    """One DIS string characteristic value."""

    text: str

    def __post_init__(self) -> None:
        encode_dis_string(self.text)

    @classmethod
    def from_bytes(cls, data: bytes) -> DisString:
        return cls(decode_dis_string(data))

    def __bytes__(self) -> bytes:
        return encode_dis_string(self.text)


@dataclass(frozen=True, slots=True)
class BatteryLevel:
    """Battery Level: percent of full charge."""

    percent: int

    CHARACTERISTIC = "Battery Level"

    def __post_init__(self) -> None:
        check_range("percent", self.percent, 0, BATTERY_LEVEL_MAX)

    @classmethod
    def from_bytes(cls, data: bytes) -> BatteryLevel:
        if len(data) != 1:
            raise DecodeError(cls.CHARACTERISTIC, data, f"expected 1 octet, got {len(data)}")
        if data[0] > BATTERY_LEVEL_MAX:
            raise DecodeError(cls.CHARACTERISTIC, data, f"{data[0]} % is above 100 %")
        return cls(data[0])

    def __bytes__(self) -> bytes:
        return bytes((self.percent,))
