"""Bluetooth SIG UUIDs for the services and characteristics the drivers use.

All are 16-bit assigned numbers (Bluetooth SIG Assigned Numbers, §3.4 services and §3.8
characteristics) expanded onto the Bluetooth Base UUID
``0000xxxx-0000-1000-8000-00805F9B34FB`` (Core Spec Vol 3 Part B §2.5.1), lowercase as
bleak reports them.
"""

from __future__ import annotations

from typing import Final

BASE_UUID_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"  # Core Vol 3 Part B §2.5.1


def sig_uuid(short: int) -> str:
    """The 128-bit lowercase string for a 16-bit SIG number: 0x2A18 -> '00002a18-...'."""
    if isinstance(short, bool) or not isinstance(short, int) or not 0 <= short <= 0xFFFF:
        raise ValueError(f"not a 16-bit assigned number: {short!r}")
    return f"0000{short:04x}{BASE_UUID_SUFFIX}"


def short_uuid(uuid: str) -> int | None:
    """The 16-bit number of a SIG base UUID, None for any other UUID."""
    text = uuid.lower()
    if len(text) == 36 and text.startswith("0000") and text.endswith(BASE_UUID_SUFFIX):
        try:
            return int(text[4:8], 16)
        except ValueError:
            return None
    return None


# --- services (Assigned Numbers §3.4) -------------------------------------------------
GLUCOSE_SERVICE: Final = sig_uuid(0x1808)  # GLS
CGM_SERVICE: Final = sig_uuid(0x181F)  # CGMS
INSULIN_DELIVERY_SERVICE: Final = sig_uuid(0x183A)  # IDS
DEVICE_INFORMATION_SERVICE: Final = sig_uuid(0x180A)  # DIS
BATTERY_SERVICE: Final = sig_uuid(0x180F)  # BAS
CURRENT_TIME_SERVICE: Final = sig_uuid(0x1805)  # CTS

# --- Glucose Service (GLS 1.0) ----------------------------------------------------------
GLUCOSE_MEASUREMENT: Final = sig_uuid(0x2A18)
GLUCOSE_MEASUREMENT_CONTEXT: Final = sig_uuid(0x2A34)
GLUCOSE_FEATURE: Final = sig_uuid(0x2A51)
RECORD_ACCESS_CONTROL_POINT: Final = sig_uuid(0x2A52)  # shared by GLS and CGMS

# --- Continuous Glucose Monitoring Service (CGMS 1.0.1) --------------------------------
CGM_MEASUREMENT: Final = sig_uuid(0x2AA7)
CGM_FEATURE: Final = sig_uuid(0x2AA8)
CGM_STATUS: Final = sig_uuid(0x2AA9)
CGM_SESSION_START_TIME: Final = sig_uuid(0x2AAA)
CGM_SESSION_RUN_TIME: Final = sig_uuid(0x2AAB)
CGM_SPECIFIC_OPS_CONTROL_POINT: Final = sig_uuid(0x2AAC)

# --- Insulin Delivery Service (IDS 1.0) --------------------------------------------------
IDD_STATUS_CHANGED: Final = sig_uuid(0x2B20)
IDD_STATUS: Final = sig_uuid(0x2B21)
IDD_ANNUNCIATION_STATUS: Final = sig_uuid(0x2B22)
IDD_FEATURES: Final = sig_uuid(0x2B23)
IDD_STATUS_READER_CONTROL_POINT: Final = sig_uuid(0x2B24)
IDD_COMMAND_CONTROL_POINT: Final = sig_uuid(0x2B25)
IDD_COMMAND_DATA: Final = sig_uuid(0x2B26)
IDD_RECORD_ACCESS_CONTROL_POINT: Final = sig_uuid(0x2B27)
IDD_HISTORY_DATA: Final = sig_uuid(0x2B28)

# --- Device Information Service (DIS 1.1) ------------------------------------------------
MANUFACTURER_NAME_STRING: Final = sig_uuid(0x2A29)
MODEL_NUMBER_STRING: Final = sig_uuid(0x2A24)
SERIAL_NUMBER_STRING: Final = sig_uuid(0x2A25)
FIRMWARE_REVISION_STRING: Final = sig_uuid(0x2A26)

# --- Battery Service (BAS 1.0) and Current Time Service (CTS 1.1) -----------------------
BATTERY_LEVEL: Final = sig_uuid(0x2A19)
CURRENT_TIME: Final = sig_uuid(0x2A2B)

# --- GATT descriptors (Assigned Numbers §3.7) --------------------------------------------
CLIENT_CHARACTERISTIC_CONFIGURATION: Final = sig_uuid(0x2902)

NAMES: Final[dict[str, str]] = {
    GLUCOSE_SERVICE: "Glucose",
    CGM_SERVICE: "Continuous Glucose Monitoring",
    INSULIN_DELIVERY_SERVICE: "Insulin Delivery",
    DEVICE_INFORMATION_SERVICE: "Device Information",
    BATTERY_SERVICE: "Battery",
    CURRENT_TIME_SERVICE: "Current Time",
    GLUCOSE_MEASUREMENT: "Glucose Measurement",
    GLUCOSE_MEASUREMENT_CONTEXT: "Glucose Measurement Context",
    GLUCOSE_FEATURE: "Glucose Feature",
    RECORD_ACCESS_CONTROL_POINT: "Record Access Control Point",
    CGM_MEASUREMENT: "CGM Measurement",
    CGM_FEATURE: "CGM Feature",
    CGM_STATUS: "CGM Status",
    CGM_SESSION_START_TIME: "CGM Session Start Time",
    CGM_SESSION_RUN_TIME: "CGM Session Run Time",
    CGM_SPECIFIC_OPS_CONTROL_POINT: "CGM Specific Ops Control Point",
    IDD_STATUS_CHANGED: "IDD Status Changed",
    IDD_STATUS: "IDD Status",
    IDD_ANNUNCIATION_STATUS: "IDD Annunciation Status",
    IDD_FEATURES: "IDD Features",
    IDD_STATUS_READER_CONTROL_POINT: "IDD Status Reader Control Point",
    IDD_COMMAND_CONTROL_POINT: "IDD Command Control Point",
    IDD_COMMAND_DATA: "IDD Command Data",
    IDD_RECORD_ACCESS_CONTROL_POINT: "IDD Record Access Control Point",
    IDD_HISTORY_DATA: "IDD History Data",
    MANUFACTURER_NAME_STRING: "Manufacturer Name String",
    MODEL_NUMBER_STRING: "Model Number String",
    SERIAL_NUMBER_STRING: "Serial Number String",
    FIRMWARE_REVISION_STRING: "Firmware Revision String",
    BATTERY_LEVEL: "Battery Level",
    CURRENT_TIME: "Current Time",
    CLIENT_CHARACTERISTIC_CONFIGURATION: "Client Characteristic Configuration",
}
