"""bleak client backend over a bumble central ``Device``.

bleak instantiates backends itself (``BleakClient(address, backend=cls)``), so the central
the backend talks through is bound to a subclass by :func:`client_backend`.

Every GATT operation races the link: when the peripheral drops the connection, the
pending operation fails at once with :class:`bleak.exc.BleakError` (bumble would cancel
it), the ``disconnected_callback`` runs, and every later call raises too. ATT error
responses become :class:`bleak.exc.BleakGATTProtocolError` with the ATT error code, as the
platform backends report them since bleak 3.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble.att import ATT_Error
from bumble.core import UUID, BaseBumbleError
from bumble.device import Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import Address

log = logging.getLogger(__name__)

T = TypeVar("T")

# Characteristic property bits (Core 5.4 Vol 3 Part G §3.3.1.1) to bleak's names.
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
# BlueZ exchanges the largest ATT MTU at connect (517); bumble's central does not by itself.
PREFERRED_MTU = 517


def bleak_uuid(value: UUID) -> str:
    """bumble UUID -> bleak's lowercase 128-bit string."""
    text = value.to_hex_str("-").lower()
    if len(text) == 4:
        return f"0000{text}-0000-1000-8000-00805f9b34fb"
    return text


def peer_address(address: str) -> Address:
    """Virtual peripherals advertise from static random addresses (what bleak shows)."""
    return Address(address, Address.RANDOM_DEVICE_ADDRESS)


