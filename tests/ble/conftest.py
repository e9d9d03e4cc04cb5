"""Virtual BLE worlds for driver tests (bumble controllers bind to the running loop)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from drivers.virtual import SimClock, VirtualWorld


class _FailOnCallbackErrors(logging.Handler):
    """bumble only logs an exception raised in a GATT server callback: make it fail."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
async def world() -> AsyncIterator[VirtualWorld]:
    handler = _FailOnCallbackErrors()
    logging.getLogger().addHandler(handler)
    # Simulated time starts an hour ago and runs 600x: a CGM reading every 0.5 s.
    clock = SimClock(datetime.now() - timedelta(hours=1), speed=600)
    try:
        async with VirtualWorld(clock, operation_timeout_s=5) as w:
            yield w
    finally:
        logging.getLogger().removeHandler(handler)
    errors = [r.getMessage() for r in handler.records if r.name.startswith(("bumble", "asyncio"))]
    assert not errors, errors
