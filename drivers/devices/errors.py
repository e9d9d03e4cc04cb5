"""Device errors of the bleak drivers; all derive from :class:`drivers.errors.DeviceError`."""

from __future__ import annotations

from drivers.errors import DeviceError


class RacpError(DeviceError):
    """The device answered a Record Access Control Point request with a failure code."""

    def __init__(self, code: int, name: str) -> None:
        self.code = code
        self.name = name
        super().__init__(f"RACP procedure failed: {name} ({code})")


class ProcedureTimeout(DeviceError):
    """The device stopped sending in the middle of a control point procedure."""


class TransferIncomplete(DeviceError):
    """Records were lost in a transfer (bad CRC) and a re-request did not recover them."""


class NotificationOverflow(DeviceError):
    """More notifications arrived than the driver buffers (the consumer is too slow)."""


class SessionNotRunning(DeviceError):
    """The CGM has no session (no session start time): nothing to read."""


class ConnectionLost(DeviceError):
    """The link dropped during a procedure (wraps the bleak error)."""


class PairingRequired(DeviceError):
    """The device refused a read or write until it is paired (ATT insufficient
    authentication/encryption): connect with ``BleakClient(..., pair=True)``."""

    def __init__(self, message: str, att_error: int) -> None:
        self.att_error = att_error
        super().__init__(message)
