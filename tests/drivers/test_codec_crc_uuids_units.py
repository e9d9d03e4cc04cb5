"""E2E-CRC (CRC-16/MCRF4XX), SIG UUIDs and the one glucose conversion constant."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import uuids
from drivers.crc import append_crc, crc16_mcrf4xx, strip_crc
from drivers.errors import CRCError, DecodeError
from drivers.units import MG_DL_PER_MMOL_L, to_mg_dl, to_mmol_l
from tests.drivers.codec_strategies import ROUND_TRIP


def test_crc_check_value() -> None:
    assert crc16_mcrf4xx(b"123456789") == 0x6F91  # not CCITT-FALSE 0x29B1, not KERMIT 0x2189


def test_crc_cgms_spec_example() -> None:
    # CGMS 1.0.1 §3.11 example; the PDF prints it byte-swapped as 0x012F
    data = bytes.fromhex("3e010203040506070809")
    assert crc16_mcrf4xx(data) == 0x2F01
    assert append_crc(data)[-2:] == b"\x01\x2f"  # least significant octet first


def test_crc_empty_is_seed() -> None:
    assert crc16_mcrf4xx(b"") == 0xFFFF


def test_strip_crc() -> None:
    assert strip_crc("X", bytes.fromhex("3e010203040506070809012f")) == bytes.fromhex(
        "3e010203040506070809"
    )
    with pytest.raises(CRCError) as err:
        strip_crc("X", bytes.fromhex("3e0102030405060708092f01"))  # big-endian CRC
    assert (err.value.received, err.value.calculated) == (0x012F, 0x2F01)
    with pytest.raises(DecodeError):
        strip_crc("X", b"\x01")


@ROUND_TRIP
@given(st.binary(max_size=40))
def test_crc_round_trip(data: bytes) -> None:
    assert strip_crc("X", append_crc(data)) == data


def test_uuids() -> None:
    assert uuids.sig_uuid(0x2A18) == "00002a18-0000-1000-8000-00805f9b34fb"
    assert uuids.GLUCOSE_SERVICE == "00001808-0000-1000-8000-00805f9b34fb"
    assert uuids.short_uuid(uuids.IDD_HISTORY_DATA) == 0x2B28
    assert uuids.short_uuid("12345678-1234-1234-1234-123456789abc") is None
    expected = {
        "GLUCOSE_SERVICE": 0x1808,
        "CGM_SERVICE": 0x181F,
        "INSULIN_DELIVERY_SERVICE": 0x183A,
        "DEVICE_INFORMATION_SERVICE": 0x180A,
        "BATTERY_SERVICE": 0x180F,
        "CURRENT_TIME_SERVICE": 0x1805,
        "GLUCOSE_MEASUREMENT": 0x2A18,
        "GLUCOSE_MEASUREMENT_CONTEXT": 0x2A34,
        "GLUCOSE_FEATURE": 0x2A51,
        "RECORD_ACCESS_CONTROL_POINT": 0x2A52,
        "CGM_MEASUREMENT": 0x2AA7,
        "CGM_FEATURE": 0x2AA8,
        "CGM_STATUS": 0x2AA9,
        "CGM_SESSION_START_TIME": 0x2AAA,
        "CGM_SESSION_RUN_TIME": 0x2AAB,
        "CGM_SPECIFIC_OPS_CONTROL_POINT": 0x2AAC,
        "IDD_STATUS_CHANGED": 0x2B20,
        "IDD_STATUS": 0x2B21,
        "IDD_ANNUNCIATION_STATUS": 0x2B22,
        "IDD_FEATURES": 0x2B23,
        "IDD_STATUS_READER_CONTROL_POINT": 0x2B24,
        "IDD_COMMAND_CONTROL_POINT": 0x2B25,
        "IDD_COMMAND_DATA": 0x2B26,
        "IDD_RECORD_ACCESS_CONTROL_POINT": 0x2B27,
        "IDD_HISTORY_DATA": 0x2B28,
        "MANUFACTURER_NAME_STRING": 0x2A29,
        "MODEL_NUMBER_STRING": 0x2A24,
        "SERIAL_NUMBER_STRING": 0x2A25,
        "FIRMWARE_REVISION_STRING": 0x2A26,
        "BATTERY_LEVEL": 0x2A19,
        "CURRENT_TIME": 0x2A2B,
    }
    assert {name: uuids.short_uuid(getattr(uuids, name)) for name in expected} == expected
    with pytest.raises(ValueError):
        uuids.sig_uuid(0x10000)


def test_units() -> None:
    assert MG_DL_PER_MMOL_L == 18.01559
    assert to_mg_dl(0.00112, "kg/L") == 112.0  # SFLOAT 0xB070
    assert to_mg_dl(0.001, "kg/L") == 100.0  # SFLOAT 0xD001
    assert to_mmol_l(0.005, "mol/L") == 5.0  # SFLOAT 0xD005
    assert to_mg_dl(0.005, "mol/L") == 5 * 18.01559
    assert to_mg_dl(5.0, "mmol/L") == 90.07795
    assert to_mmol_l(90.07795, "mg/dL") == 5.0
    with pytest.raises(ValueError):
        to_mg_dl(1.0, "g/L")
