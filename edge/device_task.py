"""One long-lived task per device: connect, (pair), sync, stay subscribed, reconnect.

Every record goes into the outbox together with the device's new sync cursor before
anything else happens to it; the next sync asks the device only for what is after the
committed cursor, so a BLE drop in the middle of a transfer repeats nothing and loses
nothing. Failures are classified (:func:`classify`): a device out of reach or a link
lost mid-session backs off exponentially (capped, jittered) from a short first retry; a
device that refuses (pairing needed, a control-point failure, records that do not
decode) will not change its mind in seconds, so it is retried at the cap. A failure is
logged once when it starts and once when it recovers. A full outbox pauses syncing
instead of dropping anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from bleak import BleakClient
from bleak.exc import BleakError

from drivers.devices.errors import (
    ConnectionLost,
    NotificationOverflow,
    ProcedureTimeout,
    TransferIncomplete,
)
from drivers.errors import DriversError
from drivers.records import DeviceIdentity, DeviceRecord
from edge.outbox import Outbox
from edge.readings import to_reading
from edge.settings import DeviceConfig

log = logging.getLogger(__name__)

# How many records go into one outbox transaction during a backfill.
COMMIT_EVERY = 100
STREAM = "records"


class Failure(StrEnum):
    UNREACHABLE = "unreachable"  # no connection: out of range, switched off, busy
    LINK_LOST = "link_lost"  # connected, then the link or a transfer broke off
    REFUSED = "refused"  # the device answered no: pairing, RACP/CGM failure, bad data


_LINK_ERRORS = (ConnectionLost, ProcedureTimeout, TransferIncomplete, NotificationOverflow)


def classify(err: BaseException, *, reached: bool) -> Failure:
    """``reached``: the session had connected to the device before it failed."""
    if isinstance(err, _LINK_ERRORS):
        return Failure.LINK_LOST
    if isinstance(err, DriversError):
        return Failure.REFUSED
    return Failure.LINK_LOST if reached else Failure.UNREACHABLE


def backoff(failure: Failure, delay: float, cap: float) -> tuple[float, float]:
    """(this wait, the next one): doubling up to ``cap``; a refusal waits ``cap`` at once."""
    wait = cap if failure is Failure.REFUSED else min(delay, cap)
    return wait, min(wait * 2, cap)


class Driver(Protocol):
    async def read_identity(self) -> DeviceIdentity: ...
    async def read_clock_offset(self) -> float | None: ...
    async def read_battery(self) -> int | None: ...
    def sync(self, after: int | None) -> AsyncIterator[DeviceRecord]: ...


def session_key(record: DeviceRecord) -> str | None:
    """What a record's cursor counts within: its session start (CGM), else nothing."""
    return None if record.session_start is None else record.session_start.isoformat()


def local_clock_estimate(device_time: datetime) -> float:
    """Documented estimate when a device has no Current Time Service: its clock shows
    the hub's local wall time, so UTC minus device clock is minus the local UTC offset."""
    offset = device_time.astimezone().utcoffset()
    return -offset.total_seconds() if offset is not None else 0.0


@dataclass
class DeviceState:
    config: DeviceConfig
    identity: DeviceIdentity | None = None
    connected: bool = False
    last_contact: datetime | None = None
    last_sync: datetime | None = None
    battery_pct: int | None = None
    clock_offset_s: float | None = None
    cursor: int | None = None
    records_read: int = 0
    failures: int = 0
    last_error: str | None = None


