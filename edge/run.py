"""``diatabase edge run``: the hub agent on real BlueZ devices through bleak."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from edge.agent import EdgeAgent
from edge.settings import EdgeSettings

log = logging.getLogger(__name__)


async def run_edge(settings: EdgeSettings) -> None:
    agent = EdgeAgent(settings)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel)
    log.info("hub %s publishing to %s", settings.hub_id, settings.mqtt)
    with contextlib.suppress(asyncio.CancelledError):
        await agent.run()
