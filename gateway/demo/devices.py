"""The demo's virtual patients: a CGM and a glucose meter each, on one virtual BLE link."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from bleak import BleakClient

from drivers.virtual import SimClock, VirtualWorld
from edge.device_task import DeviceTask
from gateway.contract.v1 import DeviceKindName, reading_key

# Meters are polled every 15 simulated minutes (never more often than twice a second).
METER_POLL_SIM = timedelta(minutes=15)
METER_HISTORY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DemoDevice:
    patient_id: str
    serial: str
    kind: DeviceKindName
    address: str
    poll_interval_s: float


@dataclass(frozen=True, slots=True)
class Truth:
    key: str
    patient_id: str
    serial: str
    mg_dl: float | None  # None for records without a glucose value


class DemoDevices:
    def __init__(self, *, patients: int, speed: float, history_h: float) -> None:
        self.patients = patients
        self.speed = speed
        self.history = timedelta(hours=history_h)
        # Devices show local wall time, as most do; the hub measures their offset.
        self.clock = SimClock(datetime.now(), speed)
        self.world = VirtualWorld(self.clock)
        self.devices: list[DemoDevice] = []
        self._patient_of: dict[str, str] = {}

    async def __aenter__(self) -> DemoDevices:
        await self.world.__aenter__()
        poll = max(0.5, METER_POLL_SIM.total_seconds() / self.speed)
        for i in range(self.patients):
            patient = f"P-{i + 1:04d}"
            cgm = await self.world.add_cgm(f"CGM-{i + 1:04d}", seed=i + 1, history=self.history)
            meter = await self.world.add_meter(
                f"BG-{i + 1:04d}",
                seed=100 + i,
                unit="kg/L" if i % 2 == 0 else "mol/L",
                # A meter keeps weeks of fingersticks; a day of them means the demo (and
                # its test) shows meter readings whatever the time of day it starts at.
                history=max(self.history, METER_HISTORY),
                clock_error=timedelta(minutes=7 * i),  # some meters' clocks are off
            )
            self.devices.append(DemoDevice(patient, cgm.serial, "cgm", cgm.address, poll))
            self.devices.append(
                DemoDevice(patient, meter.serial, "glucose_meter", meter.address, poll)
            )
        self._patient_of = {d.serial: d.patient_id for d in self.devices}
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.world.__aexit__(t, e, tb)

    def client_factory(self, address: str, **kwargs: Any) -> BleakClient:
        return self.world.client_factory(address, **kwargs)

    def by_patient(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for d in self.devices:
            out.setdefault(d.patient_id, []).append(d.serial)
        return out

    def pause(self) -> None:
        """Stop simulated time: the devices produce nothing more."""
        self.clock.pause()

    def truth(self) -> list[Truth]:
        """Every record the virtual devices produced, with its key and patient."""
        out = []
        for p in self.world.produced():
            key = reading_key(
                p.serial,
                p.kind,
                sequence=p.sequence,
                session_start=p.session_start,
                time_offset_min=p.time_offset_min,
                device_time=p.device_time,
            )
            out.append(Truth(key, self._patient_of[p.serial], p.serial, p.mg_dl))
        return out

    async def sync_all(self, tasks: Sequence[DeviceTask]) -> None:
        """Make every polled device sync once more (after :meth:`pause`)."""
        before = {id(t): t.syncs for t in tasks}
        polled = [t for t in tasks if t.config.kind != "cgm"]
        for t in polled:
            t.wake()
        while any(t.syncs <= before[id(t)] for t in polled):  # noqa: ASYNC110 - counters of other tasks
            await asyncio.sleep(0.05)
