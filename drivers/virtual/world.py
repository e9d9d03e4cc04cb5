"""A virtual Bluetooth world: one LocalLink, the hub's central, and virtual peripherals.

The central lives in the world's process; :mod:`drivers.ble_rpc` serves it to a bleak
client in another process.

bumble notes: controllers bind to the running event loop, so build a world inside one
(``async with``); bumble's GATT server does not enforce READABLE/WRITEABLE (the virtual
devices only offer the properties they serve) but does enforce the encryption
permissions; a peripheral on a static random address needs
``PairingConfig(identity_address_type=RANDOM)`` for its bond to be found on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from bleak import BleakClient, BleakScanner
from bumble.controller import Controller
from bumble.core import BaseBumbleError
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink

from drivers.bumble_backend import (
    BumbleBleakClient,
    BumbleBleakScanner,
    client_backend,
    scanner_backend,
)
from drivers.virtual.cgm import VirtualCgm
from drivers.virtual.clock import SimClock
from drivers.virtual.meter import VirtualMeter
from drivers.virtual.peripheral import Produced, VirtualPeripheral, pairing_config
from drivers.virtual.pump import VirtualPump

HUB_ADDRESS = "F0:F0:F0:F0:F0:F0"


class VirtualWorld:
    """``async with VirtualWorld(SimClock(start, speed)) as world:`` then add devices and
    hand ``world.client_backend`` / ``world.scanner_backend`` to bleak (or use
    :meth:`client_factory`, which the edge agent takes as its ``client_factory``)."""

    def __init__(self, clock: SimClock | None = None, *, operation_timeout_s: float = 10.0) -> None:
        self.clock = clock or SimClock()
        self.operation_timeout_s = operation_timeout_s
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        controller = Controller("hub", link=self.link, public_address=HUB_ADDRESS)
        self.central = Device(
            name="hub",
            address=Address(HUB_ADDRESS),
            host=Host(controller_source=controller, controller_sink=controller),
        )
        self.central.pairing_config_factory = pairing_config
        self.client_backend: type[BumbleBleakClient] = client_backend(
            self.central, operation_timeout_s=operation_timeout_s
        )
        self.scanner_backend: type[BumbleBleakScanner] = scanner_backend(self.central)
        self.peripherals: list[VirtualPeripheral] = []

    @property
    def backend(self) -> type[BumbleBleakClient]:
        """Older name of :attr:`client_backend`."""
        return self.client_backend

    async def __aenter__(self) -> VirtualWorld:
        await self.central.power_on()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for connection in list(self.central.connections.values()):
            with contextlib.suppress(BaseBumbleError, OSError, TimeoutError):
                async with asyncio.timeout(self.operation_timeout_s):
                    await connection.disconnect()
        for p in self.peripherals:
            await p.stop()
        await self.central.power_off()

    def _address(self) -> str:
        n = len(self.peripherals) + 1
        return f"F1:00:00:00:{n // 256:02X}:{n % 256:02X}"

    async def _add(self, peripheral: VirtualPeripheral) -> Any:
        self.peripherals.append(peripheral)
        await peripheral.start()
        return peripheral

    async def add_cgm(self, serial: str, **kwargs: Any) -> VirtualCgm:
        """Options: seed, history, warmup, crc, run_time, clock_error, utc_offset,
        require_pairing, has_cts, battery_pct (see :class:`VirtualCgm`)."""
        cgm: VirtualCgm = await self._add(
            VirtualCgm(self.link, self._address(), serial, self.clock, **kwargs)
        )
        return cgm

    async def add_meter(self, serial: str, **kwargs: Any) -> VirtualMeter:
        """Options: seed, unit ("kg/L" or "mol/L"), history, first_sequence,
        tests_per_day, clock_error, utc_offset, require_pairing, has_cts, battery_pct."""
        meter: VirtualMeter = await self._add(
            VirtualMeter(self.link, self._address(), serial, self.clock, **kwargs)
        )
        return meter

    async def add_pump(self, serial: str = "PUMP-0001", **kwargs: Any) -> VirtualPump:
        """Options: seed, history, reservoir_iu, clock_error, utc_offset, ..."""
        pump: VirtualPump = await self._add(
            VirtualPump(self.link, self._address(), serial, self.clock, **kwargs)
        )
        return pump

    def client_factory(self, address: str, *, pair: bool = False, **kwargs: Any) -> BleakClient:
        """A real ``BleakClient`` whose backend talks over the virtual link."""
        kwargs.setdefault("timeout", self.operation_timeout_s)
        return BleakClient(address, backend=self.client_backend, pair=pair, **kwargs)

    def scanner(self, **kwargs: Any) -> BleakScanner:
        return BleakScanner(backend=self.scanner_backend, **kwargs)

    def produced(self) -> Iterator[Produced]:
        for p in self.peripherals:
            yield from p.produced

    def peripheral(self, address: str) -> VirtualPeripheral:
        return next(p for p in self.peripherals if p.address == address)
