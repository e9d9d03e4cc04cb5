"""A virtual CGM: CGMS with live notifications and RACP backfill by time offset."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from drivers import uuids
from drivers.cgms import (
    CgmFeature,
    CgmFeatureBits,
    CgmMeasurement,
    SessionStartTime,
    encode_cgm_measurements,
)
from drivers.errors import DriversError
from drivers.gls import GlucoseType, SampleLocation
from drivers.ieee11073 import SFloat
from drivers.racp import (
    CgmsFilterType,
    RacpOpcode,
    RacpOperator,
    RacpProfile,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
)
from drivers.records import DeviceKind, RecordKind
from drivers.sigtime import DateTime, DstOffset, TimeZone
from drivers.virtual.peripheral import (
    INDICATE,
    NOTIFY,
    READ,
    WRITE,
    Produced,
    VirtualPeripheral,
    short,
)
from drivers.virtual.traces import GlucoseTrace

log = logging.getLogger(__name__)

INTERVAL = timedelta(minutes=5)


class VirtualCgm(VirtualPeripheral):
    kind = DeviceKind.CGM
    model = "Virtual CGM"

    def __init__(
        self,
        *args: Any,
        seed: int = 1,
        history: timedelta = timedelta(hours=6),
        crc: bool = False,
        **kwargs: Any,
    ) -> None:
        self.crc = crc
        self.trace = GlucoseTrace(seed)
        self.records: list[CgmMeasurement] = []
        self.bad_crc_next = 0  # fault switch: corrupt the CRC of the next N notifications
        self.disconnect_after: int | None = None  # fault switch: drop the link mid-RACP
        super().__init__(*args, **kwargs)
        self.session_start = (self.device_now() - history).replace(second=0, microsecond=0)

    def services(self) -> list[Service]:
        self.measurement: Characteristic[bytes] = Characteristic(
            short(uuids.CGM_MEASUREMENT), NOTIFY, "READABLE", b""
        )
        feature = CgmFeature(
            CgmFeatureBits.CGM_TREND_INFORMATION
            | (CgmFeatureBits.E2E_CRC if self.crc else CgmFeatureBits(0)),
            GlucoseType.INTERSTITIAL_FLUID,
            SampleLocation.SUBCUTANEOUS_TISSUE,
        )
        self.racp: Characteristic[bytes] = Characteristic(
            short(uuids.RECORD_ACCESS_CONTROL_POINT),
            WRITE | INDICATE,
            "WRITEABLE",
            CharacteristicValue[bytes](write=self._on_racp),
        )
        return [
            Service(
                short(uuids.CGM_SERVICE),
                [
                    self.measurement,
                    Characteristic(short(uuids.CGM_FEATURE), READ, "READABLE", bytes(feature)),
                    Characteristic(
                        short(uuids.CGM_SESSION_START_TIME),
                        READ,
                        "READABLE",
                        CharacteristicValue[bytes](read=lambda _c: self._session_start_bytes()),
                    ),
                    self.racp,
                ],
            )
        ]

    def _session_start_bytes(self) -> bytes:
        sst = SessionStartTime(
            DateTime.from_datetime(self.session_start),
            TimeZone.from_minutes(None),
            DstOffset.UNKNOWN,
            e2e_crc=self.crc,
        )
        return bytes(sst)

    def _record(self, offset_min: int) -> CgmMeasurement:
        at = self.session_start + timedelta(minutes=offset_min)
        mg = SFloat.from_value(round(self.trace.value(at)))
        earlier = self.trace.value(at - INTERVAL)
        trend = SFloat.from_value(round((mg.to_float() - earlier) / 5.0, 1))
        return CgmMeasurement(
            glucose_mg_dl=mg, time_offset_min=offset_min, trend_mg_dl_min=trend, e2e_crc=self.crc
        )

    def _encode(self, records: list[CgmMeasurement]) -> bytes:
        return encode_cgm_measurements(records)

    async def produce(self) -> None:
        offset = 0
        while True:
            at = self.session_start + timedelta(minutes=offset)
            await self.wait_device_time(at)
            record = self._record(offset)
            self.records.append(record)
            self.produced.append(
                Produced(
                    serial=self.serial,
                    kind=RecordKind.CGM_GLUCOSE.value,
                    device_time=at,
                    mg_dl=record.glucose_mg_dl.to_float(),
                    session_start=self.session_start,
                    time_offset_min=offset,
                )
            )
            await self._notify(record)
            offset += 5

    async def _notify(self, record: CgmMeasurement) -> None:
        data = self._encode([record])
        if self.bad_crc_next > 0 and self.crc:
            self.bad_crc_next -= 1
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        with contextlib.suppress(Exception):
            await self.device.notify_subscribers(self.measurement, data)

    # -- RACP --------------------------------------------------------------------------------
    def _on_racp(self, connection: Connection, value: bytes) -> None:
        asyncio.get_running_loop().create_task(self._racp(connection, bytes(value)))

    async def _racp(self, connection: Connection, value: bytes) -> None:
        try:
            request = RacpRequest.from_bytes(value, profile=RacpProfile.CGMS, crc_expected=self.crc)
        except DriversError:
            await self._respond(
                connection,
                RacpResponse.code(value[0] if value else 0, RacpResponseCode.INVALID_OPERAND),
            )
            return
        selected = self._select(request)
        if request.opcode is RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS:
            await self._respond(connection, RacpResponse.count(len(selected)))
            return
        if request.opcode is not RacpOpcode.REPORT_STORED_RECORDS:
            await self._respond(
                connection,
                RacpResponse.code(request.opcode, RacpResponseCode.OP_CODE_NOT_SUPPORTED),
            )
            return
        if not selected:
            await self._respond(
                connection, RacpResponse.code(request.opcode, RacpResponseCode.NO_RECORDS_FOUND)
            )
            return
        for i, record in enumerate(selected):
            if self.disconnect_after is not None and i >= self.disconnect_after:
                self.disconnect_after = None
                await connection.disconnect()
                return
            await self.device.notify_subscriber(
                connection, self.measurement, self._encode([record])
            )
        await self._respond(connection, RacpResponse.code(request.opcode, RacpResponseCode.SUCCESS))

    def _select(self, request: RacpRequest) -> list[CgmMeasurement]:
        op = request.operator
        if op is RacpOperator.ALL_RECORDS:
            return list(self.records)
        if request.filter_type is CgmsFilterType.TIME_OFFSET and request.operand:
            lo = int(request.operand[0])  # type: ignore[arg-type]
            if op is RacpOperator.GREATER_THAN_OR_EQUAL_TO:
                return [r for r in self.records if r.time_offset_min >= lo]
            if op is RacpOperator.LESS_THAN_OR_EQUAL_TO:
                return [r for r in self.records if r.time_offset_min <= lo]
            if op is RacpOperator.WITHIN_RANGE_OF:
                hi = int(request.operand[1])  # type: ignore[arg-type]
                return [r for r in self.records if lo <= r.time_offset_min <= hi]
        if op is RacpOperator.FIRST_RECORD:
            return self.records[:1]
        if op is RacpOperator.LAST_RECORD:
            return self.records[-1:]
        return []

    async def _respond(self, connection: Connection, response: RacpResponse) -> None:
        await self.device.indicate_subscriber(connection, self.racp, response.encode(crc=self.crc))
