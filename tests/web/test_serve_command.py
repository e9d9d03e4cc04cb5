"""``diatabase serve`` as a process: serves, and stops promptly on SIGTERM even with a
live SSE stream open (the streams are ended before uvicorn waits for connections)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx

from tests.harness import free_port

# How gateway/cli/app.py registers it: ``app.command()(serve)``.
LAUNCH = "import typer; from gateway.cli.web import serve; typer.run(serve)"


async def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LAUNCH,
        "--store",
        f"sqlite:///{tmp_path}/readings.db",
        "--registry",
        f"sqlite:///{tmp_path}/registry.db",
        "--port",
        str(port),
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            async with asyncio.timeout(30):
                while True:  # the process is starting: retry until it listens
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
            assert (await client.get("/")).status_code == 200
            async with client.stream("GET", "/events") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == "retry: 2000"
                async with asyncio.timeout(10):  # the first snapshot, then stop the server
                    while await anext(lines) != "event: clinic":
                        pass
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(5):
                    _rest = [line async for line in lines]  # ends when the server closes it
        async with asyncio.timeout(10):
            rc = await proc.wait()
        assert rc == 0, (await proc.stderr.read()).decode() if proc.stderr else rc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
