"""Blood glucose meters speaking the Glucose Profile (GLS 1.0).

Supports: DIS identity, Battery Level, Current Time (clock offset), meters that require
pairing (a typed :class:`PairingRequired` until the link is paired), incremental sync with
RACP "report stored records" by sequence number, Glucose Measurement Context joined to
its measurement, sequence numbers that wrap 65535 -> 0 (serial number arithmetic on the
cursor), and every RACP response code (no records found = nothing new; the others raise
:class:`RacpError`). Values and units are passed on exactly as reported (kg/L or mol/L).

Not supported: user-facing-time filters, records without a base time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bleak import BleakClient

from drivers import uuids
from drivers.devices.base import (
    RECORD_TIMEOUT_S,
    DeviceDriver,
    Inbox,
    flag_names,
    racp_failed,
)
from drivers.errors import DecodeError, DeviceError
from drivers.gls import GlucoseContext, GlucoseMeasurement
from drivers.racp import (
    GlsFilterType,
    RacpOpcode,
    RacpOperator,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
)
from drivers.records import DeviceKind, DeviceRecord, RecordKind

SEQUENCE_MODULUS = 0x10000  # GLS sequence numbers are uint16


def newer(a: int, b: int) -> bool:
    """Serial number arithmetic (RFC 1982) on uint16: is ``a`` after ``b``?"""
    return 0 < (a - b) % SEQUENCE_MODULUS < SEQUENCE_MODULUS // 2


def _report(operator: RacpOperator, *operand: int) -> RacpRequest:
    return RacpRequest(
        RacpOpcode.REPORT_STORED_RECORDS,
        operator,
        GlsFilterType.SEQUENCE_NUMBER if operand else None,
        tuple(operand),
    )


Transferred = tuple[GlucoseMeasurement, GlucoseContext | None, bytes]


class GlucoseMeterDriver(DeviceDriver):
    kind = DeviceKind.GLUCOSE_METER

    def __init__(self, client: BleakClient, *, record_timeout_s: float = RECORD_TIMEOUT_S) -> None:
        super().__init__(client, record_timeout_s=record_timeout_s)
        self._inbox: Inbox | None = None
        self._has_context = False

    async def _prepare(self) -> Inbox:
        if self._inbox is None:
            inbox = self._new_inbox()
            await self._subscribe(uuids.GLUCOSE_MEASUREMENT, inbox.on("m"))
            self._has_context = self._has(uuids.GLUCOSE_MEASUREMENT_CONTEXT)
            if self._has_context:
                await self._subscribe(uuids.GLUCOSE_MEASUREMENT_CONTEXT, inbox.on("c"))
            await self._subscribe(uuids.RECORD_ACCESS_CONTROL_POINT, inbox.on("r"))
            self._inbox = inbox
        return self._inbox

    async def sync(self, after: int | None) -> AsyncIterator[DeviceRecord]:
        """Records after sequence number ``after`` (all when None), in device order."""
        await self._identity()
        if after is None:
            plan = [_report(RacpOperator.ALL_RECORDS)]
        else:
            last = [m async for m in self._transfer(_report(RacpOperator.LAST_RECORD))]
            if not last or not newer(last[-1][0].sequence_number, after):
                return  # nothing stored, or nothing after the cursor
            top = last[-1][0].sequence_number
            start = (after + 1) % SEQUENCE_MODULUS
            if start <= top:
                plan = [_report(RacpOperator.WITHIN_RANGE_OF, start, top)]
            else:  # the numbers wrapped since the cursor: the tail, then from 0
                plan = [
                    _report(RacpOperator.GREATER_THAN_OR_EQUAL_TO, start),
                    _report(RacpOperator.LESS_THAN_OR_EQUAL_TO, top),
                ]
        for request in plan:
            async for m, context, raw in self._transfer(request):
                yield self._record(m, context, raw)

    async def count(self, after: int | None = None) -> int:
        """Number of stored records (after sequence ``after`` when given, no wrap)."""
        if after is None:
            request = RacpRequest(
                RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS
            )
        else:
            request = RacpRequest(
                RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
                RacpOperator.GREATER_THAN_OR_EQUAL_TO,
                GlsFilterType.SEQUENCE_NUMBER,
                ((after + 1) % SEQUENCE_MODULUS,),
            )
        inbox = await self._prepare()
        inbox.clear()
        await self._write(uuids.RECORD_ACCESS_CONTROL_POINT, bytes(request))
        while True:
            tag, data = await inbox.next(self.record_timeout_s)
            if tag != "r":
                continue
            response = RacpResponse.from_bytes(data)
            if response.number_of_records is not None:
                return response.number_of_records
            if response.response_code is RacpResponseCode.NO_RECORDS_FOUND:
                return 0
            raise racp_failed(response.response_code, _name(response))

    async def _transfer(self, request: RacpRequest) -> AsyncIterator[Transferred]:
        """Run one report procedure; measurements with their context, in order."""
        inbox = await self._prepare()
        inbox.clear()
        await self._write(uuids.RECORD_ACCESS_CONTROL_POINT, bytes(request))
        pending: tuple[GlucoseMeasurement, bytes] | None = None
        while True:
            tag, data = await inbox.next(self.record_timeout_s)
            if tag == "r":
                if pending is not None:
                    yield pending[0], None, pending[1]
                response = RacpResponse.from_bytes(data)
                code = response.response_code
                if code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND):
                    return
                if code is None:
                    raise DeviceError(f"unexpected RACP answer {response!r}")
                raise racp_failed(code, code.name)
            if tag == "m":
                if pending is not None:
                    yield pending[0], None, pending[1]
                    pending = None
                try:
                    m = GlucoseMeasurement.from_bytes(data)
                except DecodeError:
                    self.stats.decode_errors += 1
                    raise
                if m.context_follows and self._has_context:
                    pending = (m, data)
                else:
                    yield m, None, data
            elif tag == "c" and pending is not None:
                try:
                    context = GlucoseContext.from_bytes(data)
                except DecodeError:
                    self.stats.decode_errors += 1
                    context = None
                if context is None or context.sequence_number == pending[0].sequence_number:
                    yield pending[0], context, pending[1]
                    pending = None

    def _record(
        self, m: GlucoseMeasurement, context: GlucoseContext | None, raw: bytes
    ) -> DeviceRecord:
        assert self.identity is not None
        when = m.time or m.base_time.to_datetime()
        if when is None:
            raise DeviceError(f"record {m.sequence_number} has no base time")
        conc = m.concentration
        details: dict[str, str | int | float | bool | None] = {
            "sample_type": m.type.name.lower() if m.type is not None else None,
            "sample_location": (
                m.sample_location.name.lower() if m.sample_location is not None else None
            ),
            "context": context is not None,
        }
        if context is not None:
            if context.meal is not None:
                details["meal"] = context.meal.name.lower()
            if context.carbohydrate_id is not None:
                details["carbohydrate_id"] = context.carbohydrate_id.name.lower()
            if context.carbohydrate_kg is not None and context.carbohydrate_kg.value is not None:
                details["carbohydrate_kg"] = context.carbohydrate_kg.value
            if context.tester is not None:
                details["tester"] = context.tester.name.lower()
            if context.health is not None:
                details["health"] = context.health.name.lower()
            details["context_raw"] = bytes(context).hex()
        self.stats.records += 1
        return DeviceRecord(
            device=self.identity,
            kind=RecordKind.BLOOD_GLUCOSE,
            device_time=when,
            clock_offset_s=self._offset,
            value=conc.value if conc is not None else None,
            unit=m.unit or "",
            cursor=m.sequence_number,
            sequence=m.sequence_number,
            time_offset_min=m.time_offset_min,
            special=conc.special if conc is not None else None,
            status=flag_names(m.sensor_status),
            details=details,
            raw=raw,
        )


def _name(response: RacpResponse) -> str:
    code = response.response_code
    return code.name if code is not None else "unknown"
