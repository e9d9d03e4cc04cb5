"""Continuous glucose monitors speaking the CGM Profile (CGMS 1.0.1).

Supports: DIS identity, Battery Level, Current Time (clock offset), CGM Feature (E2E-CRC
checked when the feature says so; a bad CRC is counted in ``stats.crc_errors`` and the
record is not yielded), Session Start Time, backfill with RACP "report stored records,
time offset greater than or equal to N" after every (re)connect, then live measurement
notifications.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from drivers import uuids
from drivers.cgms import CgmFeature, CgmMeasurement, SessionStartTime, parse_cgm_measurements
from drivers.devices.base import DeviceDriver, Exchange, RacpError, flag_names
from drivers.errors import CRCError, DeviceError
from drivers.racp import (
    CgmsFilterType,
    RacpOpcode,
    RacpOperator,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
)
from drivers.records import DeviceKind, DeviceRecord, RecordKind

# Live notifications come every few minutes; silence longer than this means trouble.
LIVE_IDLE_S = 3600.0
# A connection can last for days: re-measure the device clock this often (device time),
# so a drifting or re-set device clock is caught within minutes, not at the next connect.
CLOCK_RECHECK = timedelta(minutes=5)


class CgmDriver(DeviceDriver):
    kind = DeviceKind.CGM

    def __init__(self, client: object) -> None:
        super().__init__(client)  # type: ignore[arg-type]
        self.feature: CgmFeature | None = None
        self.session_start: datetime | None = None
        self._ex: Exchange | None = None

    async def _prepare(self) -> Exchange:
        if self._ex is not None:
            return self._ex
        if self.identity is None:
            await self.read_identity()
        self.feature = CgmFeature.from_bytes(await self._read(uuids.CGM_FEATURE))
        crc = self.feature.e2e_crc_supported
        sst = SessionStartTime.from_bytes(
            await self._read(uuids.CGM_SESSION_START_TIME), crc_expected=crc
        )
        self.session_start = sst.start_time.to_datetime()
        if self.session_start is None:
            raise DeviceError("the CGM has no session start time (no session running)")
        ex = Exchange()
        await self.client.start_notify(uuids.CGM_MEASUREMENT, ex.on("m"))
        await self.client.start_notify(uuids.RECORD_ACCESS_CONTROL_POINT, ex.on("r"))
        self._ex = ex
        return ex

    def _records(self, data: bytes) -> list[DeviceRecord]:
        assert self.feature is not None
        try:
            measurements = parse_cgm_measurements(data, crc_expected=self.feature.e2e_crc_supported)
        except CRCError:
            self.stats.crc_errors += 1
            return []
        return [self._record(m, data) for m in measurements]

    async def sync(self, after: int | None) -> AsyncIterator[DeviceRecord]:
        """Stored records with a time offset after ``after`` (all when None)."""
        ex = await self._prepare()
        assert self.feature is not None
        if after is None:
            request = RacpRequest(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)
        else:
            request = RacpRequest(
                RacpOpcode.REPORT_STORED_RECORDS,
                RacpOperator.GREATER_THAN_OR_EQUAL_TO,
                CgmsFilterType.TIME_OFFSET,
                (after + 1,),
            )
        crc = self.feature.e2e_crc_supported
        await self.client.write_gatt_char(
            uuids.RECORD_ACCESS_CONTROL_POINT, request.encode(crc=crc), response=True
        )
        last = after if after is not None else -1
        while True:
            tag, data = await ex.next()
            if tag == "r":
                response = RacpResponse.from_bytes(data, crc_expected=crc)
                code = response.response_code
                if code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND):
                    return
                if code is None:
                    raise DeviceError(f"unexpected RACP answer {response!r}")
                raise RacpError(int(code), code.name.lower())
            for record in self._records(data):
                # A live notification can interleave with the backfill: keep order by offset.
                if record.cursor > last:
                    last = record.cursor
                    yield record

    async def live(self) -> AsyncIterator[DeviceRecord]:
        """Live measurements, as they are notified (after :meth:`sync`)."""
        ex = await self._prepare()
        checked_at: datetime | None = None
        while True:
            tag, data = await ex.next(LIVE_IDLE_S)
            if tag != "m":
                continue
            records = self._records(data)
            if (
                records
                and (checked_at is None or records[-1].device_time - checked_at >= CLOCK_RECHECK)
                and await self.read_clock_offset() is not None
            ):
                checked_at = records[-1].device_time
                records = self._records(data)  # with the fresh offset
                self.stats.records -= len(records)
            for record in records:
                yield record

    def _record(self, m: CgmMeasurement, raw: bytes) -> DeviceRecord:
        assert self.identity is not None and self.session_start is not None
        self.stats.records += 1
        value = m.glucose_mg_dl
        details: dict[str, str | int | float | bool | None] = {}
        if m.trend_mg_dl_min is not None and m.trend_mg_dl_min.value is not None:
            details["trend_mg_dl_min"] = m.trend_mg_dl_min.value
        if m.quality_pct is not None and m.quality_pct.value is not None:
            details["quality_pct"] = m.quality_pct.value
        return DeviceRecord(
            device=self.identity,
            kind=RecordKind.CGM_GLUCOSE,
            device_time=self.session_start + timedelta(minutes=m.time_offset_min),
            clock_offset_s=self.clock_offset_s if self.clock_offset_s is not None else 0.0,
            value=value.value,
            unit="mg/dL",
            cursor=m.time_offset_min,
            session_start=self.session_start,
            time_offset_min=m.time_offset_min,
            special=value.special,
            status=flag_names(m.status) + flag_names(m.cal_temp) + flag_names(m.warning),
            details=details,
            raw=raw,
        )
