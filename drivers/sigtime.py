"""Bluetooth SIG time characteristics: Date Time, Time Zone, DST Offset, Current Time.

* Date Time (0x2A08; GLS Base Time, CGM Session Start Time, IDS Reference Time): year
  uint16 (1582..9999, 0 = unknown), month uint8 (1..12, 0 = unknown), day uint8 (1..31,
  0 = unknown), hours 0..23, minutes 0..59, seconds 0..59. 7 octets.
* Time Zone (0x2A0E): sint8, 15-minute steps from UTC, -48..+56, -128 = unknown.
* DST Offset (0x2A0D): uint8 0 standard, 2 half an hour, 4 one hour, 8 two hours,
  255 unknown; other values RFU.
* Current Time (0x2A2B, CTS): Exact Time 256 = Day Date Time (Date Time + Day of Week
  uint8, 1 = Monday .. 7 = Sunday, 0 = unknown) + Fractions256 uint8, then Adjust
  Reason (bit field). 10 octets.

The types are naive on purpose: devices report wall-clock time without a zone.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, IntFlag
from typing import Final, Self

from drivers import _wire
from drivers._wire import Reader, build, check_range
from drivers.errors import EncodeError

DATE_TIME_SIZE: Final = 7  # Date Time characteristic: 2 + 5 x 1 octets
CURRENT_TIME_SIZE: Final = (
    10  # Current Time: Date Time 7 + Day of Week 1 + Fractions256 1 + Adjust Reason 1
)
YEAR_MIN: Final = (
    1582  # Date Time XML: "Year as defined by the Gregorian calendar. Valid range 1582 to 9999"
)
YEAR_MAX: Final = 9999
TIME_ZONE_MIN: Final = -48  # Time Zone XML: -48..+56 (x 15 min)
TIME_ZONE_MAX: Final = 56
TIME_ZONE_UNKNOWN: Final = -128  # Time Zone XML: -128 = "Time zone offset is not known"
TIME_ZONE_STEP_MIN: Final = (
    15  # Time Zone XML: "offset from UTC in number of 15 minutes increments"
)


@dataclass(frozen=True, slots=True)
class DateTime:
    """A Date Time value; any of year/month/day may be 0 for unknown.

    When year, month and day are all known the date must exist, so :meth:`to_datetime`
    never fails on a decoded value.
    """

    year: int = 0
    month: int = 0
    day: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        check_range("year", self.year, 0, YEAR_MAX)
        if 0 < self.year < YEAR_MIN:
            raise EncodeError(f"year {self.year} before {YEAR_MIN} (0 means unknown)")
        check_range("month", self.month, 0, 12)
        check_range("day", self.day, 0, 31)
        check_range("hours", self.hours, 0, 23)
        check_range("minutes", self.minutes, 0, 59)
        check_range("seconds", self.seconds, 0, 59)
        if self.year and self.month and self.day:
            last = calendar.monthrange(self.year, self.month)[1]
            if self.day > last:
                raise EncodeError(f"{self.year:04d}-{self.month:02d} has no day {self.day}")

    @property
    def is_known(self) -> bool:
        """True when year, month and day are all known."""
        return bool(self.year and self.month and self.day)

    def to_datetime(self) -> datetime | None:
        """The naive wall-clock time, or None when year, month or day is unknown."""
        if not self.is_known:
            return None
        return datetime(self.year, self.month, self.day, self.hours, self.minutes, self.seconds)

    @classmethod
    def from_datetime(cls, dt: datetime) -> Self:
        """Truncates microseconds (Date Time has a resolution of one second)."""
        return cls(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)

    def isoformat(self) -> str | None:
        dt = self.to_datetime()
        return None if dt is None else dt.isoformat()

    @classmethod
    def read(cls, reader: Reader, what: str = "Date Time") -> Self:
        year = reader.u16(f"{what} year")
        month, day = reader.u8(f"{what} month"), reader.u8(f"{what} day")
        hours, minutes = reader.u8(f"{what} hours"), reader.u8(f"{what} minutes")
        seconds = reader.u8(f"{what} seconds")
        return build(reader, lambda: cls(year, month, day, hours, minutes, seconds))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        reader = Reader("Date Time", data)
        value = cls.read(reader)
        reader.finish()
        return value

    def __bytes__(self) -> bytes:
        return _wire.u16(self.year) + bytes(
            (self.month, self.day, self.hours, self.minutes, self.seconds)
        )


@dataclass(frozen=True, slots=True)
class TimeZone:
    """Time Zone: offset from UTC in 15-minute steps; -128 = unknown."""

    quarter_hours: int = TIME_ZONE_UNKNOWN

    def __post_init__(self) -> None:
        check_range("time zone", self.quarter_hours, TIME_ZONE_UNKNOWN, TIME_ZONE_MAX)
        if TIME_ZONE_UNKNOWN < self.quarter_hours < TIME_ZONE_MIN:
            raise EncodeError(
                f"time zone {self.quarter_hours} outside {TIME_ZONE_MIN}..{TIME_ZONE_MAX}"
            )

    @property
    def minutes(self) -> int | None:
        """Offset from UTC in minutes (8 -> 120), None when unknown."""
        if self.quarter_hours == TIME_ZONE_UNKNOWN:
            return None
        return self.quarter_hours * TIME_ZONE_STEP_MIN

    @classmethod
    def from_minutes(cls, minutes: int | None) -> Self:
        if minutes is None:
            return cls(TIME_ZONE_UNKNOWN)
        if minutes % TIME_ZONE_STEP_MIN:
            raise EncodeError(f"time zone {minutes} min is not a multiple of 15 minutes")
        return cls(minutes // TIME_ZONE_STEP_MIN)

    @classmethod
    def read(cls, reader: Reader) -> Self:
        value = reader.s8("Time Zone")
        return build(reader, lambda: cls(value))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        reader = Reader("Time Zone", data)
        value = cls.read(reader)
        reader.finish()
        return value

    def __bytes__(self) -> bytes:
        return _wire.s8(self.quarter_hours)


class DstOffset(IntEnum):
    """DST Offset characteristic (0x2A0D) values; others are RFU."""

    STANDARD_TIME = 0
    HALF_AN_HOUR_DAYLIGHT_TIME = 2
    DAYLIGHT_TIME = 4
    DOUBLE_DAYLIGHT_TIME = 8
    UNKNOWN = 255

    @property
    def minutes(self) -> int | None:
        """Daylight-saving offset in minutes, None when unknown."""
        return None if self is DstOffset.UNKNOWN else int(self) * 15

    @classmethod
    def from_minutes(cls, minutes: int | None) -> DstOffset:
        if minutes is None:
            return cls.UNKNOWN
        if minutes % 15 or minutes // 15 not in (0, 2, 4, 8):
            raise EncodeError(f"DST offset {minutes} min is not 0, 30, 60 or 120")
        return cls(minutes // 15)


class DayOfWeek(IntEnum):
    """Day of Week characteristic (0x2A09)."""

    UNKNOWN = 0
    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7


class AdjustReason(IntFlag):
    """Current Time Adjust Reason (CTS 1.1 §3.1.2.2); bits 4-7 RFU."""

    MANUAL_TIME_UPDATE = 0x01
    EXTERNAL_REFERENCE_TIME_UPDATE = 0x02
    CHANGE_OF_TIME_ZONE = 0x04
    CHANGE_OF_DST = 0x08


NO_ADJUST_REASON: Final = AdjustReason(0)


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """Current Time (0x2A2B): date time, day of week, 1/256 s fractions, adjust reason."""

    date_time: DateTime
    day_of_week: DayOfWeek = DayOfWeek.UNKNOWN
    fractions256: int = 0
    adjust_reason: AdjustReason = NO_ADJUST_REASON

    CHARACTERISTIC = "Current Time"

    def __post_init__(self) -> None:
        if not isinstance(self.date_time, DateTime):
            raise EncodeError("date_time must be a DateTime")
        _wire.check_enum("day_of_week", self.day_of_week, DayOfWeek)
        check_range("fractions256", self.fractions256, 0, 255)
        _wire.check_flags("adjust_reason", self.adjust_reason, AdjustReason, 8)

    def to_datetime(self) -> datetime | None:
        """Naive wall-clock time including the 1/256 s fraction; None when unknown."""
        dt = self.date_time.to_datetime()
        if dt is None:
            return None
        return dt + timedelta(microseconds=round(self.fractions256 * 1_000_000 / 256))

    @classmethod
    def from_datetime(
        cls, dt: datetime, adjust_reason: AdjustReason = NO_ADJUST_REASON
    ) -> CurrentTime:
        return cls(
            DateTime.from_datetime(dt),
            DayOfWeek(dt.isoweekday()),
            dt.microsecond * 256 // 1_000_000,
            adjust_reason,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CurrentTime:
        reader = Reader(cls.CHARACTERISTIC, data)
        date_time = DateTime.read(reader)
        dow = reader.enum(DayOfWeek, reader.u8("Day of Week"), "Day of Week")
        fractions = reader.u8("Fractions256")
        reason = AdjustReason(reader.u8("Adjust Reason"))
        reader.finish()
        return build(reader, lambda: cls(date_time, dow, fractions, reason))

    def __bytes__(self) -> bytes:
        return (
            bytes(self.date_time)
            + bytes((self.day_of_week, self.fractions256))
            + _wire.u8(int(self.adjust_reason))
        )
