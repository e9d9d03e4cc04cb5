"""A bleak backend on bumble: real driver code talks GATT to virtual peripherals.

``BleakClient(address, backend=client_backend(central))`` and
``BleakScanner(backend=scanner_backend(central))`` run every bleak call through a bumble
host ``Device`` attached to a :class:`bumble.link.LocalLink`, so tests and the demo
exercise the same driver code a hub runs on BlueZ.
"""

from drivers.bumble_backend.client import BumbleBleakClient, client_backend
from drivers.bumble_backend.scanner import BumbleBleakScanner, scanner_backend

__all__ = ["BumbleBleakClient", "BumbleBleakScanner", "client_backend", "scanner_backend"]
