"""What every device driver shares: identity (DIS), battery (BAS), clock offset (CTS),
a notification inbox, and helpers to turn status bits into names.

Drivers use only the public bleak API (``BleakClient``); the transport is whatever backend
the client was built with (BlueZ on a hub, bumble in tests and the demo).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntFlag
from typing import Any

from bleak import BleakClient
from bleak.exc import BleakError, BleakGATTProtocolError

from drivers import uuids
from drivers.devices.errors import (
    ConnectionLost,
    NotificationOverflow,
    PairingRequired,
    ProcedureTimeout,
    RacpError,
)
from drivers.dis import BatteryLevel, decode_dis_string
from drivers.errors import DecodeError, DeviceError
from drivers.records import DeviceIdentity, DeviceKind
from drivers.sigtime import CurrentTime

# How long a device may stay silent in the middle of a transfer before we call it dead.
RECORD_TIMEOUT_S = 10.0
# Notifications buffered between the link and the consumer; beyond it the sync fails
# (the records stay on the device and come again next time).
INBOX_LIMIT = 100_000
LINK_CHECK_S = 0.25

__all__ = ["DeviceDriver", "DriverStats", "Inbox", "RacpError", "flag_names"]


@dataclass
class DriverStats:
    records: int = 0  # records yielded
    crc_errors: int = 0  # notifications rejected for a bad E2E-CRC
    decode_errors: int = 0  # notifications that did not decode
    rerequests: int = 0  # RACP re-requests after a rejected notification


class Inbox:
    """Notifications from several characteristics, in arrival order, tagged."""

    def __init__(self, alive: Callable[[], bool] = lambda: True, limit: int = INBOX_LIMIT) -> None:
        self._alive = alive
        self._items: collections.deque[tuple[str, bytes]] = collections.deque()
        self._ready = asyncio.Event()
        self._limit = limit
        self.overflowed = False

    def on(self, tag: str) -> Callable[[Any, bytearray], None]:
        def callback(_sender: Any, data: bytearray) -> None:
            if len(self._items) >= self._limit:
                self.overflowed = True
            else:
                self._items.append((tag, bytes(data)))
            self._ready.set()

        return callback

    def clear(self) -> None:
        self._items.clear()

    async def next(self, idle_s: float = RECORD_TIMEOUT_S) -> tuple[str, bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + idle_s
        while not self._items:
            if self.overflowed:
                raise NotificationOverflow("notification inbox overflowed")
            if not self._alive():
                raise ConnectionLost("the link dropped in the middle of a procedure")
            left = deadline - loop.time()
            if left <= 0:
                raise ProcedureTimeout(f"the device sent nothing for {idle_s:.0f} s")
            self._ready.clear()
            # bleak has no per-call disconnect signal for a driver handed a connected
            # client, so look at the link at least every LINK_CHECK_S while waiting.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, LINK_CHECK_S)):
                    await self._ready.wait()
        return self._items.popleft()


class DeviceDriver:
    """Shared part of the drivers; subclasses add ``sync`` (and ``live`` for a CGM)."""

    kind: DeviceKind

    def __init__(self, client: BleakClient, *, record_timeout_s: float = RECORD_TIMEOUT_S) -> None:
        self.client = client
        self.record_timeout_s = record_timeout_s
        self.identity: DeviceIdentity | None = None
        self.clock_offset_s: float | None = None
        self.stats = DriverStats()

    def _alive(self) -> bool:
        return bool(self.client.is_connected)

    def _new_inbox(self) -> Inbox:
        return Inbox(self._alive)

    def _has(self, uuid: str) -> bool:
        try:
            return self.client.services.get_characteristic(uuid) is not None
        except BleakError:
            return False

    async def _read(self, uuid: str) -> bytes:
        try:
            return bytes(await self.client.read_gatt_char(uuid))
        except BleakError as err:
            raise _wrap(f"reading {uuids.NAMES.get(uuid, uuid)}", err) from err

    async def _write(self, uuid: str, data: bytes) -> None:
        try:
            await self.client.write_gatt_char(uuid, data, response=True)
        except BleakError as err:
            raise _wrap(f"writing {uuids.NAMES.get(uuid, uuid)}", err) from err

    async def _subscribe(self, uuid: str, callback: Callable[[Any, bytearray], None]) -> None:
        try:
            await self.client.start_notify(uuid, callback)
        except BleakError as err:
            raise ConnectionLost(f"subscribing to {uuids.NAMES.get(uuid, uuid)}: {err}") from err

    async def _identity(self) -> DeviceIdentity:
        return self.identity if self.identity is not None else await self.read_identity()

    async def read_identity(self) -> DeviceIdentity:
        """Manufacturer, model, serial and firmware from the Device Information Service."""

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
        """Battery level in percent; None without a Battery Service or with a bad value."""
        if not self._has(uuids.BATTERY_LEVEL):
            return None
        try:
            return BatteryLevel.from_bytes(await self._read(uuids.BATTERY_LEVEL)).percent
        except DecodeError:
            return None

    async def read_clock_offset(self) -> float | None:
        """UTC minus the device clock, in seconds, from Current Time; None without CTS.

        The device clock is read once; the hub time is the midpoint of the read's round
        trip. Records of this sync carry the value (``DeviceRecord.clock_offset_s``).
        """
        if not self._has(uuids.CURRENT_TIME):
            return None
        hub_before = datetime.now(UTC)
        data = await self._read(uuids.CURRENT_TIME)
        hub_after = datetime.now(UTC)
        device = CurrentTime.from_bytes(data).to_datetime()
        if device is None:
            return None
        hub = hub_before + (hub_after - hub_before) / 2
        self.clock_offset_s = round((hub.replace(tzinfo=None) - device).total_seconds(), 3)
        return self.clock_offset_s

    @property
    def _offset(self) -> float:
        return self.clock_offset_s if self.clock_offset_s is not None else 0.0


# ATT errors that mean "pair first" (Core Vol 3 Part F §3.4.1.1).
_PAIRING_ERRORS = frozenset({0x05, 0x08, 0x0C, 0x0F})


def _wrap(what: str, err: BleakError) -> DeviceError:
    if isinstance(err, BleakGATTProtocolError) and int(err.code) in _PAIRING_ERRORS:
        return PairingRequired(f"{what}: the device requires pairing ({err})", int(err.code))
    return ConnectionLost(f"{what} failed: {err}")


def flag_names(flags: IntFlag | int | None, enum: type[IntFlag] | None = None) -> tuple[str, ...]:
    """Set bits of a status field as snake_case names (unnamed RFU bits as bit_N)."""
    if flags is None:
        return ()
    cls = enum or (type(flags) if isinstance(flags, IntFlag) else None)
    value = int(flags)
    out = []
    for bit in range(value.bit_length()):
        if value & (1 << bit):
            name = None
            if cls is not None:
                try:
                    name = cls(1 << bit).name
                except ValueError:
                    name = None
            out.append(name.lower() if name else f"bit_{bit}")
    return tuple(out)


def racp_failed(code: IntFlag | int | None, name: str | None) -> RacpError:
    return RacpError(int(code or 0), (name or "unknown").lower())
