"""Continuous glucose monitors speaking the CGM Profile (CGMS 1.0.1).

Supports: DIS identity, Battery Level, Current Time (clock offset), CGM Feature (E2E-CRC
checked on every CRC-bearing characteristic when the feature says so), Session Start
Time (time zone and DST kept in ``details``), CGM Status, backfill with RACP "report
stored records, time offset >= N" (several records per notification), live measurement
notifications, and SOCP start/stop session.

A notification with a bad E2E-CRC is rejected whole (:class:`drivers.errors.CRCError`,
counted in ``stats.crc_errors``, logged, never yielded); the driver then re-requests the
records from the last good time offset through RACP, so nothing is lost or doubled.

Cursor: the time offset (minutes since session start). Offsets restart with a new
session, so a cursor only means something together with its session:
:meth:`CgmDriver.current_session` names the device's session (its start time), and the
edge stores it beside the cursor and syncs from the start of a session it has not seen
(``sync(None)``). For a cursor without a known session, a cursor beyond what the current
session holds (CGM Status time offset) also reads the whole session. During live
notifications a time offset that goes backwards, or the periodic re-check, re-reads
Session Start Time; a new session is then backfilled from its start.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from bleak import BleakClient

from drivers import uuids
from drivers.cgms import (
    CgmFeature,
    CgmMeasurement,
    CgmSocp,
    CgmSocpOpcode,
    CgmSocpResponseCode,
    CgmStatus,
    SessionStartTime,
    parse_cgm_measurements,
)
from drivers.devices.base import RECORD_TIMEOUT_S, DeviceDriver, Inbox, flag_names, racp_failed
from drivers.devices.errors import SessionNotRunning, TransferIncomplete
from drivers.errors import CRCError, DecodeError, DeviceError
from drivers.racp import (
    CgmsFilterType,
    RacpOpcode,
    RacpOperator,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
)
from drivers.records import DeviceKind, DeviceRecord, RecordKind

log = logging.getLogger(__name__)

# Live notifications come every few minutes; silence longer than this means trouble.
LIVE_IDLE_S = 3600.0
# A connection can last for days: re-measure the device clock this often (device time),
# so a drifting or re-set device clock is caught within minutes, not at the next connect.
CLOCK_RECHECK = timedelta(minutes=5)
# Re-requests after rejected notifications before a sync gives up (the cursor stays put).
MAX_REREQUESTS = 3
# Records a transfer may hold back to put live notifications that interleave in order.
REORDER_WINDOW = 64


class CgmDriver(DeviceDriver):
    kind = DeviceKind.CGM

    def __init__(
        self,
        client: BleakClient,
        *,
        record_timeout_s: float = RECORD_TIMEOUT_S,
        live_idle_s: float = LIVE_IDLE_S,
    ) -> None:
        super().__init__(client, record_timeout_s=record_timeout_s)
        self.live_idle_s = live_idle_s
        self.feature: CgmFeature | None = None
        self.session: SessionStartTime | None = None
        self.session_start: datetime | None = None
        self.last_offset: int | None = None  # the newest time offset yielded
        self._inbox: Inbox | None = None

    @property
    def crc(self) -> bool:
        return self.feature is not None and self.feature.e2e_crc_supported

    async def _prepare(self) -> Inbox:
        if self._inbox is not None:
            return self._inbox
        await self._identity()
        self.feature = CgmFeature.from_bytes(await self._read(uuids.CGM_FEATURE))
        self.session = SessionStartTime.from_bytes(
            await self._read(uuids.CGM_SESSION_START_TIME), crc_expected=self.crc
        )
        self.session_start = self.session.start_time.to_datetime()
        if self.session_start is None:
            raise SessionNotRunning("the CGM has no session start time (no session running)")
        inbox = self._new_inbox()
        await self._subscribe(uuids.CGM_MEASUREMENT, inbox.on("m"))
        await self._subscribe(uuids.RECORD_ACCESS_CONTROL_POINT, inbox.on("r"))
        self._inbox = inbox
        return inbox

    async def current_session(self) -> str | None:
        """The device's session, as its start time (ISO): the key a cursor counts within."""
        await self._prepare()
        return None if self.session_start is None else self.session_start.isoformat()

    async def _session_changed(self) -> bool:
        """Re-read Session Start Time; True (and the new session adopted) when it moved."""
        session = SessionStartTime.from_bytes(
            await self._read(uuids.CGM_SESSION_START_TIME), crc_expected=self.crc
        )
        start = session.start_time.to_datetime()
        if start is None or start == self.session_start:
            return False
        log.info(
            "%s: a new CGM session started at %s (was %s)",
            self.client.address,
            start.isoformat(),
            self.session_start.isoformat() if self.session_start else None,
        )
        self.session, self.session_start, self.last_offset = session, start, None
        return True

    async def read_status(self) -> CgmStatus:
        await self._prepare()
        return CgmStatus.from_bytes(await self._read(uuids.CGM_STATUS), crc_expected=self.crc)

    def _decode(self, data: bytes) -> list[tuple[CgmMeasurement, bytes]] | None:
        """The records of one notification with their own octets; None when rejected."""
        try:
            measurements = parse_cgm_measurements(data, crc_expected=self.crc)
            out = []
            pos = 0
            for m in measurements:
                out.append((m, data[pos : pos + data[pos]]))
                pos += data[pos]
            return out
        except CRCError as err:
            self.stats.crc_errors += 1
            log.warning("%s: rejected a CGM notification: %s", self.client.address, err)
            return None
        except DecodeError as err:
            self.stats.decode_errors += 1
            log.warning("%s: undecodable CGM notification: %s", self.client.address, err)
            return None

    async def sync(self, after: int | None) -> AsyncIterator[DeviceRecord]:
        """Stored records with a time offset after ``after`` (all when None), in order."""
        await self._prepare()
        if after is not None and self._has(uuids.CGM_STATUS):
            status = await self.read_status()
            if after > status.time_offset_min:
                log.info(
                    "%s: cursor %d is beyond the session (at %d): a new session, reading all",
                    self.client.address,
                    after,
                    status.time_offset_min,
                )
                after = None
        last = -1 if after is None else after
        for _attempt in range(MAX_REREQUESTS + 1):
            complete = True
            # Live notifications share the characteristic with the transfer: one that
            # lands mid-transfer is newer than the stored records still to come. Yield in
            # time-offset order through a small reorder window, so the cursor never jumps
            # past records of the transfer that have not arrived yet.
            held: list[tuple[int, int, DeviceRecord]] = []
            async for record in self._backfill(last):
                if record is None:
                    complete = False  # a gap: stop moving the cursor, ask again
                    continue
                if not complete:
                    continue
                heapq.heappush(held, (record.cursor, self.stats.records, record))
                while len(held) > REORDER_WINDOW:
                    _cursor, _n, first = heapq.heappop(held)
                    if first.cursor > last:
                        last = first.cursor
                        yield first
            if complete:
                for _cursor, _n, first in sorted(held):
                    if first.cursor > last:
                        last = first.cursor
                        yield first
                return
            self.stats.rerequests += 1
        raise TransferIncomplete(f"records after time offset {last} kept failing their CRC")

    async def _backfill(self, after: int) -> AsyncIterator[DeviceRecord | None]:
        """One RACP report of offsets > ``after``; None marks a rejected notification."""
        inbox = await self._prepare()
        if after < 0:
            request = RacpRequest(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)
        else:
            request = RacpRequest(
                RacpOpcode.REPORT_STORED_RECORDS,
                RacpOperator.GREATER_THAN_OR_EQUAL_TO,
                CgmsFilterType.TIME_OFFSET,
                (min(after + 1, 0xFFFF),),
            )
        await self._write(uuids.RECORD_ACCESS_CONTROL_POINT, request.encode(crc=self.crc))
        while True:
            tag, data = await inbox.next(self.record_timeout_s)
            if tag == "r":
                response = RacpResponse.from_bytes(data, crc_expected=self.crc)
                code = response.response_code
                if code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND):
                    return
                if code is None:
                    raise DeviceError(f"unexpected RACP answer {response!r}")
                raise racp_failed(code, code.name)
            measurements = self._decode(data)
            if measurements is None:
                yield None
                continue
            for m, raw in measurements:
                yield self._record(m, raw)

    async def live(self) -> AsyncIterator[DeviceRecord]:
        """Live measurements as they are notified (call after :meth:`sync`).

        A rejected notification triggers a RACP re-request of what it should have held.
        """
        inbox = await self._prepare()
        checked_at: datetime | None = None
        while True:
            tag, data = await inbox.next(self.live_idle_s)
            if tag != "m":
                continue
            measurements = self._decode(data)
            if measurements and self.session_start is not None:
                newest = measurements[-1][0].time_offset_min
                at = self.session_start + timedelta(minutes=newest)
                backwards = self.last_offset is not None and newest < self.last_offset
                recheck = checked_at is None or at - checked_at >= CLOCK_RECHECK
                if (backwards or recheck) and await self._session_changed():
                    # The new session's records so far (these included) come by RACP.
                    checked_at = None
                    async for record in self.sync(None):
                        yield record
                    continue
                if recheck:
                    checked_at = at
                    await self.read_clock_offset()
            if measurements is None:
                async for record in self.sync(self.last_offset):
                    yield record
                continue
            for m, raw in measurements:
                if self.last_offset is None or m.time_offset_min > self.last_offset:
                    yield self._record(m, raw)

    async def start_session(self) -> None:
        await self._socp(CgmSocpOpcode.START_SESSION)
        self._inbox = None  # a new session start time: read it again on next use

    async def stop_session(self) -> None:
        await self._socp(CgmSocpOpcode.STOP_SESSION)

    async def _socp(self, opcode: CgmSocpOpcode) -> None:
        await self._prepare()
        inbox = self._new_inbox()
        await self._subscribe(uuids.CGM_SPECIFIC_OPS_CONTROL_POINT, inbox.on("s"))
        await self._write(
            uuids.CGM_SPECIFIC_OPS_CONTROL_POINT, bytes(CgmSocp(opcode, e2e_crc=self.crc))
        )
        _tag, data = await inbox.next(self.record_timeout_s)
        response = CgmSocp.from_bytes(data, crc_expected=self.crc)
        if response.response_code is not CgmSocpResponseCode.SUCCESS:
            code = response.response_code
            raise DeviceError(
                f"{opcode.name.lower()} refused: {code.name.lower() if code else 'unknown'}"
            )

    def _record(self, m: CgmMeasurement, raw: bytes) -> DeviceRecord:
        assert self.identity is not None and self.session_start is not None
        assert self.session is not None
        self.stats.records += 1
        if self.last_offset is None or m.time_offset_min > self.last_offset:
            self.last_offset = m.time_offset_min
        value = m.glucose_mg_dl
        details: dict[str, str | int | float | bool | None] = {
            "session_utc_offset_min": self.session.utc_offset_min,
            "session_dst_offset_min": self.session.dst_offset_min,
        }
        if m.trend_mg_dl_min is not None:
            details["trend_mg_dl_min"] = m.trend_mg_dl_min.value
        if m.quality_pct is not None:
            details["quality_pct"] = m.quality_pct.value
        return DeviceRecord(
            device=self.identity,
            kind=RecordKind.CGM_GLUCOSE,
            device_time=self.session_start + timedelta(minutes=m.time_offset_min),
            clock_offset_s=self._offset,
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
