"""A virtual blood glucose meter: GLS with RACP (report stored records / count)."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import Any

from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from drivers import uuids
from drivers.errors import DriversError
from drivers.gls import (
    ConcentrationUnit,
    GlucoseFeature,
    GlucoseMeasurement,
    GlucoseType,
    SampleLocation,
)
from drivers.ieee11073 import SFloat
from drivers.racp import (
    GlsFilterType,
    RacpOpcode,
    RacpOperator,
    RacpProfile,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
)
from drivers.records import DeviceKind, RecordKind
from drivers.sigtime import DateTime
from drivers.units import MG_DL_PER_KG_L, MG_DL_PER_MMOL_L, MMOL_L_PER_MOL_L, to_mg_dl
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

# Fingerstick times (hour of day): before meals and at bedtime.
TEST_HOURS = (7.0, 11.75, 18.25, 22.5)


class VirtualMeter(VirtualPeripheral):
    kind = DeviceKind.GLUCOSE_METER
    model = "Virtual Meter"

    def __init__(
        self,
        *args: Any,
        seed: int = 2,
        unit: ConcentrationUnit = "kg/L",
        history: timedelta = timedelta(days=1),
        first_sequence: int = 0,
        **kwargs: Any,
    ) -> None:
        self.unit: ConcentrationUnit = unit
        self.trace = GlucoseTrace(seed, baseline=120.0)
        self.rnd = random.Random(seed)
        self.records: list[GlucoseMeasurement] = []
        self.next_sequence = first_sequence
        self.racp_error: RacpResponseCode | None = None  # fault switch: answer every RACP with it
        self.disconnect_after: int | None = None  # fault switch: drop the link mid-transfer
        super().__init__(*args, **kwargs)
        self.history = history

    def services(self) -> list[Service]:
        self.measurement: Characteristic[bytes] = Characteristic(
            short(uuids.GLUCOSE_MEASUREMENT), NOTIFY, "READABLE", b""
        )
        self.context: Characteristic[bytes] = Characteristic(
            short(uuids.GLUCOSE_MEASUREMENT_CONTEXT), NOTIFY, "READABLE", b""
        )
        self.racp: Characteristic[bytes] = Characteristic(
            short(uuids.RECORD_ACCESS_CONTROL_POINT),
            WRITE | INDICATE,
            "WRITEABLE",
            CharacteristicValue[bytes](write=self._on_racp),
        )
        return [
            Service(
                short(uuids.GLUCOSE_SERVICE),
                [
                    self.measurement,
                    self.context,
                    Characteristic(
                        short(uuids.GLUCOSE_FEATURE), READ, "READABLE", bytes(GlucoseFeature())
                    ),
                    self.racp,
                ],
            )
        ]

    def _concentration(self, mg_dl: float) -> SFloat:
        if self.unit == "kg/L":
            return SFloat.from_value(round(mg_dl) / MG_DL_PER_KG_L)
        mmol = round(mg_dl / MG_DL_PER_MMOL_L, 1)
        return SFloat.from_value(mmol / MMOL_L_PER_MOL_L)

    def _test_times(self, day: datetime) -> list[datetime]:
        out = []
        for hour in TEST_HOURS:
            jitter = self.rnd.uniform(-0.4, 0.4)
            out.append(day + timedelta(hours=hour + jitter))
        return [t.replace(microsecond=0) for t in out]

    def _add(self, at: datetime) -> GlucoseMeasurement:
        conc = self._concentration(self.trace.value(at))
        seq = self.next_sequence
        self.next_sequence = (self.next_sequence + 1) % 65536  # uint16: wraps
        m = GlucoseMeasurement(
            sequence_number=seq,
            base_time=DateTime.from_datetime(at),
            concentration=conc,
            unit=self.unit,
            type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
            sample_location=SampleLocation.FINGER,
        )
        self.records.append(m)
        value = conc.to_float()
        self.produced.append(
            Produced(
                serial=self.serial,
                kind=RecordKind.BLOOD_GLUCOSE.value,
                device_time=at,
                mg_dl=to_mg_dl(value, self.unit),
                sequence=seq,
            )
        )
        return m

    def measure_now(self) -> GlucoseMeasurement:
        """The user does a fingerstick now (device clock)."""
        return self._add(self.device_now().replace(microsecond=0))

    async def produce(self) -> None:
        now = self.device_now()
        day = (now - self.history).replace(hour=0, minute=0, second=0, microsecond=0)
        while True:
            for at in self._test_times(day):
                if at < now - self.history:
                    continue
                await self.wait_device_time(at)
                self._add(at)
            day += timedelta(days=1)

    # -- RACP --------------------------------------------------------------------------------
    def _on_racp(self, connection: Connection, value: bytes) -> None:
        asyncio.get_running_loop().create_task(self._racp(connection, bytes(value)))

    async def _racp(self, connection: Connection, value: bytes) -> None:
        try:
            request = RacpRequest.from_bytes(value, profile=RacpProfile.GLS)
        except DriversError:
            await self._respond(
                connection,
                RacpResponse.code(value[0] if value else 0, RacpResponseCode.INVALID_OPERAND),
            )
            return
        if self.racp_error is not None:
            await self._respond(connection, RacpResponse.code(request.opcode, self.racp_error))
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
            await self.device.notify_subscriber(connection, self.measurement, bytes(record))
        await self._respond(connection, RacpResponse.code(request.opcode, RacpResponseCode.SUCCESS))

    def _select(self, request: RacpRequest) -> list[GlucoseMeasurement]:
        op = request.operator
        if op is RacpOperator.ALL_RECORDS:
            return list(self.records)
        if request.filter_type is GlsFilterType.SEQUENCE_NUMBER and request.operand:
            lo = int(request.operand[0])  # type: ignore[arg-type]
            if op is RacpOperator.GREATER_THAN_OR_EQUAL_TO:
                return [r for r in self.records if r.sequence_number >= lo]
            if op is RacpOperator.LESS_THAN_OR_EQUAL_TO:
                return [r for r in self.records if r.sequence_number <= lo]
        if op is RacpOperator.LAST_RECORD:
            return self.records[-1:]
        if op is RacpOperator.FIRST_RECORD:
            return self.records[:1]
        return []

    async def _respond(self, connection: Connection, response: RacpResponse) -> None:
        await self.device.indicate_subscriber(connection, self.racp, bytes(response))
