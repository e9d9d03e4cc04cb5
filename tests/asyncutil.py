"""Waiting on the system under test: poll a condition it makes true, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(
    cond: Callable[[], bool], deadline_s: float = 20.0, what: str = "condition"
) -> None:
    try:
        async with asyncio.timeout(deadline_s):
            while not cond():  # noqa: ASYNC110 - state in another process or database, no event to await
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {deadline_s} s") from None
