"""systemd readiness and watchdog (sd_notify) for the hub agent.

The watchdog is fed from the event loop itself, so a stalled loop (a blocking call, a
deadlock) stops the pings and systemd restarts the agent. Outside systemd (no
``NOTIFY_SOCKET``) this does nothing.
"""

from __future__ import annotations

import asyncio
import os

import sdnotify


class Systemd:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._n = sdnotify.SystemdNotifier() if self.enabled else None
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        self.interval_s = usec / 2_000_000 if usec else None

    def notify(self, state: str) -> None:
        if self._n is not None:
            self._n.notify(state)

    def close(self) -> None:
        if self._n is not None:
            self._n.socket.close()
            self._n = None

    def ready(self, status: str = "running") -> None:
        self.notify(f"READY=1\nSTATUS={status}")

    async def watchdog(self) -> None:
        if self.interval_s is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.interval_s)
