"""bleak scanner backend over a bumble central ``Device``: advertisements on the link
become ``BLEDevice`` + ``AdvertisementData`` as BlueZ would report them."""

from __future__ import annotations

from typing import Any, ClassVar

from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Device

from drivers.bumble_backend.client import bleak_uuid


class BumbleBleakScanner(BaseBleakScanner):
    """The backend; use :func:`scanner_backend` to get a class bound to a central."""

    central: ClassVar[Device]

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._scanning = False

    async def start(self) -> None:
        self.seen_devices = {}
        self.central.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self.central.start_scanning(active=self._active, filter_duplicates=False)
        self._scanning = True

    async def stop(self) -> None:
        self.central.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        if self._scanning:
            self._scanning = False
            await self.central.stop_scanning()

    def _on_advertisement(self, ad: Advertisement) -> None:
        data = ad.data
        uuids: list[str] = []
        for kind in (
            AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        ):
            found = data.get(kind)
            if isinstance(found, list):
                uuids += [bleak_uuid(u) for u in found if isinstance(u, UUID)]
        if not self.is_allowed_uuid(uuids):
            return
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
        if not isinstance(name, str):
            short = data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
            name = short if isinstance(short, str) else None
        advertisement = AdvertisementData(
            local_name=name,
            manufacturer_data={},
            service_data={},
            service_uuids=uuids,
            tx_power=None,
            rssi=ad.rssi,
            platform_data=(ad,),
        )
        address = str(ad.address).removesuffix("/P")
        device = self.create_or_update_device(address, address, name, ad, advertisement)
        self.call_detection_callbacks(device, advertisement)


def scanner_backend(central: Device) -> type[BumbleBleakScanner]:
    """A scanner backend class bound to ``central``."""
    return type("BoundBumbleBleakScanner", (BumbleBleakScanner,), {"central": central})
