"""A virtual Bluetooth world: one LocalLink, the hub's central, and virtual peripherals."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from bleak import BleakClient
from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink

from drivers.bumble_backend import BumbleBleakClient, client_backend
from drivers.virtual.cgm import VirtualCgm
from drivers.virtual.clock import SimClock
from drivers.virtual.meter import VirtualMeter
from drivers.virtual.peripheral import Produced, VirtualPeripheral

HUB_ADDRESS = "F0:F0:F0:F0:F0:F0"


class VirtualWorld:
    """``async with VirtualWorld(SimClock(start, speed)) as world:``; add devices, then
    hand ``world.client_factory`` to the edge agent (or ``world.backend`` to bleak)."""

    def __init__(self, clock: SimClock, *, operation_timeout_s: float = 10.0) -> None:
        self.clock = clock
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        controller = Controller("hub", link=self.link, public_address=HUB_ADDRESS)
        self.central = Device(
            name="hub",
            address=Address(HUB_ADDRESS),
            host=Host(controller_source=controller, controller_sink=controller),
        )
        self.backend: type[BumbleBleakClient] = client_backend(
            self.central, operation_timeout_s=operation_timeout_s
        )
        self.peripherals: list[VirtualPeripheral] = []

    async def __aenter__(self) -> VirtualWorld:
        await self.central.power_on()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for p in self.peripherals:
            with contextlib.suppress(Exception):
                await p.stop()
        with contextlib.suppress(Exception):
            await self.central.power_off()

    def _address(self) -> str:
        return f"F1:00:00:00:{len(self.peripherals) // 256:02X}:{len(self.peripherals) % 256:02X}"

    async def add_cgm(self, serial: str, **kwargs: Any) -> VirtualCgm:
        cgm = VirtualCgm(self.link, self._address(), serial, self.clock, **kwargs)
        self.peripherals.append(cgm)
        await cgm.start()
        await cgm.caught_up.wait()
        return cgm

    async def add_meter(self, serial: str, **kwargs: Any) -> VirtualMeter:
        meter = VirtualMeter(self.link, self._address(), serial, self.clock, **kwargs)
        self.peripherals.append(meter)
        await meter.start()
        await meter.caught_up.wait()
        return meter

    def client_factory(self, address: str, *, pair: bool = False, **kwargs: Any) -> BleakClient:
        """A real ``BleakClient`` whose backend talks over the virtual link."""
        return BleakClient(address, backend=self.backend, pair=pair, timeout=10.0, **kwargs)

    def produced(self) -> Iterator[Produced]:
        for p in self.peripherals:
            yield from p.produced
