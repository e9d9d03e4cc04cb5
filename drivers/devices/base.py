"""What every device driver shares: identity (DIS), battery (BAS), clock offset (CTS),
and a control-point exchange helper (write a request, collect notifications until the
indicated response)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntFlag

from bleak import BleakClient
from bleak.exc import BleakError

from drivers import uuids
from drivers.dis import BatteryLevel, decode_dis_string
from drivers.errors import DecodeError, DeviceError
from drivers.records import DeviceIdentity, DeviceKind
from drivers.sigtime import CurrentTime

# How long a device may take to stream one record before we call the transfer dead.
RECORD_TIMEOUT_S = 10.0


class RacpError(DeviceError):
    """The device answered a Record Access Control Point request with a failure code."""

    def __init__(self, code: int, name: str) -> None:
        self.code = code
        super().__init__(f"RACP procedure failed: {name} ({code})")


@dataclass
class DriverStats:
    records: int = 0
    crc_errors: int = 0
    decode_errors: int = 0


class DeviceDriver:
    kind: DeviceKind

    def __init__(self, client: BleakClient) -> None:
        self.client = client
        self.identity: DeviceIdentity | None = None
        self.clock_offset_s: float | None = None
        self.stats = DriverStats()

    def _has(self, uuid: str) -> bool:
        return self.client.services.get_characteristic(uuid) is not None

    async def _read(self, uuid: str) -> bytes:
        try:
            return bytes(await self.client.read_gatt_char(uuid))
        except BleakError as err:
            raise DeviceError(f"reading {uuids.NAMES.get(uuid, uuid)} failed: {err}") from err

    async def read_identity(self) -> DeviceIdentity:
        async def text(uuid: str) -> str:
            return decode_dis_string(await self._read(uuid)) if self._has(uuid) else ""

        serial = await text(uuids.SERIAL_NUMBER_STRING)
        if not serial:
            # No serial, no identity: the key of every reading depends on it.
            raise DeviceError(f"{self.client.address} has no DIS serial number")
        self.identity = DeviceIdentity(
            address=self.client.address,
            kind=self.kind,
            serial=serial,
            model=await text(uuids.MODEL_NUMBER_STRING),
            manufacturer=await text(uuids.MANUFACTURER_NAME_STRING),
            firmware=await text(uuids.FIRMWARE_REVISION_STRING),
        )
        return self.identity

    async def read_battery(self) -> int | None:
        if not self._has(uuids.BATTERY_LEVEL):
            return None
        try:
            return BatteryLevel.from_bytes(await self._read(uuids.BATTERY_LEVEL)).percent
        except DecodeError:
            return None

    async def read_clock_offset(self) -> float | None:
        """UTC minus the device clock, in seconds, from Current Time; None without CTS."""
        if not self._has(uuids.CURRENT_TIME):
            return None
        hub_before = datetime.now(UTC)
        device = CurrentTime.from_bytes(await self._read(uuids.CURRENT_TIME)).to_datetime()
        hub_after = datetime.now(UTC)
        if device is None:
            return None
        hub = hub_before + (hub_after - hub_before) / 2  # midpoint of the read's round trip
        self.clock_offset_s = round((hub.replace(tzinfo=None) - device).total_seconds(), 3)
        return self.clock_offset_s


class Exchange:
    """Notifications from one characteristic plus control-point responses, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def on(self, tag: str) -> Callable[[object, bytearray], None]:
        def callback(_sender: object, data: bytearray) -> None:
            self.queue.put_nowait((tag, bytes(data)))

        return callback

    async def next(self, idle_s: float = RECORD_TIMEOUT_S) -> tuple[str, bytes]:
        try:
            return await asyncio.wait_for(self.queue.get(), idle_s)
        except TimeoutError as err:
            raise DeviceError("the device stopped sending in the middle of a transfer") from err


def flag_names(flags: IntFlag | None) -> tuple[str, ...]:
    """Set bits of a status field as snake_case names (unnamed RFU bits as bit_N)."""
    if flags is None:
        return ()
    value = int(flags)
    out = []
    for bit in range(value.bit_length()):
        if value & (1 << bit):
            try:
                name = type(flags)(1 << bit).name
            except ValueError:
                name = None
            out.append(name.lower() if name else f"bit_{bit}")
    return tuple(out)
