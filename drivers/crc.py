"""The E2E-CRC of the CGM (and Insulin Delivery) services.

CGMS 1.0.1 §3.11 / the CGM characteristic XML: "CRC-CCITT generator polynomial
g(D)=D16+D12+D5+1 (i.e. 210041 in octal representation) with a seed of 0xFFFF". The
parameterisation that reproduces the specification example and every public vector is
CRC-16/MCRF4XX: polynomial 0x1021 processed reflected (0x8408, least significant bit
first), initial value 0xFFFF, no final XOR. Check value for b"123456789": 0x6F91.

The CRC is a uint16 and, like every other integer in these profiles, goes on the wire
least significant octet first: 0x2F01 is sent as ``01 2F`` (docs/ble-profiles.md,
Decisions: CRC byte order).
"""

from __future__ import annotations

from typing import Final

from drivers.errors import CRCError, DecodeError

CRC_SIZE: Final = 2  # E2E-CRC field: uint16
CRC_SEED: Final = 0xFFFF  # CGMS §3.11: "with a seed of 0xFFFF"
_POLY_REFLECTED: Final = 0x8408  # 0x1021 bit-reversed: the right-shifting form


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE: Final = _table()


def crc16_mcrf4xx(data: bytes, crc: int = CRC_SEED) -> int:
    """CRC-16/MCRF4XX of ``data`` (pass ``crc`` to continue a running CRC)."""
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def append_crc(data: bytes) -> bytes:
    """``data`` followed by its E2E-CRC, least significant octet first."""
    return bytes(data) + crc16_mcrf4xx(data).to_bytes(CRC_SIZE, "little")


def strip_crc(characteristic: str, data: bytes, *, whole: bytes | None = None) -> bytes:
    """Check the trailing E2E-CRC of ``data`` and return the octets it protects.

    DecodeError when there is no room for a CRC, CRCError when it does not match.
    ``whole`` is the full characteristic value to quote in the error (defaults to data).
    """
    quoted = data if whole is None else whole
    if len(data) < CRC_SIZE:
        raise DecodeError(characteristic, quoted, "truncated: no room for the E2E-CRC")
    payload = bytes(data[:-CRC_SIZE])
    received = int.from_bytes(data[-CRC_SIZE:], "little")
    calculated = crc16_mcrf4xx(payload)
    if received != calculated:
        raise CRCError(characteristic, quoted, received, calculated)
    return payload
