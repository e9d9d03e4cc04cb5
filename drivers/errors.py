"""One exception root for ``drivers``; subclasses carry what went wrong."""

from __future__ import annotations


class DriversError(Exception):
    """Root of every error raised by the ``drivers`` package."""


class DecodeError(DriversError, ValueError):
    """Bytes that do not decode as the named characteristic."""

    def __init__(self, characteristic: str, data: bytes, reason: str) -> None:
        self.characteristic = characteristic
        self.data = bytes(data)
        self.reason = reason
        super().__init__(f"{characteristic}: {reason} (data={self.data.hex()})")


class CRCError(DecodeError):
    """An E2E-CRC that does not match the bytes it protects."""

    def __init__(self, characteristic: str, data: bytes, received: int, calculated: int) -> None:
        self.received = received
        self.calculated = calculated
        super().__init__(
            characteristic,
            data,
            f"E2E-CRC mismatch: received 0x{received:04X}, calculated 0x{calculated:04X}",
        )


class EncodeError(DriversError, ValueError):
    """A value that cannot be represented on the wire."""


class DeviceError(DriversError):
    """A device refused or failed a procedure (connection, RACP, pairing)."""
