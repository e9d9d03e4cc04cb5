"""Server-sent events fed by polling: one poller per app, fan-out to every open page.

The ingester is another process, so there is nothing to subscribe to: the poller asks
the store and the registry for a cheap change marker every ``poll_s`` and builds a
snapshot only when the marker moved (or every ``refresh_s``, so ages and staleness stay
true while nothing arrives). Each subscriber holds at most one pending snapshot: a slow
page skips to the newest instead of queueing stale ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_CLOSED = object()


class LiveFeed(Generic[T]):
    def __init__(
        self,
        marker: Callable[[], Awaitable[object]],
        produce: Callable[[], Awaitable[T]],
        *,
        poll_s: float = 0.5,
        refresh_s: float = 30.0,
    ) -> None:
        self._marker = marker
        self._produce = produce
        self.poll_s = poll_s
        self.refresh_s = refresh_s
        self.latest: T | None = None
        self.pushes = 0
        self._subscribers: set[asyncio.Queue[object]] = set()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> LiveFeed[T]:
        self._task = asyncio.create_task(self._run(), name="live feed poller")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def close(self) -> None:
        """End every open stream now (before the server waits for its connections)."""
        self._closed.set()
        for q in self._subscribers:
            _replace(q, _CLOSED)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    # -- polling --------------------------------------------------------------------------
    async def _run(self) -> None:
        seen: object = _CLOSED  # never equal to a real marker
        pushed_at = 0.0
        failing = False
        while not self._closed.is_set():
            try:
                mark = await self._marker()
                if mark != seen or time.monotonic() - pushed_at >= self.refresh_s:
                    snap = await self._produce()
                    seen, pushed_at = mark, time.monotonic()
                    self._publish(snap)
                if failing:
                    log.info("live feed recovered")
                    failing = False
            except asyncio.CancelledError:
                raise
            except Exception:
                if not failing:
                    log.exception("live feed: polling failed (will keep trying)")
                    failing = True
            # a timer, not a synchronisation: the data lives in another process
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), self.poll_s)

    def _publish(self, snap: T) -> None:
        self.latest = snap
        self.pushes += 1
        for q in self._subscribers:
            _replace(q, snap)

    async def subscribe(self) -> AsyncIterator[T]:
        """The current snapshot at once, then each new one until the feed closes."""
        q: asyncio.Queue[object] = asyncio.Queue(maxsize=1)
        self._subscribers.add(q)
        try:
            if self._closed.is_set():
                return
            # a fresh one, not ``latest``: the poller may not have seen the newest change
            # yet, and the page must never step back behind what it rendered on load
            yield await self._produce()
            while True:
                item = await q.get()
                if item is _CLOSED:
                    return
                yield item  # type: ignore[misc]
        finally:
            self._subscribers.discard(q)


def _replace(q: asyncio.Queue[object], item: object) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        q.get_nowait()
    q.put_nowait(item)


def sse_event(event: str, data: object) -> str:
    # json.dumps never emits a raw newline, so the payload is one "data:" line
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def sse_stream(
    items: AsyncIterator[T],
    render: Callable[[T], str],
    *,
    keepalive_s: float = 15.0,
    retry_ms: int = 2000,
) -> AsyncIterator[str]:
    """Frames for a StreamingResponse; a comment line keeps idle proxies from closing it."""
    yield f"retry: {retry_ms}\n\n"
    it = aiter(items)
    pending: asyncio.Task[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(it))
            done, _ = await asyncio.wait({pending}, timeout=keepalive_s)
            if not done:
                yield ": keep-alive\n\n"
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield render(item)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
