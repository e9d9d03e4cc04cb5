"""What every virtual device has: a bumble Device on the link, DIS, Battery, Current Time,
a Record Access Control Point server, fault switches and ground truth (``produced``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from bumble.att import ATT_Error, ErrorCode
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData, BaseBumbleError
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.pairing import PairingConfig

from drivers import uuids
from drivers.racp import RacpOpcode, RacpOperator, RacpResponse, RacpResponseCode
from drivers.records import DeviceKind
from drivers.sigtime import AdjustReason, CurrentTime
from drivers.virtual.clock import SimClock

log = logging.getLogger(__name__)

READ = Characteristic.Properties.READ
NOTIFY = Characteristic.Properties.NOTIFY
INDICATE = Characteristic.Properties.INDICATE
WRITE = Characteristic.Properties.WRITE

# ATT application error codes of the control points (Core Spec Supplement 1.2 / CSS).
ATT_PROCEDURE_ALREADY_IN_PROGRESS = 0xFE
ATT_CCCD_IMPROPERLY_CONFIGURED = 0xFD

# A 10 ms advertising interval: connecting takes about one interval on the LocalLink.
ADVERTISING_INTERVAL_MS = 10

R = TypeVar("R")


def short(uuid: str) -> str:
    """bumble takes 16-bit UUIDs as 4 hex digits."""
    return uuid[4:8].upper()


def pairing_config(_connection: Connection | None = None) -> PairingConfig:
    """LE Secure Connections, Just Works, bonding; identities are static random addresses
    so a bond found again on reconnect (see the bumble note in drivers/virtual/world.py)."""
    return PairingConfig(
        sc=True,
        mitm=False,
        bonding=True,
        identity_address_type=PairingConfig.AddressType.RANDOM,
    )


@dataclass(frozen=True, slots=True)
class Produced:
    """Ground truth: one record a virtual device generated (for end-to-end checks).

    ``value``/``unit`` are exact as the device holds them; ``mg_dl`` is the canonical
    glucose (None for insulin). ``sequence`` is the GLS/IDS sequence number, CGM records
    have ``session_start`` + ``time_offset_min`` instead.
    """

    serial: str
    kind: str  # RecordKind value
    device_time: datetime
    value: float
    unit: str
    mg_dl: float | None = None
    sequence: int | None = None
    session_start: datetime | None = None
    time_offset_min: int | None = None


@dataclass(frozen=True, slots=True)
class RacpCall:
    """A control point request in profile-neutral terms."""

    opcode: RacpOpcode
    operator: RacpOperator
    filter_type: int | None = None
    operand: tuple[int, ...] = ()


class Truth(list[Produced]):
    """``produced``: a list that wakes :meth:`VirtualPeripheral.wait_produced` waiters."""

    def __init__(self) -> None:
        super().__init__()
        self.grown = asyncio.Event()

    def append(self, item: Produced) -> None:
        super().append(item)
        self.grown.set()


class RacpStore(Generic[R]):
    """The record database behind a RACP: selection by the shared operators."""

    def __init__(self) -> None:
        self.records: list[R] = []

    def key(self, record: R) -> int:
        raise NotImplementedError

    def select(self, call: RacpCall) -> list[R] | RacpResponseCode:
        op = call.operator
        if op is RacpOperator.ALL_RECORDS:
            return list(self.records)
        if op is RacpOperator.FIRST_RECORD:
            return self.records[:1]
        if op is RacpOperator.LAST_RECORD:
            return self.records[-1:]
        if op is RacpOperator.NULL:
            return RacpResponseCode.INVALID_OPERATOR
        operand = call.operand
        key = self.key
        if op is RacpOperator.GREATER_THAN_OR_EQUAL_TO:
            return [r for r in self.records if key(r) >= operand[0]]
        if op is RacpOperator.LESS_THAN_OR_EQUAL_TO:
            return [r for r in self.records if key(r) <= operand[0]]
        if op is RacpOperator.WITHIN_RANGE_OF:
            lo, hi = operand
            if lo > hi:
                return RacpResponseCode.INVALID_OPERAND
            return [r for r in self.records if lo <= key(r) <= hi]
        return RacpResponseCode.OPERATOR_NOT_SUPPORTED


class VirtualPeripheral:
    """Base of the virtual devices. Fault switches are plain attributes (see below)."""

    kind: DeviceKind
    model = "Virtual"
    manufacturer = "Diatabase Sim"
    firmware = "1.0.0"
    service_uuid = ""

    def __init__(
        self,
        link: LocalLink,
        address: str,
        serial: str,
        clock: SimClock,
        *,
        clock_error: timedelta = timedelta(0),
        battery_pct: int = 87,
        require_pairing: bool = False,
        has_cts: bool = True,
        utc_offset: timedelta = timedelta(0),
    ) -> None:
        self.address = address
        self.serial = serial
        self.clock = clock
        self.battery_pct = battery_pct
        self.has_cts = has_cts
        # The simulation clock is UTC; the device shows local time (zone + DST) plus its
        # own error. ``device_now() - clock.now()`` is what the hub should measure.
        self.utc_offset = utc_offset
        self.dst = timedelta(0)
        self.produced = Truth()
        # -- fault switches ------------------------------------------------------------
        self.clock_error = clock_error  # the device clock is this much off (set any time)
        self.require_pairing = require_pairing  # protected reads/writes fail until paired
        self.racp_error: RacpResponseCode | None = None  # answer every RACP request so
        self.disconnect_after: int | None = None  # drop the link after N records sent
        self._adjust = AdjustReason(0)
        # ------------------------------------------------------------------------------
        controller = Controller(f"periph-{serial}", link=link, public_address=address)
        host = Host(controller_source=controller, controller_sink=controller)
        self.device = Device(name=f"{self.model} {serial}", address=Address(address), host=host)
        self.device.pairing_config_factory = pairing_config
        self.device.add_services(self._common_services() + self.services())
        self.connections: list[Connection] = []
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._producer: asyncio.Task[None] | None = None
        self._racp_busy = False
        self._racp_abort = False
        self.connected = asyncio.Condition()

    # -- time ----------------------------------------------------------------------------
    def device_now(self) -> datetime:
        """The device's wall clock (naive local time, errors included)."""
        return self.clock.now() + self.utc_offset + self.dst + self.clock_error

    def device_time(self, utc: datetime) -> datetime:
        """What the device clock showed at simulated UTC time ``utc``."""
        return utc + self.utc_offset + self.dst + self.clock_error

    def dst_change(self, forward: bool = True) -> None:
        """Fault switch: daylight saving starts (or ends); the device clock jumps 1 h."""
        self.dst += timedelta(hours=1) if forward else timedelta(hours=-1)
        self._adjust |= AdjustReason.CHANGE_OF_DST

    # -- connections ---------------------------------------------------------------------
    def _on_connection(self, connection: Connection) -> None:
        self.connections.append(connection)

        def gone(_reason: int) -> None:
            if connection in self.connections:
                self.connections.remove(connection)
            self._spawn(self._notify_connected())

        connection.on(connection.EVENT_DISCONNECTION, gone)
        self._spawn(self._notify_connected())

    async def _notify_connected(self) -> None:
        async with self.connected:
            self.connected.notify_all()

    async def wait_disconnected(self) -> None:
        """Until no central is connected (tests wait on this, never on a sleep)."""
        async with self.connected:
            await self.connected.wait_for(lambda: not self.connections)

    async def wait_produced(self, count: int) -> None:
        """Until the device has generated ``count`` records in all."""
        while len(self.produced) < count:
            self.produced.grown.clear()
            await self.produced.grown.wait()

    async def drop_connections(self) -> None:
        """Fault switch: the device goes out of range."""
        for connection in list(self.connections):
            with contextlib.suppress(BaseBumbleError, OSError):
                await connection.disconnect()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def protected(self, connection: Connection | None) -> None:
        """Raise the ATT error a device that requires pairing answers before it is."""
        if self.require_pairing and (connection is None or not connection.is_encrypted):
            raise ATT_Error(ErrorCode.INSUFFICIENT_AUTHENTICATION)

    # -- services ------------------------------------------------------------------------
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
        services = [
            Service(short(uuids.DEVICE_INFORMATION_SERVICE), dis),
            Service(short(uuids.BATTERY_SERVICE), [battery]),
        ]
        if self.has_cts:
            current_time: Characteristic[bytes] = Characteristic(
                short(uuids.CURRENT_TIME),
                READ,
                "READABLE",
                CharacteristicValue[bytes](read=lambda _c: self._current_time()),
            )
            services.append(Service(short(uuids.CURRENT_TIME_SERVICE), [current_time]))
        return services

    def _current_time(self) -> bytes:
        return bytes(CurrentTime.from_datetime(self.device_now(), self._adjust))

    def services(self) -> list[Service]:
        raise NotImplementedError

    def advertising_data(self) -> bytes:
        fields: list[tuple[int, bytes]] = [
            (AdvertisingData.FLAGS, bytes([0x06])),
            (AdvertisingData.COMPLETE_LOCAL_NAME, f"{self.model[:12]} {self.serial}".encode()),
        ]
        if self.service_uuid:
            fields.append(
                (
                    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                    bytes(UUID(short(self.service_uuid))),
                )
            )
        return bytes(AdvertisingData(fields))

    # -- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self.device.power_on()
        self.history()
        await self.device.start_advertising(
            auto_restart=True,
            advertising_data=self.advertising_data(),
            advertising_interval_min=ADVERTISING_INTERVAL_MS,
            advertising_interval_max=ADVERTISING_INTERVAL_MS,
        )
        self._producer = asyncio.create_task(self.produce(), name=f"virtual {self.serial}")

    async def stop(self) -> None:
        tasks = [t for t in (self._producer, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.drop_connections()
        with contextlib.suppress(BaseBumbleError, OSError):
            await self.device.stop_advertising()
        await self.device.power_off()

    def history(self) -> None:
        """Generate the records the device already holds when it is switched on."""

    async def produce(self) -> None:
        """Generate new records as simulated time passes (runs until stopped)."""

    # -- Record Access Control Point -----------------------------------------------------
    def racp_store(self) -> RacpStore[Any]:
        raise NotImplementedError

    def racp_parse(self, value: bytes) -> RacpCall:
        """Decode a request; raise ``DriversError`` for one that does not decode."""
        raise NotImplementedError

    # The RACP characteristic (set by each device's services()) and its response codec
    # (GLS and CGMS share one; IDS has its own).
    racp: Characteristic[bytes]
    racp_response: Any = RacpResponse

    def racp_encode(self, response: Any) -> bytes:
        return bytes(response)

    async def racp_respond(
        self,
        connection: Connection,
        request: RacpOpcode,
        code: RacpResponseCode | None = None,
        count: int | None = None,
    ) -> None:
        response = (
            self.racp_response.count(count)
            if count is not None
            else self.racp_response.code(request, code or RacpResponseCode.SUCCESS)
        )
        await self.device.indicate_subscriber(connection, self.racp, self.racp_encode(response))

    async def racp_send(self, connection: Connection, records: Sequence[Any]) -> None:
        raise NotImplementedError

    def racp_batch(self, connection: Connection) -> int:
        """How many records go in one notification (CGMS packs them; GLS sends one)."""
        return 1

    def racp_select(self, call: RacpCall) -> list[Any] | RacpResponseCode:
        return self.racp_store().select(call)

    def on_racp_write(self, connection: Connection, value: bytes) -> None:
        """The control point's write callback: checks that need the ATT error response."""
        self.protected(connection)
        is_abort = bool(value) and self._is_abort(bytes(value))
        if self._racp_busy and not is_abort:
            raise ATT_Error(ATT_PROCEDURE_ALREADY_IN_PROGRESS)
        self._spawn(self._racp(connection, bytes(value)))

    def _is_abort(self, value: bytes) -> bool:
        try:
            return self.racp_parse(value).opcode is RacpOpcode.ABORT_OPERATION
        except Exception:
            return False

    async def _racp(self, connection: Connection, value: bytes) -> None:
        try:
            await self._racp_procedure(connection, value)
        except (BaseBumbleError, OSError, ConnectionError) as err:
            # The central went away mid-procedure: nothing to answer to.
            log.debug("%s: RACP procedure ended by the link: %r", self.serial, err)

    async def _racp_procedure(self, connection: Connection, value: bytes) -> None:
        from drivers.errors import DriversError

        try:
            call = self.racp_parse(value)
        except DriversError:
            opcode = value[0] if value else 0
            request = next((o for o in RacpOpcode if o == opcode), RacpOpcode.RESPONSE_CODE)
            code = (
                RacpResponseCode.INVALID_OPERAND
                if any(o == opcode for o in RacpOpcode)
                else RacpResponseCode.OP_CODE_NOT_SUPPORTED
            )
            await self.racp_respond(connection, request, code)
            return
        if call.opcode is RacpOpcode.ABORT_OPERATION:
            self._racp_abort = self._racp_busy
            await self.racp_respond(connection, call.opcode, RacpResponseCode.SUCCESS)
            return
        if self.racp_error is not None:
            await self.racp_respond(connection, call.opcode, self.racp_error)
            return
        selected = self.racp_select(call)
        if isinstance(selected, RacpResponseCode):
            await self.racp_respond(connection, call.opcode, selected)
            return
        if call.opcode is RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS:
            await self.racp_respond(connection, call.opcode, count=len(selected))
            return
        if call.opcode is RacpOpcode.DELETE_STORED_RECORDS:
            gone = {id(r) for r in selected}
            store = self.racp_store()
            store.records = [r for r in store.records if id(r) not in gone]
            await self.racp_respond(connection, call.opcode, RacpResponseCode.SUCCESS)
            return
        if not selected:
            await self.racp_respond(connection, call.opcode, RacpResponseCode.NO_RECORDS_FOUND)
            return
        self._racp_busy, self._racp_abort = True, False
        try:
            batch = max(1, self.racp_batch(connection))
            sent = 0
            for i in range(0, len(selected), batch):
                if self._racp_abort:
                    return  # the abort got its own response; the report gets none
                chunk = selected[i : i + batch]
                if self.disconnect_after is not None and sent + len(chunk) > self.disconnect_after:
                    chunk = chunk[: self.disconnect_after - sent]
                    if chunk:
                        await self.racp_send(connection, chunk)
                    self.disconnect_after = None
                    await connection.disconnect()
                    return
                await self.racp_send(connection, chunk)
                sent += len(chunk)
        finally:
            self._racp_busy = False
        await self.racp_respond(connection, call.opcode, RacpResponseCode.SUCCESS)
