"""The ``diatabase decode`` codec table: names, JSON shapes, errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.codec_registry import CODECS
from drivers.crc import append_crc
from drivers.errors import CRCError, DecodeError
from tests.drivers.codec_strategies import FUZZ, only_decode_errors

NAMES = [
    "sfloat", "float", "glucose-measurement", "glucose-context", "glucose-feature", "racp",
    "cgm-measurement", "cgm-feature", "cgm-status", "cgm-session-start", "cgm-session-run",
    "cgm-socp", "idd-status-changed", "idd-status", "idd-annunciation", "idd-features",
    "idd-history", "idd-racp",
]  # fmt: skip


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_names() -> None:
    assert sorted(CODECS) == sorted(NAMES)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("sfloat", "70b0", {"value": 0.00112}),
        ("sfloat", "0008", {"special": "NRes"}),
        ("float", "87d612fe", {"value": 12345.67}),
        (
            "glucose-measurement",
            "0b 0100 e4070c1f173b3b f6ff 05d0 11 2000",
            {
                "sequence_number": 1,
                "base_time": "2020-12-31T23:59:59",
                "time_offset_min": -10,
                "time": "2020-12-31T23:49:59",
                "concentration": 0.005,
                "unit": "kg/L",
                "mg_dl": 500.0,
                "mmol_l": 27.753739955227665,  # 500 / 18.01559 in exact decimal
                "type": "capillary_whole_blood",
                "sample_location": "finger",
                "sensor_status": ["result_too_high"],
                "context_follows": False,
            },
        ),
        (
            "glucose-measurement",
            "00 0200 00000000000000",
            {
                "sequence_number": 2,
                "base_time": None,
                "time_offset_min": None,
                "time": None,
                "concentration": None,
                "unit": None,
                "mg_dl": None,
                "mmol_l": None,
                "type": None,
                "sample_location": None,
                "sensor_status": [],
                "context_follows": False,
            },
        ),
        (
            "glucose-context",
            "02 0300 01",
            {
                "sequence_number": 3,
                "extended_flags": None,
                "carbohydrate_id": None,
                "carbohydrate_kg": None,
                "meal": "preprandial",
                "tester": None,
                "health": None,
                "exercise_duration_s": None,
                "exercise_intensity_pct": None,
                "medication_id": None,
                "medication": None,
                "medication_unit": None,
                "hba1c_pct": None,
            },
        ),
        (
            "racp",
            "0104 01 0100 0a00",
            {
                "opcode": "report_stored_records",
                "operator": "within_range_of",
                "filter_type": "sequence_number",
                "operand": [1, 10],
            },
        ),
        (
            "racp",
            "0500 0700",
            {
                "opcode": "number_of_stored_records_response",
                "operator": "null",
                "request_opcode": None,
                "response_code": None,
                "number_of_records": 7,
            },
        ),
        (
            "cgm-measurement",
            "07 20 7800 0500 01 06 00 7d00 0a00",
            {
                "records": [
                    {
                        "size": 7,
                        "glucose_mg_dl": 120.0,
                        "time_offset_min": 5,
                        "status": [],
                        "cal_temp": [],
                        "warning": ["result_lower_than_patient_low_level"],
                        "trend_mg_dl_min": None,
                        "quality_pct": None,
                        "crc": "absent",
                    },
                    {
                        "size": 6,
                        "glucose_mg_dl": 125.0,
                        "time_offset_min": 10,
                        "status": [],
                        "cal_temp": [],
                        "warning": [],
                        "trend_mg_dl_min": None,
                        "quality_pct": None,
                        "crc": "absent",
                    },
                ]
            },
        ),
        (
            "cgm-status",
            "0a00 01 00 80",
            {
                "time_offset_min": 10,
                "status": ["session_stopped"],
                "cal_temp": [],
                "warning": ["result_higher_than_device_can_process"],
            },
        ),
        (
            "cgm-session-start",
            "e4070c1f173b3b 08 00",
            {"start_time": "2020-12-31T23:59:59", "time_zone_min": 120, "dst_offset_min": 0},
        ),
        ("cgm-session-run", "a800", {"run_time_hours": 168}),
    ],
)
def test_json(name: str, data: str, expected: dict[str, object]) -> None:
    result = CODECS[name](h(data))
    assert result == expected
    json.dumps(result)  # JSON-ready


def test_cgm_measurement_crc_inferred_and_checked() -> None:
    data = append_crc(h("08 00 7800 0500"))
    assert CODECS["cgm-measurement"](data)["records"][0]["crc"] == "ok"
    with pytest.raises(CRCError):
        CODECS["cgm-measurement"](data[:-1] + b"\x00")


def test_every_codec_is_json_ready_on_a_sample() -> None:
    samples = {
        "glucose-feature": "0304",
        "cgm-feature": "01 80 00 19 ffff",
        "cgm-socp": "1c 1a 01",
        "idd-status-changed": "8100",
        "idd-status": "55 96 f401 01",
        "idd-annunciation": "07 0100 c300 33 0a00 0b00",
        "idd-features": "ffff 00 6400 020000",
        "idd-history": "0f00 00000000 0000 33 e4070c1f173b3b 04 04",
        "idd-racp": "33 55 0f 07000000",
    }
    for name, data in samples.items():
        json.dumps(CODECS[name](h(data)))
    assert CODECS["idd-history"](h("abcd 01000000 0200 beef"))["event_data"] == {"raw": "beef"}
    assert CODECS["idd-racp"](h("0f 0f 33 06")) == {
        "opcode": "response_code",
        "request_opcode": "report_stored_records",
        "response_code": "no_records_found",
        "number_of_records": None,
    }


@FUZZ
@given(st.sampled_from(NAMES), st.binary(max_size=24))
def test_fuzz_registry(name: str, data: bytes) -> None:
    only_decode_errors(CODECS[name], data)


def test_decode_error_type() -> None:
    with pytest.raises(DecodeError):
        CODECS["glucose-measurement"](b"")
