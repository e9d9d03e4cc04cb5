"""A virtual blood glucose meter: GLS 1.0 with RACP (report / count / delete / abort,
operators all, <=, >=, within range, first, last; every response code).

Records carry a context (meal, carbohydrate) when the reading was taken around a meal.
Sequence numbers are uint16 and wrap 65535 -> 0 (start near the end with
``first_sequence``). Concentration is kg/L or mol/L per the ``unit`` setting.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from drivers import uuids
from drivers.gls import (
    CarbohydrateId,
    ConcentrationUnit,
    GlucoseContext,
    GlucoseFeature,
    GlucoseFeatureBits,
    GlucoseMeasurement,
    GlucoseType,
    Meal,
    SampleLocation,
)
from drivers.ieee11073 import SFloat
from drivers.racp import (
    GlsFilterType,
    RacpProfile,
    RacpRequest,
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
    RacpCall,
    RacpStore,
    VirtualPeripheral,
    short,
)
from drivers.virtual.traces import MEALS, GlucoseTrace

# Fingerstick times (hour of day) and what the meter records as the meal context.
TESTS = ((7.0, Meal.PREPRANDIAL), (11.75, Meal.PREPRANDIAL), (14.0, Meal.POSTPRANDIAL),
         (18.25, Meal.PREPRANDIAL), (22.5, Meal.BEDTIME))  # fmt: skip

Stored = tuple[GlucoseMeasurement, GlucoseContext | None]


class _Store(RacpStore[Stored]):
    def key(self, record: Stored) -> int:
        return record[0].sequence_number


class VirtualMeter(VirtualPeripheral):
    kind = DeviceKind.GLUCOSE_METER
    model = "Virtual Meter"
    service_uuid = uuids.GLUCOSE_SERVICE

    def __init__(
        self,
        *args: Any,
        seed: int = 2,
        unit: ConcentrationUnit = "kg/L",
        history: timedelta = timedelta(days=1),
        first_sequence: int = 0,
        tests_per_day: int = 4,
        **kwargs: Any,
    ) -> None:
        self.unit: ConcentrationUnit = unit
        self.trace = GlucoseTrace(seed, baseline=120.0)
        self.seed = seed
        self.store = _Store()
        self.next_sequence = first_sequence
        self.history_span = history
        self.tests = TESTS[:: max(1, len(TESTS) // max(1, tests_per_day))][:tests_per_day]
        super().__init__(*args, **kwargs)

    @property
    def records(self) -> list[Stored]:
        return self.store.records

    def services(self) -> list[Service]:
        read = "READABLE"
        feature = GlucoseFeature(GlucoseFeatureBits(0))
        self.measurement: Characteristic[bytes] = Characteristic(
            short(uuids.GLUCOSE_MEASUREMENT), NOTIFY, read, b""
        )
        self.context: Characteristic[bytes] = Characteristic(
            short(uuids.GLUCOSE_MEASUREMENT_CONTEXT), NOTIFY, read, b""
        )
        self.racp: Characteristic[bytes] = Characteristic(
            short(uuids.RECORD_ACCESS_CONTROL_POINT),
            WRITE | INDICATE,
            "WRITEABLE",
            CharacteristicValue[bytes](write=self.on_racp_write),
        )

        def read_feature(connection: Connection) -> bytes:
            self.protected(connection)
            return bytes(feature)

        return [
            Service(
                short(uuids.GLUCOSE_SERVICE),
                [
                    self.measurement,
                    self.context,
                    Characteristic(
                        short(uuids.GLUCOSE_FEATURE),
                        READ,
                        read,
                        CharacteristicValue[bytes](read=read_feature),
                    ),
                    self.racp,
                ],
            )
        ]

    # -- data ----------------------------------------------------------------------------
    def _concentration(self, mg_dl: float) -> SFloat:
        if self.unit == "kg/L":
            return SFloat.from_value(round(mg_dl) / MG_DL_PER_KG_L)
        mmol = round(mg_dl / MG_DL_PER_MMOL_L, 1)
        return SFloat.from_value(mmol / MMOL_L_PER_MOL_L)

    def _test_times(self, day: datetime) -> list[tuple[datetime, Meal]]:
        rnd = random.Random(f"{self.seed}|{day.date().isoformat()}")
        out = []
        for hour, meal in self.tests:
            at = day + timedelta(hours=hour + rnd.uniform(-0.4, 0.4))
            out.append((at.replace(microsecond=0), meal))
        return out

    def add_reading(self, utc: datetime, meal: Meal | None = None) -> Stored:
        """Take a fingerstick at simulated time ``utc`` (tests may call this directly)."""
        at = self.device_time(utc).replace(microsecond=0)
        conc = self._concentration(self.trace.value(utc))
        seq = self.next_sequence
        self.next_sequence = (seq + 1) % 0x10000  # uint16: wraps 65535 -> 0
        context = None
        if meal is not None:
            carbs = None
            if meal is Meal.PREPRANDIAL:
                grams = min(MEALS, key=lambda m: abs(m[0] - at.hour))[2]
                carbs = SFloat.from_value(grams / 1000)  # the XML unit is kilograms
            context = GlucoseContext(
                sequence_number=seq,
                carbohydrate_id=CarbohydrateId.BREAKFAST if carbs is not None else None,
                carbohydrate_kg=carbs,
                meal=meal,
            )
        m = GlucoseMeasurement(
            sequence_number=seq,
            base_time=DateTime.from_datetime(at),
            time_offset_min=0,
            concentration=conc,
            unit=self.unit,
            type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
            sample_location=SampleLocation.FINGER,
            context_follows=context is not None,
        )
        self.store.records.append((m, context))
        value = conc.to_float()
        self.produced.append(
            Produced(
                serial=self.serial,
                kind=RecordKind.BLOOD_GLUCOSE.value,
                device_time=at,
                value=value,
                unit=self.unit,
                mg_dl=to_mg_dl(value, self.unit),
                sequence=seq,
            )
        )
        return m, context

    def _schedule(self, since: datetime) -> list[tuple[datetime, Meal]]:
        day = since.replace(hour=0, minute=0, second=0, microsecond=0)
        out: list[tuple[datetime, Meal]] = []
        for d in range(3):
            out += [t for t in self._test_times(day + timedelta(days=d)) if t[0] > since]
        return out

    def history(self) -> None:
        now = self.clock.now()
        day = (now - self.history_span).replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= now:
            for at, meal in self._test_times(day):
                if now - self.history_span <= at <= now:
                    self.add_reading(at, meal)
            day += timedelta(days=1)
        self._last = now

    async def produce(self) -> None:
        while True:
            upcoming = self._schedule(self._last)
            at, meal = upcoming[0]
            await self.clock.sleep_until(at)
            self.add_reading(at, meal)
            self._last = at

    # -- RACP ----------------------------------------------------------------------------
    def racp_store(self) -> _Store:
        return self.store

    def racp_parse(self, value: bytes) -> RacpCall:
        request = RacpRequest.from_bytes(value, profile=RacpProfile.GLS)
        operand = tuple(int(v) for v in request.operand if isinstance(v, int))
        return RacpCall(
            request.opcode,
            request.operator,
            int(request.filter_type) if request.filter_type is not None else None,
            operand,
        )

    def racp_select(self, call: RacpCall) -> list[Any] | RacpResponseCode:
        if call.filter_type is not None and call.filter_type != GlsFilterType.SEQUENCE_NUMBER:
            return RacpResponseCode.OPERAND_NOT_SUPPORTED  # user facing time: not offered
        return self.store.select(call)

    async def racp_send(self, connection: Connection, records: Sequence[Stored]) -> None:
        for m, context in records:
            await self.device.notify_subscriber(connection, self.measurement, bytes(m))
            if context is not None:
                await self.device.notify_subscriber(connection, self.context, bytes(context))
