"""Blood glucose meters speaking the Glucose Profile (GLS 1.0).

Supports: DIS identity, Battery Level, Current Time (clock offset), pairing when the
meter requires it, incremental sync with RACP "report stored records, sequence number
greater than or equal to N", Glucose Measurement Context joined to its measurement, and
every RACP response code (no records found = nothing new).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from drivers import uuids
from drivers.devices.base import DeviceDriver, Exchange, RacpError, flag_names
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


class GlucoseMeterDriver(DeviceDriver):
    kind = DeviceKind.GLUCOSE_METER

    async def sync(self, after: int | None) -> AsyncIterator[DeviceRecord]:
        """Records with a sequence number after ``after`` (all when None), in order."""
        identity = self.identity or await self.read_identity()
        offset = self.clock_offset_s if self.clock_offset_s is not None else 0.0
        if after is None:
            request = RacpRequest(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)
        else:
            request = RacpRequest(
                RacpOpcode.REPORT_STORED_RECORDS,
                RacpOperator.GREATER_THAN_OR_EQUAL_TO,
                GlsFilterType.SEQUENCE_NUMBER,
                ((after + 1) % 65536,),
            )
        ex = Exchange()
        await self.client.start_notify(uuids.GLUCOSE_MEASUREMENT, ex.on("m"))
        has_context = self._has(uuids.GLUCOSE_MEASUREMENT_CONTEXT)
        if has_context:
            await self.client.start_notify(uuids.GLUCOSE_MEASUREMENT_CONTEXT, ex.on("c"))
        await self.client.start_notify(uuids.RECORD_ACCESS_CONTROL_POINT, ex.on("r"))
        await self.client.write_gatt_char(
            uuids.RECORD_ACCESS_CONTROL_POINT, bytes(request), response=True
        )
        pending: GlucoseMeasurement | None = None
        pending_raw = b""
        while True:
            tag, data = await ex.next()
            if tag == "r":
                if pending is not None:
                    yield self._record(identity, pending, None, pending_raw, offset)
                self._finish(RacpResponse.from_bytes(data))
                return
            if tag == "m":
                if pending is not None:
                    yield self._record(identity, pending, None, pending_raw, offset)
                    pending = None
                try:
                    m = GlucoseMeasurement.from_bytes(data)
                except DecodeError:
                    self.stats.decode_errors += 1
                    raise
                if m.context_follows and has_context:
                    pending, pending_raw = m, data
                else:
                    yield self._record(identity, m, None, data, offset)
            elif tag == "c" and pending is not None:
                context = GlucoseContext.from_bytes(data)
                if context.sequence_number == pending.sequence_number:
                    yield self._record(identity, pending, context, pending_raw, offset)
                    pending = None

    @staticmethod
    def _finish(response: RacpResponse) -> None:
        code = response.response_code
        if code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND):
            return
        if code is None:
            raise DeviceError(f"unexpected RACP answer {response!r}")
        raise RacpError(int(code), code.name.lower())

    def _record(
        self,
        identity: object,
        m: GlucoseMeasurement,
        context: GlucoseContext | None,
        raw: bytes,
        offset: float,
    ) -> DeviceRecord:
        assert self.identity is not None
        self.stats.records += 1
        when = m.time or m.base_time.to_datetime()
        if when is None:
            raise DeviceError(f"record {m.sequence_number} has no base time")
        conc = m.concentration
        details: dict[str, str | int | float | bool | None] = {
            "sample_type": m.type.name.lower() if m.type is not None else None,
            "sample_location": m.sample_location.name.lower()
            if m.sample_location is not None
            else None,
        }
        if context is not None:
            if context.meal is not None:
                details["meal"] = context.meal.name.lower()
            if context.carbohydrate_kg is not None and context.carbohydrate_kg.value is not None:
                details["carbohydrate_g"] = round(context.carbohydrate_kg.value * 1000, 3)
        status = flag_names(m.sensor_status)
        return DeviceRecord(
            device=self.identity,
            kind=RecordKind.BLOOD_GLUCOSE,
            device_time=when,
            clock_offset_s=offset,
            value=conc.value if conc is not None else None,
            unit=m.unit or "kg/L",
            cursor=m.sequence_number,
            sequence=m.sequence_number,
            time_offset_min=m.time_offset_min,
            special=conc.special if conc is not None else None,
            status=status,
            details=details,
            raw=raw,
        )
