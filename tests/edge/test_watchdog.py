"""sd_notify readiness and watchdog pings reach a real notify socket."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from edge.watchdog import Systemd


async def test_ready_and_watchdog_pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # ping every 50 ms
    sd = Systemd()
    sd.ready("ok")
    task = asyncio.create_task(sd.watchdog())
    loop = asyncio.get_running_loop()
    try:
        first = await asyncio.wait_for(loop.sock_recv(sock, 1024), 5)
        pings = [await asyncio.wait_for(loop.sock_recv(sock, 1024), 5) for _ in range(3)]
    finally:
        task.cancel()
        sd.close()
        sock.close()
    assert first == b"READY=1\nSTATUS=ok"
    assert pings == [b"WATCHDOG=1"] * 3


def test_outside_systemd_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    sd = Systemd()
    assert not sd.enabled
    sd.ready()
