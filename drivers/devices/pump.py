"""Insulin pumps speaking the Insulin Delivery Profile (IDS 1.0).

Supports: DIS identity, Battery Level, Current Time (clock offset), IDD Status (therapy
and operational state, reservoir), IDD Annunciation Status, and history through the
IDD Record Access Control Point: bolus delivered (parts 1 and 2 joined; value = fast +
extended amount in IU), delivered basal rate changed (value = new rate in IU/h), and every
other event kept for audit as ``INSULIN_EVENT`` (reference time events included). Event
times are the last reference time event's date time plus the event's relative offset; an
incremental sync first fetches the reference time events up to the cursor.

Not supported: E2E-protected IDS (IDD Features bit 0), the IDD Command Control Point and
Status Reader Control Point. The IDD RACP codec is in drivers/ids.py (sources cited there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import fields, is_dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from bleak import BleakClient

from drivers import uuids
from drivers.devices.base import RECORD_TIMEOUT_S, DeviceDriver, Inbox, racp_failed
from drivers.errors import DecodeError, DeviceError
from drivers.ids import (
    ANNUNCIATION_TYPE_NAMES,
    AnnunciationChangedPart1Event,
    AnnunciationStatus,
    BolusDeliveredPart2Event,
    BolusPart1Event,
    DeliveredBasalRateChangedEvent,
    IddAnnunciationStatus,
    IddEventType,
    IddFeatures,
    IddFilterType,
    IddHistoryData,
    IddRacpRequest,
    IddRacpResponse,
    IddStatus,
    ReferenceTimeEvent,
)
from drivers.ieee11073 import SFloat
from drivers.racp import RacpOpcode, RacpOperator, RacpResponseCode
from drivers.records import DeviceKind, DeviceRecord, RecordKind

Details = dict[str, str | int | float | bool | None]


class InsulinPumpDriver(DeviceDriver):
    kind = DeviceKind.INSULIN_PUMP

    def __init__(self, client: BleakClient, *, record_timeout_s: float = RECORD_TIMEOUT_S) -> None:
        super().__init__(client, record_timeout_s=record_timeout_s)
        self.features: IddFeatures | None = None
        self.reference: datetime | None = None  # device time of the last reference event
        self._inbox: Inbox | None = None

    async def _prepare(self) -> Inbox:
        if self._inbox is None:
            await self._identity()
            if self._has(uuids.IDD_FEATURES):
                self.features = IddFeatures.from_bytes(await self._read(uuids.IDD_FEATURES))
                if self.features.e2e_protection:
                    raise DeviceError("E2E-protected IDS is not supported by this driver")
            inbox = self._new_inbox()
            await self._subscribe(uuids.IDD_HISTORY_DATA, inbox.on("h"))
            await self._subscribe(uuids.IDD_RECORD_ACCESS_CONTROL_POINT, inbox.on("r"))
            self._inbox = inbox
        return self._inbox

    async def read_status(self) -> IddStatus:
        return IddStatus.from_bytes(await self._read(uuids.IDD_STATUS), e2e_expected=False)

    async def read_annunciation(self) -> IddAnnunciationStatus:
        return IddAnnunciationStatus.from_bytes(
            await self._read(uuids.IDD_ANNUNCIATION_STATUS), e2e_expected=False
        )

    async def sync(self, after: int | None) -> AsyncIterator[DeviceRecord]:
        """History events after sequence number ``after`` (all when None), in order."""
        await self._prepare()
        if after is None:
            # Public IDS clients (Tidepool, ehealth) send the filter type with All records.
            request = IddRacpRequest(
                RacpOpcode.REPORT_STORED_RECORDS,
                RacpOperator.ALL_RECORDS,
                IddFilterType.SEQUENCE_NUMBER,
            )
        else:
            # The reference time in force at the cursor dates the events after it.
            self.reference = None
            async for event, _raw in self._transfer(
                IddRacpRequest(
                    RacpOpcode.REPORT_STORED_RECORDS,
                    RacpOperator.LESS_THAN_OR_EQUAL_TO,
                    IddFilterType.SEQUENCE_NUMBER_REFERENCE_TIME_EVENTS,
                    (after,),
                )
            ):
                self._reference(event)
            request = IddRacpRequest(
                RacpOpcode.REPORT_STORED_RECORDS,
                RacpOperator.GREATER_THAN_OR_EQUAL_TO,
                IddFilterType.SEQUENCE_NUMBER,
                (after + 1,),
            )
        pending: tuple[IddHistoryData, bytes] | None = None
        async for event, raw in self._transfer(request):
            if pending is not None:
                part1, raw1 = pending
                pending = None
                if event.event_type == IddEventType.BOLUS_DELIVERED_PART_2:
                    yield self._bolus(part1, event, raw1 + raw)
                    continue
                yield self._bolus(part1, None, raw1)
            self._reference(event)
            if event.event_type == IddEventType.BOLUS_DELIVERED_PART_1:
                pending = (event, raw)  # part 2 follows with the next sequence number
            else:
                yield self._event(event, raw)
        if pending is not None:
            yield self._bolus(pending[0], None, pending[1])

    async def _transfer(
        self, request: IddRacpRequest
    ) -> AsyncIterator[tuple[IddHistoryData, bytes]]:
        inbox = await self._prepare()
        inbox.clear()
        await self._write(uuids.IDD_RECORD_ACCESS_CONTROL_POINT, bytes(request))
        while True:
            tag, data = await inbox.next(self.record_timeout_s)
            if tag == "r":
                response = IddRacpResponse.from_bytes(data)
                code = response.response_code
                if code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND):
                    return
                raise racp_failed(code, code.name if code else None)
            try:
                yield IddHistoryData.from_bytes(data), data
            except DecodeError:
                self.stats.decode_errors += 1
                raise

    def _reference(self, event: IddHistoryData) -> None:
        if isinstance(event.event_data, ReferenceTimeEvent):
            self.reference = event.event_data.date_time.to_datetime()

    def _when(self, event: IddHistoryData) -> datetime:
        if self.reference is None:
            raise DeviceError(f"history event {event.sequence_number} has no reference time")
        return self.reference + timedelta(seconds=event.relative_offset_s)

    def _make(
        self,
        event: IddHistoryData,
        kind: RecordKind,
        value: float | None,
        unit: str,
        cursor: int,
        details: Details,
        raw: bytes,
        special: str | None = None,
    ) -> DeviceRecord:
        assert self.identity is not None
        self.stats.records += 1
        details["event_type"] = event.event_name or f"0x{event.event_type:04x}"
        return DeviceRecord(
            device=self.identity,
            kind=kind,
            device_time=self._when(event),
            clock_offset_s=self._offset,
            value=value,
            unit=unit,
            cursor=cursor,
            sequence=event.sequence_number,
            special=special,
            details=details,
            raw=raw,
        )

    def _bolus(
        self, part1: IddHistoryData, part2: IddHistoryData | None, raw: bytes
    ) -> DeviceRecord:
        data = part1.event_data
        assert isinstance(data, BolusPart1Event)
        fast, extended = data.fast_amount_iu, data.extended_amount_iu
        total = None
        if fast.value is not None and extended.value is not None:
            total = round(fast.value + extended.value, 4)
        details: Details = {
            "bolus_id": data.bolus_id,
            "bolus_type": data.bolus_type.name.lower(),
            "fast_amount_iu": fast.value,
            "extended_amount_iu": extended.value,
            "duration_min": data.duration_min,
        }
        cursor = part1.sequence_number
        if part2 is not None and isinstance(part2.event_data, BolusDeliveredPart2Event):
            p2 = part2.event_data
            cursor = part2.sequence_number
            details["start_time_offset_s"] = p2.start_time_offset_s
            if p2.activation_type is not None:
                details["activation_type"] = p2.activation_type.name.lower()
            if p2.end_reason is not None:
                details["end_reason"] = p2.end_reason.name.lower()
        special = fast.special or extended.special
        return self._make(
            part1, RecordKind.INSULIN_BOLUS, total, "IU", cursor, details, raw, special
        )

    def _event(self, event: IddHistoryData, raw: bytes) -> DeviceRecord:
        data = event.event_data
        if isinstance(data, DeliveredBasalRateChangedEvent):
            details: Details = {"old_rate_iu_h": data.old_rate_iu_h.value, "context": data.context}
            new = data.new_rate_iu_h
            return self._make(
                event,
                RecordKind.INSULIN_BASAL,
                new.value,
                "IU/h",
                event.sequence_number,
                details,
                raw,
                new.special,
            )
        details = {}
        status: tuple[str, ...] = ()
        if isinstance(data, ReferenceTimeEvent):
            details["reason"] = data.recording_reason.name.lower()
            details["time_zone_min"] = data.time_zone.minutes
            details["dst_offset_min"] = data.dst_offset.minutes
        elif isinstance(data, AnnunciationChangedPart1Event):
            name = ANNUNCIATION_TYPE_NAMES.get(data.type, f"annunciation_0x{data.type:04x}")
            details["annunciation_id"] = data.instance_id
            details["annunciation"] = name
            details["annunciation_status"] = data.status.name.lower()
            # Pending or snoozed: the condition stands (the alert engine raises it);
            # confirmed by the user on the pump: it is over (the engine clears it).
            if data.status in (AnnunciationStatus.PENDING, AnnunciationStatus.SNOOZED):
                status = (name,)
        elif isinstance(data, bytes):
            details["event_data"] = data.hex()
        elif is_dataclass(data):
            details.update(_fields(data))
        record = self._make(
            event, RecordKind.INSULIN_EVENT, None, "", event.sequence_number, details, raw
        )
        return replace(record, status=status) if status else record


def _fields(data: object) -> Details:
    """An event's fields as JSON-friendly details: amounts in IU as numbers, enums by name."""
    out: Details = {}
    for f in fields(data):  # type: ignore[arg-type]
        value = getattr(data, f.name)
        if isinstance(value, SFloat):
            out[f.name] = value.value if value.value is not None else value.special
        elif isinstance(value, Enum):
            out[f.name] = value.name.lower()
        elif value is None or isinstance(value, (str, int, float, bool)):
            out[f.name] = value
        else:
            out[f.name] = str(value)
    return out
