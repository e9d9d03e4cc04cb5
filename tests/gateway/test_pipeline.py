"""Pipeline: every bad part quarantined with its reason, good neighbours kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import pytest

from gateway.contract.v1 import topic_readings
from gateway.ingest.pipeline import Outcome, Reason
from gateway.ingest.pipeline import process as run_pipeline
from tests.factories import batch, bg_reading, cgm_reading

TOPIC = topic_readings("hub-1")


def link_all(serial: str, at: datetime) -> str | None:
    return {"CGM1": "P-1", "BG1": "P-2"}.get(serial)


def hub_of(serial: str) -> str | Literal[False] | None:
    return {"CGM1": "hub-1", "BG1": "hub-1", "NOBODY": "hub-1", "OTHER": "hub-2"}.get(serial, False)


def process(topic: str, payload: bytes, *, link: Callable[..., str | None]) -> Outcome:
    return run_pipeline(topic, payload, link=link, hub_of=hub_of)


def test_valid_batch_is_normalised_and_linked() -> None:
    payload = batch("hub-1", [cgm_reading("CGM1", 5, 112.0), bg_reading("BG1", 7, 0.00112)])
    out = process(TOPIC, payload, link=link_all)
    assert out.quarantined == [] and out.parked == []
    cgm, bg = out.stored
    assert (cgm.patient_id, cgm.mg_dl, cgm.unit, cgm.value) == ("P-1", 112.0, "mg/dL", 112.0)
    # 0.00112 kg/L is 112 mg/dL (1 kg/L = 100,000 mg/dL); the reported value is kept.
    assert (bg.patient_id, bg.mg_dl, bg.unit, bg.value) == ("P-2", 112.0, "kg/L", 0.00112)
    # Corrected time is device time + clock offset (-1 h), in UTC.
    assert cgm.time == datetime(2026, 11, 1, 7, 5, tzinfo=UTC)


def test_mol_per_litre_uses_the_one_factor() -> None:
    out = process(TOPIC, batch("hub-1", [bg_reading("BG1", 1, 0.005, "mol/L")]), link=link_all)
    assert out.stored[0].mg_dl == pytest.approx(5 * 18.01559, abs=1e-3)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", Reason.MALFORMED_JSON),
        (b"[1,2]", Reason.SCHEMA_VIOLATION),
        (json.dumps({"schema": "x", "hub_id": "hub-1"}).encode(), Reason.SCHEMA_VIOLATION),
        (batch("hub-2", [cgm_reading("CGM1", 1, 100.0)]), Reason.HUB_MISMATCH),
        (b"x" * (1024 * 1024 + 1), Reason.OVERSIZED),
        (
            batch("hub-1", [cgm_reading("CGM1", 1, 100.0)]).replace(b"100.0", b"NaN"),
            Reason.INVALID_READING,
        ),
    ],
)
def test_bad_messages_are_quarantined_with_reason(payload: bytes, reason: Reason) -> None:
    out = process(TOPIC, payload, link=link_all)
    assert out.stored == []
    assert [q.reason for q in out.quarantined] == [reason.value]
    kept = out.quarantined[0].payload
    if reason is Reason.INVALID_READING:
        # Kept as a one-reading batch of the same hub, replayable as it is.
        assert json.loads(kept)["readings"] == json.loads(payload)["readings"]
    else:
        assert kept == payload


def test_one_bad_reading_does_not_sink_its_neighbours() -> None:
    bad = cgm_reading("CGM1", 2, 100.0)
    bad["unit"] = "furlongs"
    future = cgm_reading("CGM1", 3, 100.0)
    future["time"] = "2026-11-28T00:11:00+00:00"  # 11 min after sent_at
    special = cgm_reading("CGM1", 4, 100.0)
    special["value"], special["special"] = None, "NRes"
    low = cgm_reading("CGM1", 5, 12.0)
    payload = batch("hub-1", [cgm_reading("CGM1", 1, 100.0), bad, future, special, low])
    out = process(TOPIC, payload, link=link_all)
    assert [r.key for r in out.stored] == [cgm_reading("CGM1", 1, 100.0)["key"], low["key"]]
    assert [q.reason for q in out.quarantined] == [
        "invalid_reading",
        "future_time",
        "special_value",
    ]
    # Implausible values are flagged, never dropped.
    assert out.stored[1].flags == ("out_of_range",)


def test_unassigned_device_is_parked_not_dropped() -> None:
    out = process(TOPIC, batch("hub-1", [cgm_reading("NOBODY", 1, 100.0)]), link=link_all)
    assert out.stored == [] and out.quarantined == []
    assert [p.serial for p in out.parked] == ["NOBODY"]


def test_devices_must_belong_to_the_publishing_hub() -> None:
    payload = batch(
        "hub-1",
        [
            cgm_reading("CGM1", 1, 100.0),
            cgm_reading("OTHER", 1, 100.0),
            cgm_reading("NEW", 1, 90.0),
        ],
    )
    out = process(TOPIC, payload, link=link_all)
    assert [r.serial for r in out.stored] == ["CGM1"]
    assert [(q.reason, q.device_serial) for q in out.quarantined] == [
        ("device_hub_mismatch", "OTHER"),
        ("unknown_device", "NEW"),
    ]
    # The quarantined copy is a whole one-reading batch: it can be replayed as it is.
    replay = run_pipeline(
        TOPIC, out.quarantined[1].payload, link=link_all, hub_of=lambda s: "hub-1"
    )
    assert [p.serial for p in replay.parked] == ["NEW"]
