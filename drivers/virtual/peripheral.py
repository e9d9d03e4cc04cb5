"""What every virtual device has: a bumble Device on the link, DIS, Battery, Current Time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bumble.controller import Controller
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink

from drivers import uuids
from drivers.records import DeviceKind
from drivers.sigtime import CurrentTime
from drivers.virtual.clock import SimClock

log = logging.getLogger(__name__)

READ = Characteristic.Properties.READ
NOTIFY = Characteristic.Properties.NOTIFY
INDICATE = Characteristic.Properties.INDICATE
WRITE = Characteristic.Properties.WRITE


def short(uuid: str) -> str:
    """bumble takes 16-bit UUIDs as 4 hex digits."""
    return uuid[4:8].upper()


@dataclass(frozen=True, slots=True)
class Produced:
    """Ground truth: one record a virtual device generated (for end-to-end checks)."""

    serial: str
    kind: str  # RecordKind value
    device_time: datetime
    mg_dl: float
    sequence: int | None = None
    session_start: datetime | None = None
    time_offset_min: int | None = None


class VirtualPeripheral:
    kind: DeviceKind
    model = "Virtual"
    manufacturer = "Diatabase Sim"
    firmware = "1.0.0"

    def __init__(
        self,
        link: LocalLink,
        address: str,
        serial: str,
        clock: SimClock,
        *,
        clock_error: timedelta = timedelta(0),
        battery_pct: int = 87,
    ) -> None:
        self.address = address
        self.serial = serial
        self.clock = clock
        self.clock_error = clock_error  # the device's own clock is this much off
        self.battery_pct = battery_pct
        self.produced: list[Produced] = []
        controller = Controller(f"periph-{serial}", link=link, public_address=address)
        host = Host(controller_source=controller, controller_sink=controller)
        self.device = Device(name=f"{self.model} {serial}", address=Address(address), host=host)
        self.device.add_services(self._common_services() + self.services())
        self._task: asyncio.Task[None] | None = None
        # Set once the device has produced its history and waits for the future.
        self.caught_up = asyncio.Event()
        self.connections: list[Connection] = []
        self.device.on("connection", self._on_connection)

    def device_now(self) -> datetime:
        return self.clock.now() + self.clock_error

    def _on_connection(self, connection: Connection) -> None:
        self.connections.append(connection)
        connection.on("disconnection", lambda _r: self.connections.remove(connection))

    def _common_services(self) -> list[Service]:
        dis: list[Characteristic[Any]] = []
        for uuid, value in (
            (uuids.MANUFACTURER_NAME_STRING, self.manufacturer),
            (uuids.MODEL_NUMBER_STRING, self.model),
            (uuids.SERIAL_NUMBER_STRING, self.serial),
            (uuids.FIRMWARE_REVISION_STRING, self.firmware),
        ):
            dis.append(Characteristic(short(uuid), READ, "READABLE", value.encode()))
        battery: Characteristic[bytes] = Characteristic(
            short(uuids.BATTERY_LEVEL),
            READ,
            "READABLE",
            CharacteristicValue[bytes](read=lambda _c: bytes([self.battery_pct])),
        )
        current_time: Characteristic[bytes] = Characteristic(
            short(uuids.CURRENT_TIME),
            READ,
            "READABLE",
            CharacteristicValue(
                read=lambda _c: bytes(CurrentTime.from_datetime(self.device_now()))
            ),
        )
        return [
            Service(short(uuids.DEVICE_INFORMATION_SERVICE), dis),
            Service(short(uuids.BATTERY_SERVICE), [battery]),
            Service(short(uuids.CURRENT_TIME_SERVICE), [current_time]),
        ]

    def services(self) -> list[Service]:
        raise NotImplementedError

    async def start(self) -> None:
        await self.device.power_on()
        # A 10 ms advertising interval: connecting takes about one interval.
        await self.device.start_advertising(
            auto_restart=True, advertising_interval_min=10, advertising_interval_max=10
        )
        self._task = asyncio.create_task(self.produce(), name=f"virtual {self.serial}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for connection in list(self.connections):
            with contextlib.suppress(Exception):
                await connection.disconnect()
        await self.device.power_off()

    async def produce(self) -> None:
        raise NotImplementedError

    async def wait_device_time(self, at: datetime) -> None:
        """Sleep until the device's own clock shows ``at``."""
        if at > self.device_now():
            self.caught_up.set()
        await self.clock.sleep_until(at - self.clock_error)

    async def drop_connections(self) -> None:
        """Fault switch: the device goes out of range."""
        for connection in list(self.connections):
            await connection.disconnect()
