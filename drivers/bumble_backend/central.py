"""A bumble host acting as the hub's central, with bleak backends bound to it.

It sits on any controller given as an HCI (source, sink) pair: in tests and the demo a
controller of a :class:`bumble.link.LocalLink`; a bumble HCI transport (a USB dongle, a
controller in another process) has the same shape.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from bleak import BleakClient, BleakScanner
from bumble.core import BaseBumbleError
from bumble.device import Connection, Device
from bumble.hci import Address
from bumble.host import Host
from bumble.pairing import PairingConfig
from bumble.transport.common import TransportSink, TransportSource

from drivers.bumble_backend.client import BumbleBleakClient, client_backend
from drivers.bumble_backend.scanner import BumbleBleakScanner, scanner_backend

PairingConfigFactory = Callable[[Connection | None], PairingConfig]


class BumbleCentral:
    """``central.client_factory`` is what the edge agent takes as its ``client_factory``;
    ``client_backend`` / ``scanner_backend`` are what bleak's ``backend=`` takes."""

    def __init__(
        self,
        source: TransportSource,
        sink: TransportSink,
        *,
        address: str,
        pairing: PairingConfigFactory | None = None,
        operation_timeout_s: float = 10.0,
    ) -> None:
        self.operation_timeout_s = operation_timeout_s
        self.device = Device(
            name="hub",
            address=Address(address),
            host=Host(controller_source=source, controller_sink=sink),
        )
        if pairing is not None:
            self.device.pairing_config_factory = pairing
        self.client_backend: type[BumbleBleakClient] = client_backend(
            self.device, operation_timeout_s=operation_timeout_s
        )
        self.scanner_backend: type[BumbleBleakScanner] = scanner_backend(self.device)

    async def power_on(self) -> None:
        await self.device.power_on()

    async def close(self) -> None:
        """Disconnect every connection, then power off."""
        for connection in list(self.device.connections.values()):
            with contextlib.suppress(BaseBumbleError, OSError, TimeoutError):
                async with asyncio.timeout(self.operation_timeout_s):
                    await connection.disconnect()
        await self.device.power_off()

    def client_factory(self, address: str, *, pair: bool = False, **kwargs: Any) -> BleakClient:
        """A real ``BleakClient`` whose backend talks through this central."""
        kwargs.setdefault("timeout", self.operation_timeout_s)
        return BleakClient(address, backend=self.client_backend, pair=pair, **kwargs)

    def scanner(self, **kwargs: Any) -> BleakScanner:
        return BleakScanner(backend=self.scanner_backend, **kwargs)
