"""Bluetooth SIG personal-health profiles: pure codecs, bleak drivers, virtual peripherals.

Nothing here knows about MQTT or databases: bytes in, typed records out.
"""

from drivers.errors import CRCError, DecodeError, DriversError, EncodeError
from drivers.records import DeviceIdentity, DeviceKind, DeviceRecord, RecordKind

__all__ = [
    "CRCError",
    "DecodeError",
    "DeviceIdentity",
    "DeviceKind",
    "DeviceRecord",
    "DriversError",
    "EncodeError",
    "RecordKind",
]
