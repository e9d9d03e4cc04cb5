"""Nightscout entry validation and mapping (pure): what becomes which reading, and why an
entry is refused. The end-to-end behaviour is in test_nightscout.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from gateway.contract.v1 import ReadingsBatch, topic_readings
from gateway.ingest.pipeline import process
from gateway.web.nightscout_entries import Entry, EntryError, parse_entry, to_reading

AT = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
AT_MS = 1772366400123


def test_epoch_of_the_fixture() -> None:
    assert (AT - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) == AT_MS


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "sgv", "sgv": 120, "date": AT_MS}, ("sgv", AT_MS, 120.0)),
        ({"sgv": 120.0, "date": AT_MS + 0.999}, ("sgv", AT_MS, 120.0)),  # Loop: floor
        ({"type": "mbg", "mbg": 99.5, "date": AT_MS}, ("mbg", AT_MS, 99.5)),
        ({"mbg": 99.5, "dateString": "2026-03-01T13:00:00.123+0100"}, ("mbg", AT_MS, 99.5)),
        ({"sgv": 120, "dateString": "2026-03-01T12:00:00.123Z"}, ("sgv", AT_MS, 120.0)),
        ({"type": "cal", "date": AT_MS, "slope": 1000}, ("ignored", None, None)),
        ({"type": "sgv", "sgv": 120, "date": AT_MS, "isValid": False}, ("ignored", None, None)),
        ({"type": "sgv", "sgv": 120, "date": str(AT_MS), "units": "mg/dl"}, ("sgv", AT_MS, 120)),
    ],
)
def test_accepted_entries(raw: dict[str, object], expected: tuple[object, ...]) -> None:
    e = parse_entry(raw)
    assert (e.kind, e.time_ms, e.value) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([1, 2], "must be a JSON object"),
        ({"date": AT_MS}, "no type and no sgv or mbg"),
        ({"sgv": 120}, "neither date"),
        ({"type": "sgv", "date": AT_MS}, "sgv entry without its sgv value"),
        ({"sgv": "high", "date": AT_MS}, "sgv:"),
        ({"sgv": float("nan"), "date": AT_MS}, "sgv:"),
        ({"sgv": True, "date": AT_MS}, "not true/false"),
        ({"sgv": 120, "date": AT_MS, "trend": "x" * 20}, "trend"),
        ({"sgv": -1, "date": AT_MS}, "outside 0..1000"),
        ({"sgv": 1200, "date": AT_MS}, "outside 0..1000"),
        ({"sgv": 6.5, "date": AT_MS, "units": "mmol"}, "mg/dL only"),
        ({"sgv": 120, "date": AT_MS // 1000}, "seconds instead of milliseconds"),
        ({"sgv": 120, "date": AT_MS * 1000}, "not a plausible time"),
        ({"sgv": 120, "dateString": "yesterday"}, "not ISO 8601"),
        ({"sgv": 120, "dateString": "2026-03-01T12:00:00"}, "no UTC offset"),
    ],
)
def test_refused_entries_say_why(raw: object, reason: str) -> None:
    with pytest.raises(EntryError) as info:
        parse_entry(raw)
    assert reason in str(info.value)


def test_the_key_is_serial_kind_and_millisecond() -> None:
    a = to_reading(parse_entry({"sgv": 120, "date": AT_MS}), serial="NS-1", uploader="u")
    b = to_reading(
        parse_entry({"sgv": 121.0, "date": AT_MS + 0.5, "device": "other"}),
        serial="NS-1",
        uploader="u",
    )
    meter = to_reading(parse_entry({"mbg": 120, "date": AT_MS}), serial="NS-1", uploader="u")
    other = to_reading(parse_entry({"sgv": 120, "date": AT_MS}), serial="NS-2", uploader="u")
    assert a.key == b.key  # a re-upload (even with a fraction or a new label) is the same
    assert len({a.key, meter.key, other.key}) == 3
    assert (a.kind, a.unit, a.device.kind, meter.kind, meter.device.kind) == (
        "cgm",
        "mg/dL",
        "cgm",
        "bg",
        "glucose_meter",
    )
    assert a.time == AT and a.device_time == AT.replace(tzinfo=None) and a.clock_offset_s == 0


def test_dexcom_error_codes_are_not_glucose() -> None:
    """sgv below 39 is an error code: sent as a special value, the ingester quarantines it
    (no 5 mg/dL "reading", no urgent-low alert); 39 itself is a clamped LOW and is glucose."""
    code = to_reading(parse_entry({"sgv": 5, "date": AT_MS}), serial="NS-1", uploader="u")
    low = to_reading(parse_entry({"sgv": 39, "date": AT_MS + 1}), serial="NS-1", uploader="u")
    assert (code.value, code.special, code.details["ns_error_code"]) == (None, "NRes", 5)
    assert (low.value, low.special) == (39.0, None)
    batch = ReadingsBatch(
        hub_id="ns-1", sent_at=datetime.now(UTC), batch_id=uuid4(), readings=[code, low]
    )
    out = process(
        topic_readings("ns-1"),
        batch.model_dump_json(by_alias=True).encode(),
        link=lambda serial, at: "P-1",
        hub_of=lambda serial: "ns-1",
    )
    assert [q.reason for q in out.quarantined] == ["special_value"]
    assert [r.mg_dl for r in out.stored] == [39.0]


def test_details_keep_what_the_app_said() -> None:
    e = parse_entry(
        {
            "sgv": 120,
            "date": AT_MS,
            "device": "xDrip-DexcomG5",
            "direction": "Flat",
            "noise": 1,
            "filtered": 121000.0,
            "unfiltered": 119500.5,
            "rssi": 100,
            "trend": "4",
            "_id": "5f1e2d3c4b5a697887766554",
        }
    )
    assert isinstance(e, Entry)
    r = to_reading(e, serial="NS-1", uploader="phone")
    assert r.details == {
        "source": "nightscout",
        "uploader": "phone",
        "noise": 1,
        "filtered": 121000,
        "unfiltered": 119500.5,
        "rssi": 100,
        "direction": "Flat",
        "trend": "4",
        "ns_id": "5f1e2d3c4b5a697887766554",
        "ns_device": "xDrip-DexcomG5",
    }
    assert r.device.model == "xDrip-DexcomG5"
