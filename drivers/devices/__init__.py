"""Device drivers written only against the bleak API; one module per device family."""

from drivers.devices.base import DeviceDriver, DriverStats, RacpError
from drivers.devices.cgm import CgmDriver
from drivers.devices.meter import GlucoseMeterDriver

__all__ = ["CgmDriver", "DeviceDriver", "DriverStats", "GlucoseMeterDriver", "RacpError"]
