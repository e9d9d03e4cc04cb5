"""Turn a driver's :class:`~drivers.records.DeviceRecord` into a wire-contract reading."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import cast

from drivers.records import DeviceRecord
from gateway.contract.v1 import DeviceInfo, Reading, SpecialValue, UnitName, reading_key


def to_reading(record: DeviceRecord) -> Reading:
    dev = record.device
    key = reading_key(
        dev.serial,
        record.kind.value,
        sequence=record.sequence,
        session_start=record.session_start,
        time_offset_min=record.time_offset_min,
        device_time=record.device_time,
    )
    corrected = (record.device_time + timedelta(seconds=record.clock_offset_s)).replace(tzinfo=UTC)
    return Reading(
        key=key,
        device=DeviceInfo(
            serial=dev.serial,
            kind=dev.kind.value,
            model=dev.model,
            manufacturer=dev.manufacturer,
            firmware=dev.firmware,
        ),
        kind=record.kind.value,
        sequence=record.sequence,
        session_start=record.session_start,
        time_offset_min=record.time_offset_min,
        device_time=record.device_time,
        clock_offset_s=record.clock_offset_s,
        time=corrected,
        value=record.value,
        # the drivers name special values and units as the contract does (checked on
        # construction by the model)
        special=cast(SpecialValue | None, record.special),
        unit=cast(UnitName | None, record.unit or None),  # pump events: no unit
        status=list(record.status),
        details=dict(record.details),
        raw=record.raw.hex(),
    )
