"""Device drivers written only against the bleak API; one module per device family.

Shape shared by every driver (the edge agent is written against it)::

    driver = CgmDriver(client)             # a connected BleakClient
    identity = await driver.read_identity()
    offset = await driver.read_clock_offset()  # UTC - device clock (s), None without CTS
    battery = await driver.read_battery()
    async for record in driver.sync(cursor):   # cursor: last committed record.cursor
        ...
    async for record in driver.live():         # CGM only
        ...
"""

from drivers.devices.base import DeviceDriver, DriverStats
from drivers.devices.cgm import CgmDriver
from drivers.devices.errors import (
    ConnectionLost,
    NotificationOverflow,
    PairingRequired,
    ProcedureTimeout,
    RacpError,
    SessionNotRunning,
    TransferIncomplete,
)
from drivers.devices.meter import GlucoseMeterDriver
from drivers.devices.pump import InsulinPumpDriver

__all__ = [
    "CgmDriver",
    "ConnectionLost",
    "DeviceDriver",
    "DriverStats",
    "GlucoseMeterDriver",
    "InsulinPumpDriver",
    "NotificationOverflow",
    "PairingRequired",
    "ProcedureTimeout",
    "RacpError",
    "SessionNotRunning",
    "TransferIncomplete",
]
