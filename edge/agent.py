"""The hub agent: device tasks feeding the outbox, one publisher draining it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bleak import BleakClient, BleakScanner

from drivers.records import DeviceKind
from edge.device_task import DeviceTask
from edge.discovery import start_discovery
from edge.outbox import Outbox
from edge.publisher import Publisher, PublisherConfig
from edge.settings import DeviceConfig, EdgeSettings
from edge.watchdog import Systemd
from gateway import __version__
from gateway.contract.signing import Signer
from gateway.contract.v1 import DeviceStatus, HubStatus

log = logging.getLogger(__name__)

DriverFactory = Callable[[BleakClient], Any]


def default_driver_factories() -> dict[str, DriverFactory]:
    from drivers.devices import CgmDriver, GlucoseMeterDriver, InsulinPumpDriver

    return {
        DeviceKind.GLUCOSE_METER.value: GlucoseMeterDriver,
        DeviceKind.CGM.value: CgmDriver,
        DeviceKind.INSULIN_PUMP.value: InsulinPumpDriver,
    }


@dataclass
class EdgeAgent:
    settings: EdgeSettings
    client_factory: Callable[..., BleakClient] = BleakClient
    scanner_factory: Callable[..., BleakScanner] = BleakScanner
    driver_factories: dict[str, DriverFactory] = field(default_factory=default_driver_factories)
    outbox: Outbox = field(init=False)
    publisher: Publisher = field(init=False)
    tasks: list[DeviceTask] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        s = self.settings
        self.outbox = Outbox(s.outbox.path, max_rows=s.outbox.max_rows)
        self.publisher = Publisher(
            PublisherConfig(
                hub_id=s.hub_id,
                mqtt=s.mqtt,
                client_id=s.client_id or f"diatabase-hub-{s.hub_id}",
                max_batch_readings=s.publish.max_batch_readings,
                max_batch_bytes=s.publish.max_batch_bytes,
                max_in_flight=s.publish.max_in_flight,
                session_expiry_s=s.publish.session_expiry_s,
                status_interval_s=s.publish.status_interval_s,
                protocol=s.mqtt_protocol,
                ca_file=str(s.tls.ca_file) if s.tls.ca_file else None,
                cert_file=str(s.tls.cert_file) if s.tls.cert_file else None,
                key_file=str(s.tls.key_file) if s.tls.key_file else None,
            ),
            self.outbox,
            self.status,
            signer=Signer.load_or_create(s.signing_key) if s.signing_key else None,
        )

    def add_device(self, config: DeviceConfig, address: str) -> DeviceTask:
        task = DeviceTask(
            config=config,
            address=address,
            outbox=self.outbox,
            client_factory=self.client_factory,
            driver_factory=self.driver_factories[config.kind],
        )
        self.tasks.append(task)
        return task

    async def run(self) -> None:
        systemd = Systemd()
        try:
            async with self.outbox:
                for dev in self.settings.devices:
                    if dev.address and not any(t.address == dev.address for t in self.tasks):
                        self.add_device(dev, dev.address)
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.publisher.run(), name="publisher")
                    tg.create_task(systemd.watchdog(), name="watchdog")
                    systemd.ready(f"{len(self.tasks)} devices, outbox {self.outbox.depth}")
                    for task in self.tasks:
                        tg.create_task(task.run(), name=f"device {task.address}")
                    start_discovery(self, tg)  # devices by name or service: edge/discovery.py
        finally:
            systemd.close()

    async def status(self) -> HubStatus:
        devices = []
        for t in self.tasks:
            st = t.state
            devices.append(
                DeviceStatus(
                    serial=st.identity.serial if st.identity else t.address,
                    kind=t.config.kind,
                    connected=st.connected,
                    last_contact=st.last_contact,
                    last_sync=st.last_sync,
                    battery_pct=st.battery_pct,
                    clock_offset_s=st.clock_offset_s,
                    cursor=st.cursor,
                )
            )
        return HubStatus(
            hub_id=self.settings.hub_id,
            online=True,
            version=__version__,
            sent_at=datetime.now(UTC),
            uptime_s=round(time.monotonic() - self.started, 1),
            outbox_depth=self.outbox.depth,
            oldest_unsent_age_s=await self.outbox.oldest_age_s(),
            outbox_full=self.outbox.full,
            devices=devices,
        )
