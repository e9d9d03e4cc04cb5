"""The ingester's fast path (gateway/contract/v1_dicts.py, TypedDicts) against the v1
models it mirrors: the same JSON Schema, never looser, and the same pipeline outcome for
any payload, good or bad."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.contract import v1_dicts
from gateway.contract.v1 import ReadingsBatch, kind_problem, topic_readings
from gateway.ingest import pipeline
from gateway.ingest.pipeline import Outcome, process
from tests.factories import batch, cgm_reading

TOPIC = topic_readings("hub-1")


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """The schema with $refs resolved and documentation keys dropped."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
        return {
            k: _inline(v, defs)
            for k, v in schema.items()
            if k not in {"title", "description", "default", "$defs"}
        }
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def test_same_json_schema_as_the_models() -> None:
    model = ReadingsBatch.model_json_schema(by_alias=True)
    mirror = v1_dicts.BATCH.json_schema()
    assert _inline(mirror, mirror.get("$defs", {})) == _inline(model, model.get("$defs", {}))


# Values each field may take, good and bad: type confusion, bounds, zones, formats.
FIELD_VALUES: dict[str, list[Any]] = {
    "key": ["0" * 32, "ABC", "0" * 31, 7],
    "kind": ["cgm", "bg", "insulin_bolus", "insulin_basal", "insulin_event", "other"],
    "sequence": [None, 0, 3, -1, "3", 2.0, 2.5, True],
    "session_start": [None, "2026-11-01T06:00:00", "2026-11-01T06:00:00+00:00", "x"],
    "time_offset_min": [None, 0, -5, 1.5, "5"],
    "device_time": ["2026-11-01T08:00:00", "2026-11-01T08:00:00Z", "2026-13-01T08:00:00", 0],
    "clock_offset_s": [0, 1.5, -3600.0, "1", None, 1e308],
    "time": [
        "2026-11-01T08:00:00+00:00",
        "2026-11-01T09:00:00+01:00",
        "2026-11-01T08:00:00Z",
        "2026-11-01T08:00:00",
        "2030-01-01T00:00:00Z",
        "garbage",
        1761984000,
    ],
    "value": [100.0, 0, 5.6, 0.0056, 1e308, None, "100", True, 15, 700.5],
    "special": [None, "NaN", "NRes", "bad"],
    "unit": ["mg/dL", "mol/L", "kg/L", "IU", "IU/h", None, "mmol/L"],
    "status": [[], ["sensor_fault"], "x", [1]],
    "details": [{}, {"a": 1, "b": None}, {"a": [1]}, []],
    "raw": ["", "0a1b", "0", "ZZ", "00" * 257],
}
DEVICE_VALUES: dict[str, list[Any]] = {
    "serial": ["CGM1", "UNREG", "PARK", "", "x" * 65, 3],
    "kind": ["cgm", "glucose_meter", "insulin_pump", "phone"],
    "model": ["", "M" * 65],
}
ABSENT = object()

reading_changes = st.dictionaries(
    st.sampled_from([*FIELD_VALUES, *(f"device.{f}" for f in DEVICE_VALUES), "extra"]),
    st.integers(0, 100),
    max_size=2,
)


def _reading(changes: dict[str, int], offset: int) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(cgm_reading("CGM1", offset, 100.0)))
    for name, pick in changes.items():
        if name == "extra":
            doc["unexpected"] = 1
        elif name.startswith("device."):
            field = name.removeprefix("device.")
            values = DEVICE_VALUES[field]
            doc["device"][field] = values[pick % len(values)]
        elif pick % 11 == 10:  # the field left out
            doc.pop(name, None)
        else:
            values = FIELD_VALUES[name]
            doc[name] = values[pick % len(values)]
    return doc


def _payload(readings: list[dict[str, Any]], sent_at: str) -> bytes:
    doc = json.loads(batch("hub-1", [cgm_reading("CGM1", 0, 100.0)]))
    doc["readings"] = readings
    doc["sent_at"] = sent_at
    return json.dumps(doc).encode()


def _link(serial: str, _t: datetime) -> str | None:
    return None if serial == "PARK" else "P-" + serial


def _hub_of(serial: str) -> str | bool:
    return False if serial == "UNREG" else "hub-1"


def _summary(o: Outcome) -> tuple[object, ...]:
    return (
        o.readings_in,
        o.stored,
        [(p.key, p.serial, p.time, p.reading_json) for p in o.parked],
        [(q.reason, q.detail, q.payload, q.reading_key) for q in o.quarantined],
    )


class _NoFastPath:
    @staticmethod
    def validate_json(_payload: bytes) -> object:
        raise ValidationError.from_exception_data("forced", [])


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.lists(reading_changes, min_size=1, max_size=3),
    sent_at=st.sampled_from(["2026-11-01T08:05:00+00:00", "2026-11-01T10:05:00+02:00"]),
)
def test_fast_path_is_never_looser_and_gives_the_same_outcome(
    changes: list[dict[str, int]], sent_at: str
) -> None:
    payload = _payload([_reading(c, i) for i, c in enumerate(changes)], sent_at)
    try:
        fast = v1_dicts.BATCH.validate_json(payload)
    except ValidationError:
        fast = None
    if fast is not None:
        # Accepted by the mirror: the models accept it too, unless a reading fails the one
        # rule they check in Python (which the fast path applies per reading itself).
        misfit = any(
            kind_problem(r["kind"], r["unit"], r["value"], r.get("special"))
            for r in fast["readings"]
        )
        try:
            ReadingsBatch.model_validate_json(payload)
        except ValidationError:
            assert misfit
    got = process(TOPIC, payload, link=_link, hub_of=_hub_of)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "BATCH", _NoFastPath)
        want = process(TOPIC, payload, link=_link, hub_of=_hub_of)  # type: ignore[arg-type]
    assert _summary(got) == _summary(want)
    event("fast path" if fast is not None else "per-part path")
    for q in got.quarantined:
        event(f"quarantined {q.reason}")
    event(f"stored {bool(got.stored)}, parked {bool(got.parked)}")


def test_fast_path_stores_what_the_models_store() -> None:
    """A plain valid batch takes the fast path and gives the models' StoredReadings."""
    readings = [cgm_reading("CGM1", i, 90.0 + i) for i in range(5)]
    payload = batch("hub-1", readings)
    assert v1_dicts.BATCH.validate_json(payload)["readings"]
    got = process(TOPIC, payload, link=_link, hub_of=_hub_of)  # type: ignore[arg-type]
    model = ReadingsBatch.model_validate_json(payload)
    want = [pipeline.normalise(r, "P-CGM1", "hub-1", str(model.batch_id)) for r in model.readings]
    assert got.stored == want
    assert all(r.time.tzinfo is UTC for r in got.stored)
