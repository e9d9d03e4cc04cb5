"""Virtual BLE peripherals on bumble: glucose meter, CGM and insulin pump with synthetic
data on a simulated clock, fault switches, and ground truth (``produced``) for
end-to-end checks."""

from drivers.virtual.cgm import VirtualCgm
from drivers.virtual.clock import SimClock
from drivers.virtual.meter import VirtualMeter
from drivers.virtual.peripheral import Produced, VirtualPeripheral
from drivers.virtual.pump import VirtualPump
from drivers.virtual.world import VirtualWorld

__all__ = [
    "Produced",
    "SimClock",
    "VirtualCgm",
    "VirtualMeter",
    "VirtualPeripheral",
    "VirtualPump",
    "VirtualWorld",
]
