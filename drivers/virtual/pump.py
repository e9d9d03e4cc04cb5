"""A virtual insulin pump: IDS with IDD Status, Annunciation Status, Features, Status
Changed, and history (reference time events every 6 h, boluses at meals, delivered basal
rate changes at profile blocks, a daily reservoir event) through the IDD RACP.

History event times are a reference time event's date time plus the event's relative
offset (uint16 seconds), so a reference time event is recorded at least every 6 hours.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from drivers import uuids
from drivers.ids import (
    AnnunciationChangedPart1Event,
    AnnunciationStatus,
    BolusActivationType,
    BolusDeliveredPart2Event,
    BolusEndReason,
    BolusPart1Event,
    BolusType,
    DeliveredBasalRateChangedEvent,
    IddAnnunciationStatus,
    IddEventType,
    IddFeatureBits,
    IddFeatures,
    IddFilterType,
    IddHistoryData,
    IddRacpRequest,
    IddRacpResponse,
    IddStatus,
    IddStatusFlags,
    OperationalState,
    ReferenceTimeEvent,
    ReferenceTimeReason,
    ReservoirRemainingEvent,
    TherapyControlState,
)
from drivers.ieee11073 import SFloat
from drivers.racp import RacpResponseCode
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
from drivers.virtual.traces import BASAL_PROFILE, MEALS

REFERENCE_EVERY = timedelta(hours=6)
BATTERY_LOW_ANNUNCIATION = 0x00C3


class _Store(RacpStore[IddHistoryData]):
    def key(self, record: IddHistoryData) -> int:
        return record.sequence_number


class VirtualPump(VirtualPeripheral):
    racp_response = IddRacpResponse
    kind = DeviceKind.INSULIN_PUMP
    model = "Virtual Pump"
    service_uuid = uuids.INSULIN_DELIVERY_SERVICE

    def __init__(
        self,
        *args: Any,
        seed: int = 3,
        history: timedelta = timedelta(days=1),
        reservoir_iu: float = 300.0,
        **kwargs: Any,
    ) -> None:
        self.seed = seed
        self.store = _Store()
        self.history_span = history
        self.reservoir_iu = reservoir_iu
        self.next_sequence = 0
        self.bolus_id = 0
        self.reference: datetime | None = None  # device time of the last reference event
        self.rate = BASAL_PROFILE[-1][1]
        self.annunciation: IddAnnunciationStatus | None = None  # set by annunciate()
        self.annunciation_ids = 0
        super().__init__(*args, **kwargs)

    @property
    def records(self) -> list[IddHistoryData]:
        return self.store.records

    def services(self) -> list[Service]:
        def readable(uuid: str, read: Any, props: Any = READ) -> Characteristic[bytes]:
            def guarded(connection: Connection) -> bytes:
                self.protected(connection)
                return bytes(read())

            return Characteristic(
                short(uuid), props, "READABLE", CharacteristicValue[bytes](read=guarded)
            )

        features = IddFeatures(SFloat.from_value(100), IddFeatureBits.BASAL_RATE)
        self.racp: Characteristic[bytes] = Characteristic(
            short(uuids.IDD_RECORD_ACCESS_CONTROL_POINT),
            WRITE | INDICATE,
            "WRITEABLE",
            CharacteristicValue[bytes](write=self.on_racp_write),
        )
        self.history_data: Characteristic[bytes] = Characteristic(
            short(uuids.IDD_HISTORY_DATA), NOTIFY, "READABLE", b""
        )
        return [
            Service(
                short(uuids.INSULIN_DELIVERY_SERVICE),
                [
                    readable(uuids.IDD_STATUS_CHANGED, lambda: b"\x00\x00", READ | INDICATE),
                    readable(uuids.IDD_STATUS, self._status, READ | INDICATE),
                    readable(uuids.IDD_ANNUNCIATION_STATUS, self._annunciation, READ | INDICATE),
                    readable(uuids.IDD_FEATURES, lambda: features),
                    self.racp,
                    self.history_data,
                ],
            )
        ]

    def _status(self) -> IddStatus:
        return IddStatus(
            TherapyControlState.RUN,
            OperationalState.READY,
            SFloat.from_value(round(self.reservoir_iu, 1)),
            IddStatusFlags.RESERVOIR_ATTACHED,
        )

    def _annunciation(self) -> IddAnnunciationStatus:
        if self.annunciation is not None:
            return self.annunciation
        if self.battery_pct >= 20:
            return IddAnnunciationStatus()
        return IddAnnunciationStatus(1, BATTERY_LOW_ANNUNCIATION, AnnunciationStatus.PENDING)

    # -- data ----------------------------------------------------------------------------
    def _event(self, at: datetime, event_type: IddEventType, data: Any) -> IddHistoryData:
        if self.reference is None or at - self.reference >= REFERENCE_EVERY or at < self.reference:
            reason = (
                ReferenceTimeReason.SET_DATE_TIME
                if self.reference is None or at < self.reference
                else ReferenceTimeReason.PERIODIC_RECORDING
            )
            self.reference = at.replace(microsecond=0)
            self._append(
                IddEventType.REFERENCE_TIME,
                0,
                ReferenceTimeEvent(
                    reason,
                    DateTime.from_datetime(self.reference),
                    TimeZone.from_minutes(int(self.utc_offset.total_seconds() // 60)),
                    DstOffset.from_minutes(int(self.dst.total_seconds() // 60)),
                ),
            )
        offset = int((at - self.reference).total_seconds())
        return self._append(event_type, offset, data)

    def _append(self, event_type: IddEventType, offset: int, data: Any) -> IddHistoryData:
        record = IddHistoryData(event_type, self.next_sequence, offset, data)
        self.next_sequence += 1
        self.store.records.append(record)
        return record

    def _truth(self, kind: RecordKind, at: datetime, value: float, unit: str, seq: int) -> None:
        self.produced.append(
            Produced(self.serial, kind.value, at.replace(microsecond=0), value, unit, None, seq)
        )

    def bolus(self, utc: datetime, amount_iu: float) -> None:
        """Deliver a bolus at simulated time ``utc`` (tests may call this directly)."""
        at = self.device_time(utc).replace(microsecond=0)
        self.bolus_id = (self.bolus_id + 1) % 0x10000
        amount = SFloat.from_value(round(amount_iu, 2))
        part1 = self._event(
            at,
            IddEventType.BOLUS_DELIVERED_PART_1,
            BolusPart1Event(self.bolus_id, BolusType.FAST, amount, SFloat.from_value(0), 0),
        )
        self._event(
            at,
            IddEventType.BOLUS_DELIVERED_PART_2,
            BolusDeliveredPart2Event(
                0, BolusActivationType.RECOMMENDED_BOLUS, BolusEndReason.PROGRAMMED_AMOUNT_REACHED
            ),
        )
        self.reservoir_iu = max(0.0, self.reservoir_iu - amount.to_float())
        self._truth(RecordKind.INSULIN_BOLUS, at, amount.to_float(), "IU", part1.sequence_number)

    def basal_change(self, utc: datetime, rate_iu_h: float) -> None:
        at = self.device_time(utc).replace(microsecond=0)
        new = SFloat.from_value(rate_iu_h)
        record = self._event(
            at,
            IddEventType.DELIVERED_BASAL_RATE_CHANGED,
            DeliveredBasalRateChangedEvent(SFloat.from_value(self.rate), new, 0x33),
        )
        self.rate = rate_iu_h
        self._truth(RecordKind.INSULIN_BASAL, at, rate_iu_h, "IU/h", record.sequence_number)

    def reservoir_event(self, utc: datetime) -> None:
        at = self.device_time(utc).replace(microsecond=0)
        self._event(
            at,
            IddEventType.RESERVOIR_REMAINING_AMOUNT_CHANGED,
            ReservoirRemainingEvent(SFloat.from_value(round(self.reservoir_iu, 1))),
        )

    def annunciate(
        self, utc: datetime, type_code: int, status: AnnunciationStatus = AnnunciationStatus.PENDING
    ) -> int:
        """Fault switch: the pump raises (or, with CONFIRMED, the user confirms) an
        annunciation such as occlusion detected (0x003C) or reservoir low (0x0066); it is
        recorded in the history and shown by IDD Annunciation Status. Returns its id."""
        at = self.device_time(utc).replace(microsecond=0)
        current = self.annunciation
        if (
            status == AnnunciationStatus.CONFIRMED
            and current is not None
            and current.instance_id is not None
            and current.type == type_code
        ):
            instance = current.instance_id
            self.annunciation = None
        else:
            self.annunciation_ids = instance = (self.annunciation_ids + 1) % 0x10000
            self.annunciation = IddAnnunciationStatus(instance, type_code, status)
        self._event(
            at,
            IddEventType.ANNUNCIATION_STATUS_CHANGED_PART_1,
            AnnunciationChangedPart1Event(instance, type_code, status),
        )
        return instance

    def _schedule(self, day: datetime) -> list[tuple[datetime, str, float]]:
        rnd = random.Random(f"{self.seed}|{day.date().isoformat()}")
        out: list[tuple[datetime, str, float]] = []
        for hour, _rise, carbs in MEALS:
            at = day + timedelta(hours=hour + rnd.uniform(-0.5, 0.3))
            out.append((at, "bolus", round(carbs / rnd.uniform(8, 12) * 2) / 2))
        for hour, rate in BASAL_PROFILE:
            out.append((day + timedelta(hours=hour), "basal", rate))
        out.append((day + timedelta(hours=23, minutes=55), "reservoir", 0.0))
        return sorted(out)

    def _do(self, at: datetime, what: str, value: float) -> None:
        if what == "bolus":
            self.bolus(at, value)
        elif what == "basal":
            self.basal_change(at, value)
        else:
            self.reservoir_event(at)

    def history(self) -> None:
        now = self.clock.now()
        day = (now - self.history_span).replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= now:
            for at, what, value in self._schedule(day):
                if now - self.history_span <= at <= now:
                    self._do(at, what, value)
            day += timedelta(days=1)
        self._last = now

    async def produce(self) -> None:
        while True:
            day = self._last.replace(hour=0, minute=0, second=0, microsecond=0)
            upcoming = [
                e
                for d in (day, day + timedelta(days=1))
                for e in self._schedule(d)
                if e[0] > self._last
            ]
            at, what, value = upcoming[0]
            await self.clock.sleep_until(at)
            self._do(at, what, value)
            self._last = at

    # -- IDD RACP ------------------------------------------------------------------------
    def racp_store(self) -> _Store:
        return self.store

    def racp_parse(self, value: bytes) -> RacpCall:
        r = IddRacpRequest.from_bytes(value)
        return RacpCall(
            r.opcode, r.operator, int(r.filter_type) if r.filter_type else None, r.operand
        )

    def racp_select(self, call: RacpCall) -> list[Any] | RacpResponseCode:
        selected = self.store.select(call)
        if isinstance(selected, RacpResponseCode):
            return selected
        ref = int(IddEventType.REFERENCE_TIME)
        if call.filter_type == IddFilterType.SEQUENCE_NUMBER_REFERENCE_TIME_EVENTS:
            return [r for r in selected if r.event_type == ref]
        if call.filter_type == IddFilterType.SEQUENCE_NUMBER_NON_REFERENCE_TIME_EVENTS:
            return [r for r in selected if r.event_type != ref]
        return selected

    async def racp_send(self, connection: Connection, records: Sequence[IddHistoryData]) -> None:
        for record in records:
            await self.device.notify_subscriber(connection, self.history_data, bytes(record))
