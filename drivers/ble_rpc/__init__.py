"""A BLE host in another process, reached over a Unix socket.

On a hub, bleak reaches the Bluetooth host stack (BlueZ's ``bluetoothd``) over D-Bus: the
stack's memory and CPU are not the agent's. This package gives the virtual world the
same shape: :func:`serve` runs in the process that owns a bumble central and its
peripherals, and :class:`RemoteBleakClient` (a bleak backend that imports no bumble) is
what an agent process hands to ``BleakClient(..., backend=...)``. The benchmarks use it to
measure the agent's own resident memory.
"""

from drivers.ble_rpc.client import RemoteBleakClient, remote_backend

__all__ = ["RemoteBleakClient", "remote_backend"]