@dataclass
class DeviceTask:
    config: DeviceConfig
    address: str
    outbox: Outbox
    client_factory: Callable[..., BleakClient]
    driver_factory: Callable[[BleakClient], Any]
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 120.0
    state: DeviceState = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    syncs: int = 0
    _reached: bool = False  # this session connected to the device

    def __post_init__(self) -> None:
        self.state = DeviceState(self.config)

    async def run(self) -> None:
        delay = self.backoff_initial_s
        failing: tuple[Failure, float] | None = None  # class and start of a failure
        while not self._stop.is_set():
            await self.outbox.wait_for_space()
            # Cleared as a session starts, not when the pause starts: a wake() that comes
            # while the session ends (after its last record) must still bring a new sync.
            self._wake.clear()
            self._reached = False
            try:
                complete = await self._session()
                if failing is not None:
                    log.info(
                        "device %s recovered after %.0f s (%s)",
                        self.address,
                        time.monotonic() - failing[1],
                        failing[0],
                    )
                    failing = None
                delay = self.backoff_initial_s
                if complete:
                    await self._pause(self.config.poll_interval_s)
                # else: cut short by a full outbox; resume as soon as there is space
            except (BleakError, DriversError, TimeoutError, OSError, EOFError) as err:
                failure = classify(err, reached=self._reached)
                self.state.failures += 1
                self.state.last_error = f"{failure}: {type(err).__name__}: {err}"
                if failing is None:
                    failing = (failure, time.monotonic())
                    log.warning(
                        "device %s failed (%s): %s; retrying with backoff",
                        self.address,
                        failure,
                        err,
                    )
                else:
                    log.debug("device %s still failing (%s): %s", self.address, failure, err)
                wait, delay = backoff(failure, delay, self.backoff_max_s)
                await asyncio.sleep(wait * random.uniform(0.8, 1.2))
            finally:
                self.state.connected = False

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Sync now instead of at the next poll (an operator request, the demo's drain)."""
        self._wake.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _session(self) -> bool:
        """One connection; False when a full outbox cut the sync short."""
        try:
            async with self.client_factory(self.address, pair=self.config.pair) as client:
                self.state.connected = self._reached = True
                return await self._sync(client)
        finally:
            self.state.connected = False

    async def _sync(self, client: BleakClient) -> bool:
        driver = self.driver_factory(client)
        identity = await driver.read_identity()
        self.state.identity = identity
        self.state.last_contact = datetime.now(UTC)
        await self.outbox.record_contact(identity.serial, self.address, identity.kind.value)
        self.state.battery_pct = await driver.read_battery()
        offset = await driver.read_clock_offset()
        self.state.clock_offset_s = offset
        cursor = await self._cursor(identity.serial, driver)
        if not await self._drain(identity.serial, driver.sync(cursor), offset, live=False):
            # Going live now would move the cursor past the records not read yet.
            return False
        self.state.last_sync = datetime.now(UTC)
        self.syncs += 1
        live = getattr(driver, "live", None)
        if live is not None:
            return await self._drain(identity.serial, live(), offset, live=True)
        return True

    async def _cursor(self, serial: str, driver: Any) -> int | None:
        """The committed cursor, or None (read everything) when it counts within a session
        the device is no longer in: a CGM's time offsets restart at 0 in a new session,
        so an old session's cursor would skip the new session's first records."""
        cursor, session = await self.outbox.cursor_state(serial, STREAM)
        current_session = getattr(driver, "current_session", None)
        if cursor is None or session is None or current_session is None:
            return cursor  # a cursor stored before sessions were recorded is kept as is
        current = await current_session()
        if current is not None and current != session:
            log.info(
                "device %s is in a new session (%s, was %s): reading it from its start",
                serial,
                current,
                session,
            )
            return None
        return cursor

    async def _drain(
        self,
        serial: str,
        records: AsyncIterator[DeviceRecord],
        offset: float | None,
        *,
        live: bool,
    ) -> bool:
        """Commit records as they come; False when the outbox filled up (sync paused)."""
        pending: list[DeviceRecord] = []
        try:
            async for record in records:
                if offset is None:
                    record = replace(
                        record, clock_offset_s=local_clock_estimate(record.device_time)
                    )
                pending.append(record)
                self.state.last_contact = datetime.now(UTC)
                # Never commit past the outbox's bound: at most the room left.
                room = max(1, self.outbox.max_rows - self.outbox.depth)
                if live or len(pending) >= min(COMMIT_EVERY, room):
                    await self._commit(serial, pending, live=live)
                    pending = []
                    if self.outbox.full:
                        # Stop pulling; the device keeps the rest in its own memory.
                        log.warning("outbox full: pausing sync of %s", serial)
                        return False
            return True
        finally:
            # Whatever was read before a drop is committed with its cursor.
            if pending:
                await self._commit(serial, pending, live=live)

    async def _commit(self, serial: str, records: list[DeviceRecord], *, live: bool) -> None:
        readings = [to_reading(r) for r in records]
        await self.outbox.put(
            serial,
            [(r.key, r.model_dump_json()) for r in readings],
            stream=STREAM,
            cursor=records[-1].cursor,
            session=session_key(records[-1]),
            live=live,
        )
        self.state.cursor = records[-1].cursor
        self.state.records_read += len(records)
