"""A virtual CGM: CGMS 1.0.1 with live measurement notifications, RACP by time offset
(report / count / delete / abort), CGM Feature (optional E2E-CRC), Status, Session Start
Time (time zone and DST), Session Run Time, and SOCP start/stop session.

A record every 5 simulated minutes after a warm-up with no readings; quality rises over
the first hours of a session. RACP transfers pack as many records in one notification as
the ATT MTU allows (CGMS allows several records per notification).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from drivers import uuids
from drivers.cgms import (
    CgmFeature,
    CgmFeatureBits,
    CgmMeasurement,
    CgmSocp,
    CgmSocpOpcode,
    CgmSocpResponseCode,
    CgmStatus,
    CgmStatusOctet,
    CgmWarningOctet,
    SessionRunTime,
    SessionStartTime,
)
from drivers.errors import DriversError
from drivers.gls import GlucoseType, SampleLocation
from drivers.ieee11073 import SFloat
from drivers.racp import (
    CgmsFilterType,
    RacpProfile,
    RacpRequest,
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
    RacpCall,
    RacpStore,
    VirtualPeripheral,
    short,
)
from drivers.virtual.traces import GlucoseTrace

INTERVAL_MIN = 5
MAX_OFFSET_MIN = 0xFFFF  # uint16 Time Offset: a session can last 45.5 days at most
LOW_MG_DL, HIGH_MG_DL = 70.0, 250.0  # patient low/high alert levels


class _Store(RacpStore[CgmMeasurement]):
    def key(self, record: CgmMeasurement) -> int:
        return record.time_offset_min


class VirtualCgm(VirtualPeripheral):
    kind = DeviceKind.CGM
    model = "Virtual CGM"
    service_uuid = uuids.CGM_SERVICE

    def __init__(
        self,
        *args: Any,
        seed: int = 1,
        history: timedelta = timedelta(hours=6),
        warmup: timedelta = timedelta(0),
        crc: bool = False,
        run_time: timedelta = timedelta(days=14),
        **kwargs: Any,
    ) -> None:
        self.crc = crc
        self.trace = GlucoseTrace(seed)
        self.store = _Store()
        self.history_span = history
        self.warmup_min = int(warmup.total_seconds() // 60)
        self.run_time = run_time
        self.bad_crc_next = 0  # fault switch: corrupt the CRC of the next N notifications
        self.running = True
        super().__init__(*args, **kwargs)
        self._new_session(self.clock.now() - history)

    @property
    def records(self) -> list[CgmMeasurement]:
        return self.store.records

    def _new_session(self, utc_start: datetime) -> None:
        self.session_utc = utc_start.replace(second=0, microsecond=0)
        self.session_start = self.device_time(self.session_utc)  # device local clock
        self.session_zone = TimeZone.from_minutes(int(self.utc_offset.total_seconds() // 60))
        self.session_dst = DstOffset.from_minutes(int(self.dst.total_seconds() // 60))
        self.store.records = []
        self.next_offset = self.warmup_min

    def change_sensor(self) -> None:
        """Fault switch: a new sensor session starts now (as after a sensor change). Time
        offsets restart at 0 and the device keeps only the new session's records."""
        self._new_session(self.clock.now())
        self.running = True

    def services(self) -> list[Service]:
        self.measurement: Characteristic[bytes] = Characteristic(
            short(uuids.CGM_MEASUREMENT), NOTIFY, "READABLE", b""
        )
        feature = CgmFeature(
            CgmFeatureBits.CGM_TREND_INFORMATION
            | CgmFeatureBits.CGM_QUALITY
            | CgmFeatureBits.PATIENT_HIGH_LOW_ALERTS
            | (CgmFeatureBits.E2E_CRC if self.crc else CgmFeatureBits(0)),
            GlucoseType.INTERSTITIAL_FLUID,
            SampleLocation.SUBCUTANEOUS_TISSUE,
        )
        self.racp: Characteristic[bytes] = Characteristic(
            short(uuids.RECORD_ACCESS_CONTROL_POINT),
            WRITE | INDICATE,
            "WRITEABLE",
            CharacteristicValue[bytes](write=self.on_racp_write),
        )
        self.socp: Characteristic[bytes] = Characteristic(
            short(uuids.CGM_SPECIFIC_OPS_CONTROL_POINT),
            WRITE | INDICATE,
            "WRITEABLE",
            CharacteristicValue[bytes](write=self._on_socp),
        )

        def readable(uuid: str, read: Any) -> Characteristic[bytes]:
            def guarded(connection: Connection) -> bytes:
                self.protected(connection)
                return bytes(read())

            return Characteristic(
                short(uuid), READ, "READABLE", CharacteristicValue[bytes](read=guarded)
            )

        return [
            Service(
                short(uuids.CGM_SERVICE),
                [
                    self.measurement,
                    readable(uuids.CGM_FEATURE, lambda: bytes(feature)),
                    readable(uuids.CGM_STATUS, self._status),
                    readable(uuids.CGM_SESSION_START_TIME, self._session_start_time),
                    readable(
                        uuids.CGM_SESSION_RUN_TIME,
                        lambda: SessionRunTime(
                            int(self.run_time.total_seconds() // 3600), e2e_crc=self.crc
                        ),
                    ),
                    self.racp,
                    self.socp,
                ],
            )
        ]

    def _status(self) -> CgmStatus:
        offset = self.store.records[-1].time_offset_min if self.store.records else 0
        status = CgmStatusOctet(0) if self.running else CgmStatusOctet.SESSION_STOPPED
        return CgmStatus(offset, status, e2e_crc=self.crc)

    def _session_start_time(self) -> SessionStartTime:
        return SessionStartTime(
            DateTime.from_datetime(self.session_start),
            self.session_zone,
            self.session_dst,
            e2e_crc=self.crc,
        )

    # -- data ----------------------------------------------------------------------------
    def _record(self, offset_min: int) -> CgmMeasurement:
        utc = self.session_utc + timedelta(minutes=offset_min)
        mg = round(self.trace.value(utc))
        earlier = self.trace.value(utc - timedelta(minutes=INTERVAL_MIN))
        warning = CgmWarningOctet(0)
        if mg < LOW_MG_DL:
            warning |= CgmWarningOctet.RESULT_LOWER_THAN_PATIENT_LOW_LEVEL
        if mg > HIGH_MG_DL:
            warning |= CgmWarningOctet.RESULT_HIGHER_THAN_PATIENT_HIGH_LEVEL
        since_warmup_h = (offset_min - self.warmup_min) / 60
        quality = min(98, 70 + int(since_warmup_h * 3))  # sensors settle over a day
        return CgmMeasurement(
            glucose_mg_dl=SFloat.from_value(mg),
            time_offset_min=offset_min,
            warning=warning or None,
            trend_mg_dl_min=SFloat.from_value(round((mg - earlier) / INTERVAL_MIN, 1)),
            quality_pct=SFloat.from_value(quality),
            e2e_crc=self.crc,
        )

    def _add(self, offset_min: int) -> CgmMeasurement:
        record = self._record(offset_min)
        self.store.records.append(record)
        self.produced.append(
            Produced(
                serial=self.serial,
                kind=RecordKind.CGM_GLUCOSE.value,
                device_time=self.session_start + timedelta(minutes=offset_min),
                value=record.glucose_mg_dl.to_float(),
                unit="mg/dL",
                mg_dl=record.glucose_mg_dl.to_float(),
                session_start=self.session_start,
                time_offset_min=offset_min,
            )
        )
        return record

    def _due(self, offset_min: int) -> datetime:
        return self.session_utc + timedelta(minutes=offset_min)

    def history(self) -> None:
        now = self.clock.now()
        while self.next_offset <= MAX_OFFSET_MIN and self._due(self.next_offset) <= now:
            self._add(self.next_offset)
            self.next_offset += INTERVAL_MIN

    async def produce(self) -> None:
        while self.next_offset <= MAX_OFFSET_MIN:
            offset = self.next_offset
            await self.clock.sleep_until(self._due(offset))
            if offset != self.next_offset:
                continue  # a new session restarted the offsets while we slept
            if not self.running:
                await self.clock.sleep_until(self.clock.now() + timedelta(minutes=1))
                continue
            record = self._add(offset)
            self.next_offset += INTERVAL_MIN
            for connection in list(self.connections):
                self._spawn(self._notify(connection, record))

    def _corrupt(self, data: bytes) -> bytes:
        if self.bad_crc_next > 0 and self.crc:
            self.bad_crc_next -= 1
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    async def _notify(self, connection: Connection, record: CgmMeasurement) -> None:
        await self.device.notify_subscriber(
            connection, self.measurement, self._corrupt(bytes(record))
        )

    # -- SOCP: start / stop session --------------------------------------------------------
    def _on_socp(self, connection: Connection, value: bytes) -> None:
        self.protected(connection)
        self._spawn(self._socp(connection, bytes(value)))

    async def _socp(self, connection: Connection, value: bytes) -> None:
        try:
            request = CgmSocp.from_bytes(value, crc_expected=self.crc)
        except DriversError:
            code, opcode = CgmSocpResponseCode.INVALID_OPERAND, value[0] if value else 0
        else:
            opcode = int(request.opcode)
            code = CgmSocpResponseCode.SUCCESS
            if request.opcode is CgmSocpOpcode.START_SESSION:
                if self.running and self.store.records:
                    code = CgmSocpResponseCode.PROCEDURE_NOT_COMPLETED  # stop it first
                else:
                    self._new_session(self.clock.now())
                    self.running = True
            elif request.opcode is CgmSocpOpcode.STOP_SESSION:
                self.running = False
            else:
                code = CgmSocpResponseCode.OP_CODE_NOT_SUPPORTED
        response = CgmSocp(
            CgmSocpOpcode.RESPONSE_CODE, request_opcode=opcode, response_code=code, e2e_crc=self.crc
        )
        await self.device.indicate_subscriber(connection, self.socp, bytes(response))

    # -- RACP ----------------------------------------------------------------------------
    def racp_store(self) -> _Store:
        return self.store

    def racp_parse(self, value: bytes) -> RacpCall:
        request = RacpRequest.from_bytes(value, profile=RacpProfile.CGMS, crc_expected=self.crc)
        operand = tuple(int(v) for v in request.operand if isinstance(v, int))
        return RacpCall(
            request.opcode,
            request.operator,
            int(request.filter_type) if request.filter_type is not None else None,
            operand,
        )

    def racp_select(self, call: RacpCall) -> list[Any] | RacpResponseCode:
        if call.filter_type is not None and call.filter_type != CgmsFilterType.TIME_OFFSET:
            return RacpResponseCode.OPERAND_NOT_SUPPORTED
        return self.store.select(call)

    def racp_batch(self, connection: Connection) -> int:
        # Records are 8-17 octets; racp_send splits a batch by octets, not by count.
        return max(1, (connection.att_mtu - 3) // 10)

    def racp_encode(self, response: Any) -> bytes:
        return bytes(response.encode(crc=self.crc))

    async def racp_send(self, connection: Connection, records: Sequence[CgmMeasurement]) -> None:
        room = connection.att_mtu - 3
        data = b""
        for record in records:
            octets = bytes(record)
            if data and len(data) + len(octets) > room:
                await self.device.notify_subscriber(
                    connection, self.measurement, self._corrupt(data)
                )
                data = b""
            data += octets
        if data:
            await self.device.notify_subscriber(connection, self.measurement, self._corrupt(data))