class BumbleBleakClient(BaseBleakClient):
    """The backend; use :func:`client_backend` to get a class bound to a central."""

    central: ClassVar[Device]
    operation_timeout_s: ClassVar[float] = 10.0
    # A controller creates one LE connection at a time (HCI_LE_Create_Connection is
    # disallowed while one is pending); BlueZ queues them the same way.
    connect_lock: ClassVar[asyncio.Lock]

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.get("disconnected_callback"),
            timeout=float(kwargs.get("timeout", 10.0)),
        )
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._lost: asyncio.Future[None] | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    # -- connection --------------------------------------------------------------------
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
        if self._connection is not None:
            return
        try:
            async with self.connect_lock, asyncio.timeout(self._timeout):
                connection = await self.central.connect(peer_address(self.address))
        except (TimeoutError, BaseBumbleError, OSError) as err:
            raise BleakError(f"connect to {self.address} failed: {err!r}") from err
        self._connection = connection
        self._lost = asyncio.get_running_loop().create_future()
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            if pair:
                await self._secure(connection)
            peer = Peer(connection)
            self._peer = peer
            await self._guard("MTU exchange", peer.request_mtu(PREFERRED_MTU))
            await self._guard("service discovery", peer.discover_services())
            await self._guard("characteristic discovery", peer.discover_characteristics())
            for service in peer.services:
                for characteristic in service.characteristics:
                    await self._guard("descriptor discovery", characteristic.discover_descriptors())
            self.services = self._collection(peer)
        except BaseException:
            await self.disconnect()
            raise

    def _collection(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service in peer.services:
            bs = BleakGATTService(service, service.handle, bleak_uuid(service.uuid))
            collection.add_service(bs)
            for ch in service.characteristics:
                props: list[Any] = [
                    name for bit, name in _PROPERTY_NAMES if int(ch.properties) & bit
                ]
                bc = BleakGATTCharacteristic(
                    ch, ch.handle, bleak_uuid(ch.uuid), props, self._max_write, bs
                )
                collection.add_characteristic(bc)
                for d in ch.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(d, d.handle, bleak_uuid(d.type), bc)
                    )
        return collection

    def _max_write(self) -> int:
        return self.mtu_size - 3

    def _on_disconnection(self, reason: int) -> None:
        was_connected = self._connection is not None
        self._connection = None
        self._peer = None
        self._subscribers.clear()
        if self._lost is not None and not self._lost.done():
            self._lost.set_exception(
                BleakError(f"{self.address} disconnected (HCI reason 0x{reason:02X})")
            )
            self._lost.exception()  # retrieved: nobody may be waiting right now
        if was_connected and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._peer = None
        self._subscribers.clear()
        if connection is None:
            return
        # The peripheral may have dropped the link first; then there is nothing to do.
        with contextlib.suppress(BaseBumbleError, OSError, TimeoutError):
            async with asyncio.timeout(self.operation_timeout_s):
                await connection.disconnect()

    async def _secure(self, connection: Connection) -> None:
        """Encrypt with the stored bond, or pair (LE Secure Connections) and bond."""
        keystore = self.central.keystore
        keys = await keystore.get(str(connection.peer_address)) if keystore else None
        if keys is not None and (keys.ltk is not None or keys.ltk_peripheral is not None):
            await self._guard("encryption", connection.encrypt())
        else:
            await self._guard("pairing", connection.pair())

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        connection = self._connection
        if connection is None:
            raise BleakError(f"{self.address} is not connected")
        await self._secure(connection)

    async def unpair(self) -> None:
        keystore = self.central.keystore
        if keystore is not None:
            with contextlib.suppress(KeyError):
                await keystore.delete(str(peer_address(self.address)))
        await self.disconnect()

    # -- the guard -----------------------------------------------------------------------
    async def _guard(self, what: str, operation: Awaitable[T]) -> T:
        """Run one bumble operation; fail fast with a bleak error on disconnect/timeout."""
        lost = self._lost
        if self._connection is None or lost is None:
            if asyncio.iscoroutine(operation):
                operation.close()
            raise BleakError(f"{what}: {self.address} is not connected")
        task = asyncio.ensure_future(operation)
        try:
            done, _ = await asyncio.wait(
                (task, lost),
                timeout=self.operation_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except BaseException:
            task.cancel()
            raise
        if task in done and not task.cancelled():
            err = task.exception()
            if err is None:
                return task.result()
            if isinstance(err, ATT_Error):
                raise BleakGATTProtocolError(err.error_code) from err
            if isinstance(err, BaseBumbleError | OSError | TimeoutError):
                raise BleakError(f"{what} on {self.address} failed: {err!r}") from err
            raise err
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, BaseBumbleError, OSError):
            await task
        if lost.done():
            raise BleakError(f"{what}: {self.address} disconnected") from lost.exception()
        raise BleakError(f"{what} on {self.address} timed out after {self.operation_timeout_s} s")

    def _require(self) -> Peer:
        if self._peer is None:
            raise BleakError(f"{self.address} is not connected")
        return self._peer

    # -- GATT ----------------------------------------------------------------------------
    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        peer = self._require()
        return bytearray(await self._guard("read", peer.read_value(characteristic.obj)))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        peer = self._require()
        return bytearray(await self._guard("read descriptor", peer.read_value(descriptor.obj)))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        peer = self._require()
        await self._guard(
            "write", peer.write_value(characteristic.obj, bytes(data), with_response=response)
        )

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        peer = self._require()
        await self._guard(
            "write descriptor", peer.write_value(descriptor.obj, bytes(data), with_response=True)
        )

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        peer = self._require()
        proxy: CharacteristicProxy[Any] = characteristic.obj
        previous = self._subscribers.pop(characteristic.handle, None)
        if previous is not None:
            await self._guard("unsubscribe", peer.unsubscribe(proxy, previous))

        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = subscriber
        # Notifications where offered; indications where the characteristic only
        # indicates (RACP, SOCP), as BlueZ does.
        await self._guard(
            "subscribe",
            peer.subscribe(proxy, subscriber, prefer_notify="notify" in characteristic.properties),
        )

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require()
        subscriber = self._subscribers.pop(characteristic.handle, None)
        if subscriber is not None:
            await self._guard("unsubscribe", peer.unsubscribe(characteristic.obj, subscriber))


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
