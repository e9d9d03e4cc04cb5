"""Devices found by their advertisements: by advertised name, or by service UUID.

* A ``[[devices]]`` entry with ``name`` (and no ``address``) serves every device whose
  advertised local name matches the regular expression as a whole, as that entry's kind.
* ``discover_services = true`` serves devices advertising the Glucose (0x1808), CGM
  (0x181F) or Insulin Delivery (0x183A) service, as the kind the service implies.

An unknown device is never served, however it was found: a neighbour's meter of the same
model advertises the same service and a name that differs only in its serial. When
``allow`` is set, a device found either way must have its address in it, or its DIS
serial number, which is read over one short unpaired connection before anything else is
read (a device whose serial is not allowed is never connected to again in this run).
``discover_services`` requires ``allow`` (edge/settings.py). A found device gets a device
task exactly like an address-configured one, once: an address already served is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from drivers import uuids
from drivers.errors import DriversError
from edge.settings import DeviceConfig, EdgeSettings

if TYPE_CHECKING:
    from edge.agent import EdgeAgent

log = logging.getLogger(__name__)

SERVICE_KINDS: dict[str, str] = {
    uuids.GLUCOSE_SERVICE: "glucose_meter",
    uuids.CGM_SERVICE: "cgm",
    uuids.INSULIN_DELIVERY_SERVICE: "insulin_pump",
}
# Reading a found device's serial: one short connection, retried no sooner than this.
IDENTIFY_TIMEOUT_S = 30.0
IDENTIFY_RETRY_S = 60.0
SCAN_RETRY_S = 10.0


def wants_discovery(settings: EdgeSettings) -> bool:
    return settings.discover_services or any(d.name and not d.address for d in settings.devices)


@dataclass
class Discovery:
    """Scan forever; call ``serve(config, address)`` for each device to serve."""

    settings: EdgeSettings
    scanner_factory: Callable[..., BleakScanner]
    client_factory: Callable[..., BleakClient]
    driver_factories: Mapping[str, Callable[[BleakClient], Any]]
    serve: Callable[[DeviceConfig, str], None]
    served: Callable[[str], bool]
    identify_retry_s: float = IDENTIFY_RETRY_S
    rejected: set[str] = field(default_factory=set)  # addresses whose serial is not allowed
    _retry_at: dict[str, float] = field(default_factory=dict)
    _identifying: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _patterns: list[tuple[re.Pattern[str], DeviceConfig]] = field(init=False)
    _allowed: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self._patterns = [
            (re.compile(d.name), d) for d in self.settings.devices if d.name and not d.address
        ]
        self._allowed = {entry.strip().upper() for entry in self.settings.allow}

    async def run(self) -> None:
        failing = False
        try:
            while True:
                try:
                    async with self.scanner_factory(detection_callback=self.on_advertisement):
                        if failing:
                            log.info("scanning again")
                            failing = False
                        await asyncio.Event().wait()  # until cancelled
                except (BleakError, OSError) as err:
                    if not failing:
                        log.warning("scanning failed: %s; retrying", err)
                        failing = True
                    await asyncio.sleep(SCAN_RETRY_S)
        finally:
            for task in self._identifying.values():
                task.cancel()
            await asyncio.gather(*self._identifying.values(), return_exceptions=True)

    def match(
        self, name: str | None, service_uuids: list[str], address: str
    ) -> DeviceConfig | None:
        """The configuration a device is served with, or None when nothing asks for it."""
        if name:
            for pattern, config in self._patterns:
                if pattern.fullmatch(name):
                    return config.model_copy(update={"address": address})
        if self.settings.discover_services:
            for uuid in service_uuids:
                kind = SERVICE_KINDS.get(uuid.lower())
                if kind is not None:
                    return DeviceConfig(kind=kind, address=address)  # type: ignore[arg-type]
        return None

    def on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        address = device.address.upper()
        if (
            self.served(address)
            or address in self.rejected
            or address in self._identifying
            or time.monotonic() < self._retry_at.get(address, 0.0)
        ):
            return
        config = self.match(adv.local_name, adv.service_uuids, address)
        if config is None:
            return
        if not self._allowed or address in self._allowed:
            log.info("serving %s %s (%s)", config.kind, address, adv.local_name or "no name")
            self.serve(config, address)
            return
        self._identifying[address] = asyncio.create_task(
            self._identify(config, address), name=f"identify {address}"
        )

    async def _identify(self, config: DeviceConfig, address: str) -> None:
        """Read the DIS serial of a found device; serve it only when the serial is allowed."""
        try:
            async with asyncio.timeout(IDENTIFY_TIMEOUT_S):
                async with self.client_factory(address) as client:
                    identity = await self.driver_factories[config.kind](client).read_identity()
        except (BleakError, DriversError, TimeoutError, OSError, EOFError) as err:
            log.info("could not identify %s (%s); trying again later", address, err)
            self._retry_at[address] = time.monotonic() + self.identify_retry_s
            return
        finally:
            self._identifying.pop(address, None)
        if identity.serial.upper() in self._allowed:
            log.info("serving %s %s (serial %s)", config.kind, address, identity.serial)
            self.serve(config, address)
        else:
            self.rejected.add(address)
            log.warning(
                "not serving %s %s: serial %s is not in the allow list",
                config.kind,
                address,
                identity.serial,
            )


def start_discovery(agent: EdgeAgent, tg: asyncio.TaskGroup) -> None:
    """The agent's hook: when the settings ask for it, scan and give each found device its
    own device task in the agent's task group."""
    if not wants_discovery(agent.settings):
        return

    def serve(config: DeviceConfig, address: str) -> None:
        task = agent.add_device(config, address)
        tg.create_task(task.run(), name=f"device {address}")

    def served(address: str) -> bool:
        return any(t.address.upper() == address for t in agent.tasks)

    discovery = Discovery(
        settings=agent.settings,
        scanner_factory=agent.scanner_factory,
        client_factory=agent.client_factory,
        driver_factories=agent.driver_factories,
        serve=serve,
        served=served,
    )
    tg.create_task(discovery.run(), name="discovery")


__all__ = ["SERVICE_KINDS", "Discovery", "start_discovery", "wants_discovery"]
