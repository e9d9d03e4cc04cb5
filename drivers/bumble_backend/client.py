"""bleak client backend over a bumble central ``Device``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bumble.core import BaseBumbleError
from bumble.device import Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import Address

# Characteristic property bits (Core spec Vol 3 Part G 3.3.1.1) to bleak's names.
_PROPERTY_NAMES = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
)


def _uuid(value: Any) -> str:
    """bumble UUID -> bleak's lowercase 128-bit string."""
    text = value.to_hex_str("-") if hasattr(value, "to_hex_str") else str(value)
    text = text.lower()
    if len(text) == 4:
        return f"0000{text}-0000-1000-8000-00805f9b34fb"
    return text


class BumbleBleakClient(BaseBleakClient):
    """The backend. Subclassed per central by :func:`client_backend`."""

    central: ClassVar[Device]
    operation_timeout_s: ClassVar[float] = 10.0
    # A controller creates one LE connection at a time (HCI_LE_Create_Connection is
    # disallowed while one is pending); BlueZ queues them the same way.
    connect_lock: ClassVar[asyncio.Lock]

    def __init__(self, address_or_ble_device: Any, **kwargs: Any) -> None:
        kwargs.pop("bluez", None)
        kwargs.pop("winrt", None)
        kwargs.pop("services", None)
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.pop("disconnected_callback", None),
            timeout=kwargs.pop("timeout", 10.0),
        )
        self._connection: Connection | None = None
        self._peer: Peer | None = None

    # -- connection ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.address)

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        try:
            async with self.connect_lock, asyncio.timeout(self._timeout):
                connection = await self.central.connect(Address(self.address))
        except (TimeoutError, BaseBumbleError, OSError) as err:
            raise BleakError(f"connect to {self.address} failed: {err!r}") from err
        self._connection = connection
        connection.on("disconnection", self._on_disconnection)
        try:
            if pair:
                await connection.pair()
            peer = Peer(connection)
            await peer.discover_services()
            await peer.discover_characteristics()
            for service in peer.services:
                for characteristic in service.characteristics:
                    await characteristic.discover_descriptors()
        except (BaseBumbleError, TimeoutError) as err:
            await self.disconnect()
            raise BleakError(f"GATT discovery on {self.address} failed: {err!r}") from err
        self._peer = peer
        self.services = self._collection(peer)

    def _collection(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service in peer.services:
            bs = BleakGATTService(service, service.handle, _uuid(service.uuid))
            collection.add_service(bs)
            for ch in service.characteristics:
                props: list[Any] = [
                    name for bit, name in _PROPERTY_NAMES if int(ch.properties) & bit
                ]
                bc = BleakGATTCharacteristic(
                    ch, ch.handle, _uuid(ch.uuid), props, lambda: self.mtu_size - 3, bs
                )
                collection.add_characteristic(bc)
                for d in ch.descriptors:
                    collection.add_descriptor(BleakGATTDescriptor(d, d.handle, _uuid(d.type), bc))
        return collection

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self._peer = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._peer = None
        if connection is not None:
            # Already gone when the link dropped first.
            with contextlib.suppress(BaseBumbleError, OSError):
                await connection.disconnect()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        if self._connection is None:
            raise BleakError("not connected")
        try:
            await self._connection.pair()
        except BaseBumbleError as err:
            raise BleakError(f"pairing with {self.address} failed: {err!r}") from err

    async def unpair(self) -> None:
        raise NotImplementedError("unpair is not supported by the bumble backend")

    # -- GATT --------------------------------------------------------------------------------
    def _require(self) -> Peer:
        if self._peer is None:
            raise BleakError(f"{self.address} is not connected")
        return self._peer

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            async with asyncio.timeout(self.operation_timeout_s):
                return await coro
        except (BaseBumbleError, TimeoutError, OSError) as err:
            raise BleakError(f"{what} on {self.address} failed: {err!r}") from err

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        peer = self._require()
        value = await self._call("read", peer.read_value(characteristic.obj))
        return bytearray(value)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        peer = self._require()
        return bytearray(await self._call("read descriptor", peer.read_value(descriptor.obj)))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        peer = self._require()
        await self._call(
            "write", peer.write_value(characteristic.obj, bytes(data), with_response=response)
        )

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        peer = self._require()
        await self._call(
            "write descriptor", peer.write_value(descriptor.obj, bytes(data), with_response=True)
        )

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        peer = self._require()
        proxy: CharacteristicProxy[Any] = characteristic.obj
        # Indications are preferred where the characteristic only indicates (RACP, SOCP).
        prefer_notify = "notify" in characteristic.properties
        await self._call(
            "subscribe",
            peer.subscribe(
                proxy, lambda value: callback(bytearray(value)), prefer_notify=prefer_notify
            ),
        )

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require()
        await self._call("unsubscribe", peer.unsubscribe(characteristic.obj))


def client_backend(
    central: Device, *, operation_timeout_s: float = 10.0
) -> type[BumbleBleakClient]:
    """A backend class bound to ``central`` (bleak instantiates backends itself)."""
    return type(
        "BoundBumbleBleakClient",
        (BumbleBleakClient,),
        {
            "central": central,
            "operation_timeout_s": operation_timeout_s,
            "connect_lock": asyncio.Lock(),
        },
    )
