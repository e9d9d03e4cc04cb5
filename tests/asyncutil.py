"""Waiting on the system under test: poll a condition it makes true, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(
    cond: Callable[[], bool], deadline_s: float = 20.0, what: str = "condition"
) -> None:
    try:
        async with asyncio.timeout(deadline_s):
            while not cond():  # noqa: ASYNC110 - state in another process or database, no event to await
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {deadline_s} s") from None


async def until_async(
    cond: Callable[[], Awaitable[bool]], deadline_s: float = 20.0, what: str = "condition"
) -> None:
    """``until`` for a condition that must itself await (a query of a database)."""
    try:
        async with asyncio.timeout(deadline_s):
            while not await cond():  # noqa: ASYNC110 - state in a database
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {deadline_s} s") from None
