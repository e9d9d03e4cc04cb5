"""The agent side: a bleak backend whose host stack is in another process (see
:mod:`drivers.ble_rpc.server`). Imports bleak only, never bumble."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any, ClassVar

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError

from drivers.ble_rpc import protocol as p


class RemoteBleakClient(BaseBleakClient):
    """The backend; use :func:`remote_backend` to get a class bound to a host socket."""

    socket_path: ClassVar[str]

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.get("disconnected_callback"),
            timeout=float(kwargs.get("timeout", 10.0)),
        )
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._callbacks: dict[int, NotifyCallback] = {}
        self._mtu = 23
        self._connected = False

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connected:
            return
        try:
            reader, self._writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError as err:
            raise BleakError(f"BLE host at {self.socket_path} unreachable: {err!r}") from err
        self._reader_task = asyncio.create_task(self._read(reader))
        try:
            gatt: p.Gatt = await self._call(
                p.CONNECT, address=self.address, pair=pair, timeout=self._timeout
            )
        except BaseException:
            await self._close()
            raise
        self._mtu = gatt["mtu"]
        self.services = self._collection(gatt)
        self._connected = True

    def _collection(self, gatt: p.Gatt) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for s in gatt["services"]:
            service = BleakGATTService(None, s["handle"], s["uuid"])
            collection.add_service(service)
            for c in s["characteristics"]:
                props: list[Any] = c["properties"]
                ch = BleakGATTCharacteristic(
                    None, c["handle"], c["uuid"], props, self._max_write, service
                )
                collection.add_characteristic(ch)
                for d in c["descriptors"]:
                    collection.add_descriptor(BleakGATTDescriptor(None, d["handle"], d["uuid"], ch))
        return collection

    def _max_write(self) -> int:
        return self._mtu - 3

    async def _call(self, op: str, **args: Any) -> Any:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise BleakError(f"{op}: {self.address} is not connected")
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            writer.write(p.encode({"id": rid, "op": op, **args}))
            # The host bounds every operation itself; this only guards a wedged host.
            async with asyncio.timeout(self._timeout * 3):
                return await future
        except TimeoutError as err:
            raise BleakError(f"{op} on {self.address}: no answer from the BLE host") from err
        finally:
            self._pending.pop(rid, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = p.decode(line)
                if "id" in message:
                    future = self._pending.get(message["id"])
                    if future is None or future.done():
                        continue
                    if "error" in message:
                        att = message.get("att")
                        future.set_exception(
                            BleakGATTProtocolError(att)
                            if att is not None
                            else BleakError(message["error"])
                        )
                    else:
                        future.set_result(message.get("ok"))
                elif message.get("event") == p.NOTIFY:
                    callback = self._callbacks.get(message["handle"])
                    if callback is not None:
                        callback(bytearray.fromhex(message["data"]))
                elif message.get("event") == p.DISCONNECTED:
                    self._lost(f"{self.address} disconnected")
        except (ConnectionError, ValueError):
            pass
        finally:
            self._lost(f"{self.address}: the BLE host closed the connection")

    def _lost(self, why: str) -> None:
        """The link is gone: fail what waits, tell bleak once."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BleakError(why))
        self._callbacks.clear()
        was_connected, self._connected = self._connected, False
        if self._writer is not None:
            self._writer.close()
        if was_connected and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def _close(self) -> None:
        self._connected = False
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        task, self._reader_task = self._reader_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            with contextlib.suppress(BleakError):
                await self._call(p.DISCONNECT)
        await self._close()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        await self._call(p.PAIR)

    async def unpair(self) -> None:
        await self._call(p.UNPAIR)

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        return bytearray.fromhex(await self._call(p.READ, handle=characteristic.handle))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        return bytearray.fromhex(await self._call(p.READ_DESCRIPTOR, handle=descriptor.handle))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        await self._call(
            p.WRITE, handle=characteristic.handle, data=bytes(data).hex(), response=response
        )

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        await self._call(p.WRITE_DESCRIPTOR, handle=descriptor.handle, data=bytes(data).hex())

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        # Registered first: the first notification may beat the reply.
        self._callbacks[characteristic.handle] = callback
        try:
            await self._call(p.START_NOTIFY, handle=characteristic.handle)
        except BaseException:
            self._callbacks.pop(characteristic.handle, None)
            raise

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._callbacks.pop(characteristic.handle, None)
        await self._call(p.STOP_NOTIFY, handle=characteristic.handle)


def remote_backend(socket_path: str) -> type[RemoteBleakClient]:
    """A backend class bound to the BLE host listening on ``socket_path``."""
    return type("BoundRemoteBleakClient", (RemoteBleakClient,), {"socket_path": socket_path})
