"""A bleak backend on bumble: real driver code talks GATT to virtual peripherals.

``BleakClient(address, backend=client_backend(central))`` runs every bleak call through
a bumble host ``Device`` attached to a :class:`bumble.link.LocalLink`, so tests and the
demo exercise the same driver code a hub runs on BlueZ.
"""

from drivers.bumble_backend.client import BumbleBleakClient, client_backend

__all__ = ["BumbleBleakClient", "client_backend"]
