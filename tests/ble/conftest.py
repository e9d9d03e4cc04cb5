"""Virtual BLE worlds for driver tests (bumble controllers bind to the running loop)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import bumble.gatt_client
import bumble.gatt_server
import pytest

from drivers.virtual import SimClock, VirtualWorld

GATT_TIMEOUT_S = 3.0


class _Collect(logging.Handler):
    """bumble only logs an exception raised in a GATT server callback: collect them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VirtualWorld]:
    # A server-callback bug would otherwise leave the client waiting 30 s.
    monkeypatch.setattr(bumble.gatt_client, "GATT_REQUEST_TIMEOUT", GATT_TIMEOUT_S)
    monkeypatch.setattr(bumble.gatt_server, "GATT_REQUEST_TIMEOUT", GATT_TIMEOUT_S)
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    # Simulated time starts two days ago and runs 600x: a CGM reading every 0.5 s.
    clock = SimClock(datetime(2026, 3, 1, 8, 0), speed=600)
    try:
        async with VirtualWorld(clock, operation_timeout_s=GATT_TIMEOUT_S) as w:
            yield w
    finally:
        root.removeHandler(handler)
    errors = [r.getMessage() for r in handler.records if r.name.startswith(("bumble", "asyncio"))]
    assert not errors, errors


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
