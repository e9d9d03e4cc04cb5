"""Synthetic wire-contract payloads for tests (no real patient data anywhere)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.contract.v1 import SCHEMA_ID, reading_key

BASE = datetime(2026, 11, 1, 8, 0, 0)


def cgm_reading(
    serial: str, offset_min: int, mg_dl: float, *, start: datetime = BASE
) -> dict[str, Any]:
    device_time = start + timedelta(minutes=offset_min)
    return {
        "key": reading_key(
            serial,
            "cgm",
            sequence=None,
            session_start=start,
            time_offset_min=offset_min,
            device_time=device_time,
        ),
        "device": {"serial": serial, "kind": "cgm", "model": "VirtualCGM"},
        "kind": "cgm",
        "session_start": start.isoformat(),
        "time_offset_min": offset_min,
        "device_time": device_time.isoformat(),
        "clock_offset_s": -3600.0,
        "time": (device_time - timedelta(hours=1)).replace(tzinfo=UTC).isoformat(),
        "value": mg_dl,
        "unit": "mg/dL",
        "status": [],
        "details": {"trend_mg_dl_min": 0.5},
    }


def bg_reading(serial: str, seq: int, value: float, unit: str = "kg/L") -> dict[str, Any]:
    device_time = BASE + timedelta(minutes=seq)
    return {
        "key": reading_key(
            serial,
            "bg",
            sequence=seq,
            session_start=None,
            time_offset_min=None,
            device_time=device_time,
        ),
        "device": {"serial": serial, "kind": "glucose_meter"},
        "kind": "bg",
        "sequence": seq,
        "device_time": device_time.isoformat(),
        "clock_offset_s": 0.0,
        "time": device_time.replace(tzinfo=UTC).isoformat(),
        "value": value,
        "unit": unit,
    }


def batch(hub_id: str, readings: list[dict[str, Any]], *, sent_at: datetime | None = None) -> bytes:
    return json.dumps(
        {
            "schema": SCHEMA_ID,
            "hub_id": hub_id,
            "sent_at": (sent_at or datetime(2026, 11, 28, tzinfo=UTC)).isoformat(),
            "batch_id": str(uuid.uuid4()),
            "readings": readings,
        }
    ).encode()
