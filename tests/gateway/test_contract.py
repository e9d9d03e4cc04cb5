"""Wire contract v1: docs match the models, keys are stable, the CLI prints the schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.contract.v1 import (
    SCHEMA_ID,
    DeviceInfo,
    HubStatus,
    Reading,
    ReadingsBatch,
    reading_key,
)
from tests.factories import bg_reading

DOC = Path(__file__).parents[2] / "docs" / "contract.md"


def test_documented_example_is_valid() -> None:
    example = re.search(r"## Full example\s+```json\n(.*?)```", DOC.read_text(), re.S)
    assert example is not None
    batch = ReadingsBatch.model_validate_json(example.group(1))
    assert batch.readings[0].key == reading_key(
        "CGM-0001",
        "cgm",
        sequence=None,
        session_start=datetime(2026, 11, 27, 21, 4),
        time_offset_min=725,
        device_time=datetime(2026, 11, 28, 9, 9),
    )


@pytest.mark.parametrize("model", [ReadingsBatch, Reading, DeviceInfo, HubStatus])
def test_every_field_is_documented(model: type) -> None:
    text = DOC.read_text()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        documented = field.alias or name
        assert f"`{documented}" in text or f".{documented}`" in text, documented


def test_key_ignores_hub_clock_and_is_stable() -> None:
    args = dict(sequence=7, session_start=None, time_offset_min=None)
    k1 = reading_key("BG1", "bg", device_time=datetime(2026, 1, 1, 8), **args)  # type: ignore[arg-type]
    assert k1 == reading_key("BG1", "bg", device_time=datetime(2026, 1, 1, 8), **args)  # type: ignore[arg-type]
    assert k1 != reading_key("BG1", "bg", device_time=datetime(2026, 1, 1, 9), **args)  # type: ignore[arg-type]
    # Pinned: changing the derivation would double every stored reading.
    assert k1 == "ea46cf9ab0812acf568b0f2d842aefaf"


def test_naive_device_time_and_utc_time_are_enforced() -> None:
    example = json.loads(
        re.search(r"## Full example\s+```json\n(.*?)```", DOC.read_text(), re.S).group(1)  # type: ignore[union-attr]
    )
    reading = example["readings"][0]
    with pytest.raises(ValidationError, match="zone"):
        Reading.model_validate({**reading, "time": "2026-11-28T08:09:02"})
    with pytest.raises(ValidationError, match="naive"):
        Reading.model_validate({**reading, "device_time": "2026-11-28T09:09:00+01:00"})


def test_schema_command_prints_json_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "schema"], capture_output=True, text=True, check=True
    )
    schemas = json.loads(out.stdout)
    assert SCHEMA_ID in schemas
    assert "readings" in schemas[SCHEMA_ID]["properties"]


def test_units_must_fit_the_record_kind() -> None:
    bg = bg_reading("BG-1", 1, 0.0011)
    with pytest.raises(ValidationError, match="does not fit kind 'bg'"):
        Reading.model_validate({**bg, "unit": "IU"})
    with pytest.raises(ValidationError, match="does not fit kind 'bg'"):
        Reading.model_validate({**bg, "unit": None})
    with pytest.raises(ValidationError, match="exclusive"):
        Reading.model_validate({**bg, "special": "NaN"})
    bolus = {**bg, "kind": "insulin_bolus", "device": {"serial": "P-1", "kind": "insulin_pump"}}
    assert Reading.model_validate({**bolus, "value": 2.5, "unit": "IU"}).unit == "IU"
    with pytest.raises(ValidationError, match="does not fit kind 'insulin_bolus'"):
        Reading.model_validate({**bolus, "value": 2.5, "unit": "IU/h"})


def test_pump_events_carry_no_value_or_unit() -> None:
    event = {
        **bg_reading("PUMP-1", 7, 0.0),
        "kind": "insulin_event",
        "device": {"serial": "PUMP-1", "kind": "insulin_pump"},
        "details": {"annunciation": "occlusion_detected", "annunciation_status": "pending"},
    }
    ok = Reading.model_validate({**event, "value": None, "unit": None})
    assert (ok.value, ok.unit, ok.details["annunciation"]) == (None, None, "occlusion_detected")
    with pytest.raises(ValidationError, match="carries no value"):
        Reading.model_validate({**event, "value": 1.0, "unit": None})
    with pytest.raises(ValidationError, match="does not fit kind 'insulin_event'"):
        Reading.model_validate({**event, "value": None, "unit": "IU"})
