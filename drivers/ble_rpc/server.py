"""The host side: serve a bleak backend (e.g. a bumble central's) on a Unix socket.

Each accepted connection drives one backend client instance: requests run as tasks (a
driver may read while a write waits for its response), replies and notifications are
written in the order they happen, and the peripheral link is dropped when the remote
end goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.exc import BleakError, BleakGATTProtocolError

from drivers.ble_rpc import protocol as p

log = logging.getLogger(__name__)


async def serve(backend: type[BaseBleakClient], path: Path) -> asyncio.Server:
    """Listen on ``path``; every connection gets a fresh ``backend`` client."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Session(backend, writer).run(reader)

    return await asyncio.start_unix_server(session, path=str(path))


def describe(client: BaseBleakClient) -> p.Gatt:
    """The discovered database as plain data (handles, UUIDs, property names)."""
    if client.services is None:
        raise BleakError("services not discovered")
    return {
        "mtu": client.mtu_size,
        "services": [
            {
                "handle": s.handle,
                "uuid": s.uuid,
                "characteristics": [
                    {
                        "handle": c.handle,
                        "uuid": c.uuid,
                        "properties": list(c.properties),
                        "descriptors": [
                            {"handle": d.handle, "uuid": d.uuid} for d in c.descriptors
                        ],
                    }
                    for c in s.characteristics
                ],
            }
            for s in client.services
        ],
    }


class _Session:
    def __init__(self, backend: type[BaseBleakClient], writer: asyncio.StreamWriter) -> None:
        self.backend = backend
        self.writer = writer
        self.client: BaseBleakClient | None = None

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(p.encode(message))

    async def run(self, reader: asyncio.StreamReader) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while line := await reader.readline():
                task = asyncio.create_task(self.handle(p.decode(line)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (ConnectionError, ValueError) as err:
            log.warning("ble rpc session ended: %r", err)
        finally:
            for task in list(tasks):
                task.cancel()
            if self.client is not None:
                with contextlib.suppress(BleakError, OSError):
                    await self.client.disconnect()
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()

    async def handle(self, request: dict[str, Any]) -> None:
        rid = request.get("id")
        try:
            reply: dict[str, Any] = {"id": rid, "ok": await self.op(request)}
        except BleakGATTProtocolError as err:
            reply = {"id": rid, "error": str(err), "att": int(err.code)}
        except (BleakError, KeyError, ValueError) as err:
            reply = {"id": rid, "error": str(err) or repr(err), "att": None}
        except Exception as err:  # the remote caller must get an answer, never a hang
            log.exception("ble rpc %s failed", request.get("op"))
            reply = {"id": rid, "error": repr(err), "att": None}
        self.send(reply)

    def on_disconnected(self, _client: object = None) -> None:
        self.send({"event": p.DISCONNECTED})

    async def op(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op == p.CONNECT:
            if self.client is not None:
                raise BleakError("this session already has a connection")
            new = self.backend(
                request["address"],
                disconnected_callback=self.on_disconnected,
                timeout=float(request.get("timeout", 10.0)),
            )
            await new.connect(pair=bool(request.get("pair", False)))
            self.client = new
            return describe(new)
        client = self.client
        if client is None:
            raise BleakError("not connected")
        if op == p.READ:
            return (await client.read_gatt_char(_char(client, request))).hex()
        if op == p.READ_DESCRIPTOR:
            return (await client.read_gatt_descriptor(_desc(client, request))).hex()
        if op == p.WRITE:
            data = bytes.fromhex(request["data"])
            await client.write_gatt_char(_char(client, request), data, bool(request["response"]))
        elif op == p.WRITE_DESCRIPTOR:
            data = bytes.fromhex(request["data"])
            await client.write_gatt_descriptor(_desc(client, request), data)
        elif op == p.START_NOTIFY:
            handle = int(request["handle"])

            def forward(data: bytearray) -> None:
                self.send({"event": p.NOTIFY, "handle": handle, "data": data.hex()})

            await client.start_notify(_char(client, request), forward)
        elif op == p.STOP_NOTIFY:
            await client.stop_notify(_char(client, request))
        elif op == p.PAIR:
            await client.pair()
        elif op == p.UNPAIR:
            await client.unpair()
        elif op == p.DISCONNECT:
            await client.disconnect()
        else:
            raise BleakError(f"unknown operation {op!r}")
        return None


def _char(client: BaseBleakClient, request: dict[str, Any]) -> BleakGATTCharacteristic:
    services = client.services
    found = services.get_characteristic(int(request["handle"])) if services else None
    if found is None:
        raise BleakError(f"no characteristic with handle {request['handle']}")
    return found


def _desc(client: BaseBleakClient, request: dict[str, Any]) -> BleakGATTDescriptor:
    services = client.services
    found = services.get_descriptor(int(request["handle"])) if services else None
    if found is None:
        raise BleakError(f"no descriptor with handle {request['handle']}")
    return found
