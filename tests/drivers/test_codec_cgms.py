"""CGM Measurement, Feature, Status, Session Start/Run Time and SOCP."""

from __future__ import annotations

from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.cgms import (
    CgmCalibration,
    CgmCalibrationStatus,
    CgmCalTempOctet,
    CgmFeature,
    CgmFeatureBits,
    CgmMeasurement,
    CgmSocp,
    CgmSocpOpcode,
    CgmSocpResponseCode,
    CgmStatus,
    CgmStatusOctet,
    CgmWarningOctet,
    SessionRunTime,
    SessionStartTime,
    encode_cgm_measurements,
    parse_cgm_measurements,
)
from drivers.crc import append_crc
from drivers.errors import CRCError, DecodeError, EncodeError
from drivers.gls import GlucoseType, SampleLocation
from drivers.ieee11073 import SFloat
from drivers.sigtime import DateTime, DstOffset, TimeZone
from tests.drivers.codec_strategies import (
    FUZZ,
    ROUND_TRIP,
    cgm_features,
    cgm_measurements,
    cgm_socps,
    cgm_statuses,
    only_decode_errors,
    session_run_times,
    session_start_times,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def g(value: float) -> SFloat:
    return SFloat.from_value(value)


# --- CGM Measurement -------------------------------------------------------------------


def test_minimal_record() -> None:
    assert parse_cgm_measurements(h("06 00 7800 0500"), crc_expected=False) == [
        CgmMeasurement(g(120), 5)
    ]


def test_all_three_annunciation_octets_status_first() -> None:
    # flags 0xE0: Status, Cal/Temp, Warning, in that order on the wire
    record = CgmMeasurement.from_bytes(h("09 e0 7800 0500 02 08 10"), crc_expected=False)
    assert record == CgmMeasurement(
        g(120),
        5,
        status=CgmStatusOctet.DEVICE_BATTERY_LOW,
        cal_temp=CgmCalTempOctet.CALIBRATION_REQUIRED,
        warning=CgmWarningOctet.RATE_OF_DECREASE_EXCEEDED,
    )
    assert record.annunciation == 0x100802


def test_lone_warning_octet_is_warning() -> None:
    # flags 0x20 (Warning-Octet present): the one octet is the Warning octet
    record = CgmMeasurement.from_bytes(h("07 20 7800 0500 01"), crc_expected=False)
    assert record == CgmMeasurement(
        g(120), 5, warning=CgmWarningOctet.RESULT_LOWER_THAN_PATIENT_LOW_LEVEL
    )


def test_lone_status_octet_is_status() -> None:
    record = CgmMeasurement.from_bytes(h("07 80 7800 0500 01"), crc_expected=False)
    assert record == CgmMeasurement(g(120), 5, status=CgmStatusOctet.SESSION_STOPPED)


@pytest.mark.parametrize(
    ("flags", "octets", "expected"),
    [
        (0xC0, "01 02", {"status": CgmStatusOctet(1), "cal_temp": CgmCalTempOctet(2)}),
        (0xA0, "01 02", {"status": CgmStatusOctet(1), "warning": CgmWarningOctet(2)}),
        (0x60, "01 02", {"cal_temp": CgmCalTempOctet(1), "warning": CgmWarningOctet(2)}),
        (0x40, "04", {"cal_temp": CgmCalTempOctet.CALIBRATION_RECOMMENDED}),
    ],
)
def test_two_or_one_octets_in_significance_order(
    flags: int, octets: str, expected: dict[str, object]
) -> None:
    data = bytes([6 + len(h(octets)), flags]) + h("7800 0500") + h(octets)
    record = CgmMeasurement.from_bytes(data, crc_expected=False)
    assert record == CgmMeasurement(g(120), 5, **expected)  # type: ignore[arg-type]
    assert bytes(record) == data


def test_trend_and_quality_after_annunciation() -> None:
    data = h("0d e3 5a00 1e00 20 00 40 f1ff 5f00")
    record = CgmMeasurement.from_bytes(data, crc_expected=False)
    assert record == CgmMeasurement(
        g(90),
        30,
        status=CgmStatusOctet.GENERAL_DEVICE_FAULT,
        cal_temp=CgmCalTempOctet(0),
        warning=CgmWarningOctet.RESULT_LOWER_THAN_DEVICE_CAN_PROCESS,
        trend_mg_dl_min=SFloat.from_raw(0xFFF1),  # -15 x 10**-1
        quality_pct=g(95),
    )
    assert record.size == 13
    assert record.trend_mg_dl_min is not None and record.trend_mg_dl_min.value == -1.5
    assert bytes(record) == data


def test_record_with_crc() -> None:
    body = h("08 00 7800 0500")  # Size 8 = 6 + CRC
    data = append_crc(body)
    assert parse_cgm_measurements(data, crc_expected=True) == [
        CgmMeasurement(g(120), 5, e2e_crc=True)
    ]
    assert parse_cgm_measurements(data, crc_expected=None) == [
        CgmMeasurement(g(120), 5, e2e_crc=True)
    ]
    assert bytes(CgmMeasurement(g(120), 5, e2e_crc=True)) == data


def test_bad_crc() -> None:
    data = bytearray(append_crc(h("08 00 7800 0500")))
    data[-1] ^= 0xFF
    with pytest.raises(CRCError):
        parse_cgm_measurements(bytes(data), crc_expected=True)
    with pytest.raises(CRCError):
        parse_cgm_measurements(bytes(data), crc_expected=None)


@pytest.mark.parametrize("placeholder", [0x1234, 0xABCD, 0x0000, 0xFFFF])
def test_placeholder_crcs_rejected(placeholder: int) -> None:
    data = h("08 00 7800 0500") + placeholder.to_bytes(2, "little")
    with pytest.raises(CRCError):
        parse_cgm_measurements(data, crc_expected=True)


def test_multi_record_notification() -> None:
    first = CgmMeasurement(g(100), 0, status=CgmStatusOctet.DEVICE_BATTERY_LOW)
    second = CgmMeasurement(g(105), 5, trend_mg_dl_min=g(1), quality_pct=g(99))
    third = CgmMeasurement(g(110), 10, warning=CgmWarningOctet.RESULT_HIGHER_THAN_HYPER_LEVEL)
    data = encode_cgm_measurements([first, second, third])
    assert data == h("07 80 6400 0000 02") + h("0a 03 6900 0500 0100 6300") + h(
        "07 20 6e00 0a00 08"
    )
    assert parse_cgm_measurements(data, crc_expected=False) == [first, second, third]


def test_multi_record_with_crc_and_one_bad() -> None:
    records = [CgmMeasurement(g(100 + i), 5 * i, e2e_crc=True) for i in range(3)]
    data = bytearray(encode_cgm_measurements(records))
    assert parse_cgm_measurements(bytes(data), crc_expected=True) == records
    data[8 + 3] ^= 0x01  # glucose of the second record
    with pytest.raises(CRCError):
        parse_cgm_measurements(bytes(data), crc_expected=True)


@pytest.mark.parametrize(
    ("data", "crc_expected"),
    [
        ("", False),
        ("05 00 7800 05", False),  # Size below 6
        ("06 00 7800 05", False),  # Size overruns
        ("07 00 7800 0500 00", False),  # Size 7 but flags imply 6
        ("06 00 7800 0500", True),  # CRC expected, Size leaves no room
        ("08 00 7800 0500 0000", False),  # CRC not expected
        ("07 00 7800 0500 00", None),  # Size matches neither 6 nor 8
        ("06 04 7800 0500", False),  # RFU flag bit 2
        ("06 00 7800 0500 06", False),  # second record truncated
        ("00", False),  # Size 0 would never advance
    ],
)
def test_measurement_rejects(data: str, crc_expected: bool | None) -> None:
    with pytest.raises(DecodeError):
        parse_cgm_measurements(h(data), crc_expected=crc_expected)


def test_measurement_checks() -> None:
    with pytest.raises(EncodeError):
        CgmMeasurement(g(1), 0x10000)
    with pytest.raises(EncodeError):
        encode_cgm_measurements([])
    with pytest.raises(DecodeError):  # two records where one was asked for
        CgmMeasurement.from_bytes(h("06 00 7800 0500 06 00 7800 0500"), crc_expected=False)


# --- CGM Feature -------------------------------------------------------------------------


def test_feature_without_e2e() -> None:
    data = h("01 80 00 19 ffff")  # calibration + trend; ISF (low nibble 9), finger (1)
    value = CgmFeature.from_bytes(data)
    assert value == CgmFeature(
        CgmFeatureBits.CALIBRATION | CgmFeatureBits.CGM_TREND_INFORMATION,
        GlucoseType.INTERSTITIAL_FLUID,
        SampleLocation.FINGER,
    )
    assert not value.e2e_crc_supported
    assert bytes(value) == data


def test_feature_with_e2e() -> None:
    body = h("00 10 01 59")  # E2E-CRC + CGM quality; ISF, subcutaneous tissue
    data = append_crc(body)
    value = CgmFeature.from_bytes(data)
    assert value == CgmFeature(
        CgmFeatureBits.E2E_CRC | CgmFeatureBits.CGM_QUALITY,
        GlucoseType.INTERSTITIAL_FLUID,
        SampleLocation.SUBCUTANEOUS_TISSUE,
    )
    assert value.e2e_crc_supported
    assert bytes(value) == data


@pytest.mark.parametrize("crc", ["3412", "cdab"])
def test_feature_placeholder_crc_rejected(crc: str) -> None:
    with pytest.raises(CRCError):
        CgmFeature.from_bytes(h("00 10 00 59") + h(crc))


def test_feature_without_e2e_needs_ffff() -> None:
    with pytest.raises(DecodeError):
        CgmFeature.from_bytes(h("01 00 00 59 3412"))
    with pytest.raises(DecodeError):
        CgmFeature.from_bytes(h("01 00 00 59 ff"))


# --- CGM Status, Session Start Time, Session Run Time ----------------------------------


def test_status() -> None:
    assert CgmStatus.from_bytes(h("1e00 01 02 04")) == CgmStatus(
        30,
        CgmStatusOctet.SESSION_STOPPED,
        CgmCalTempOctet.CALIBRATION_NOT_ALLOWED,
        CgmWarningOctet.RESULT_LOWER_THAN_HYPO_LEVEL,
    )
    data = append_crc(h("1e00 01 02 04"))
    assert CgmStatus.from_bytes(data) == CgmStatus(
        30,
        CgmStatusOctet.SESSION_STOPPED,
        CgmCalTempOctet.CALIBRATION_NOT_ALLOWED,
        CgmWarningOctet.RESULT_LOWER_THAN_HYPO_LEVEL,
        e2e_crc=True,
    )
    assert CgmStatus.from_bytes(data, crc_expected=True).e2e_crc
    with pytest.raises(DecodeError):
        CgmStatus.from_bytes(data, crc_expected=False)
    with pytest.raises(CRCError):
        CgmStatus.from_bytes(h("1e00 01 02 04 cdab"))  # placeholder
    with pytest.raises(DecodeError):
        CgmStatus.from_bytes(h("1e00 01 02"))


def test_session_start_time_zone_is_in_quarter_hours() -> None:
    value = SessionStartTime.from_bytes(h("e4070c1f173b3b 08 04"))
    assert value == SessionStartTime(
        DateTime(2020, 12, 31, 23, 59, 59), TimeZone(8), DstOffset.DAYLIGHT_TIME
    )
    assert value.time_zone_min == 120  # not 8 (Nordic's callback)
    assert value.dst_offset_min == 60
    assert value.utc_offset_min == 180


def test_session_start_time_crc_and_rejects() -> None:
    body = h("e4070c1f173b3b 80 ff")  # unknown zone and DST
    value = SessionStartTime.from_bytes(append_crc(body))
    assert value.e2e_crc and value.time_zone_min is None and value.dst_offset_min is None
    assert value.utc_offset_min is None
    with pytest.raises(CRCError):
        SessionStartTime.from_bytes(body + h("3412"))
    with pytest.raises(DecodeError):
        SessionStartTime.from_bytes(h("e4070c1f173b3b 08 03"))  # DST code 3 RFU
    with pytest.raises(DecodeError):
        SessionStartTime.from_bytes(h("e4070c1f173b3b 39 00"))  # zone 57


def test_session_run_time() -> None:
    assert SessionRunTime.from_bytes(h("a800")) == SessionRunTime(168)
    assert SessionRunTime.from_bytes(append_crc(h("a800"))) == SessionRunTime(168, True)
    with pytest.raises(CRCError):
        SessionRunTime.from_bytes(h("a800 3412"))
    with pytest.raises(DecodeError):
        SessionRunTime.from_bytes(h("a8"))


# --- SOCP --------------------------------------------------------------------------------


def test_socp_vectors() -> None:
    assert CgmSocp.from_bytes(h("01 05")) == CgmSocp(
        CgmSocpOpcode.SET_COMMUNICATION_INTERVAL, value=5
    )
    assert CgmSocp.from_bytes(h("1a")) == CgmSocp(CgmSocpOpcode.START_SESSION)
    assert CgmSocp.from_bytes(h("1c 1a 01")) == CgmSocp(
        CgmSocpOpcode.RESPONSE_CODE, request_opcode=26, response_code=CgmSocpResponseCode.SUCCESS
    )
    assert CgmSocp.from_bytes(h("0d 4600")) == CgmSocp(
        CgmSocpOpcode.SET_HYPO_ALERT_LEVEL, level=g(70)
    )
    assert CgmSocp.from_bytes(append_crc(h("0e"))) == CgmSocp(
        CgmSocpOpcode.GET_HYPO_ALERT_LEVEL, e2e_crc=True
    )
    cal = h("7800 0a00 19 f000 0300 04")
    assert CgmSocp.from_bytes(h("04") + cal) == CgmSocp(
        CgmSocpOpcode.SET_GLUCOSE_CALIBRATION_VALUE,
        calibration=CgmCalibration(
            g(120),
            10,
            GlucoseType.INTERSTITIAL_FLUID,
            SampleLocation.FINGER,
            240,
            3,
            CgmCalibrationStatus.PROCESS_PENDING,
        ),
    )


@pytest.mark.parametrize(
    "data",
    ["", "00", "1d", "01", "1c 1a 06", "1a 00 00 00", "0e 00", "04 7800"],
)
def test_socp_rejects(data: str) -> None:
    with pytest.raises(DecodeError):
        CgmSocp.from_bytes(h(data))


def test_socp_checks() -> None:
    with pytest.raises(EncodeError):
        CgmSocp(CgmSocpOpcode.SET_COMMUNICATION_INTERVAL)
    with pytest.raises(EncodeError):
        CgmSocp(CgmSocpOpcode.START_SESSION, value=1)
    with pytest.raises(EncodeError):
        CgmSocp(CgmSocpOpcode.SET_COMMUNICATION_INTERVAL, value=256)


# --- properties --------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=24), st.sampled_from([True, False, None]))
def test_fuzz_cgms(data: bytes, crc: bool | None) -> None:
    only_decode_errors(lambda d: parse_cgm_measurements(d, crc_expected=crc), data)
    only_decode_errors(CgmFeature.from_bytes, data)
    only_decode_errors(lambda d: CgmStatus.from_bytes(d, crc_expected=crc), data)
    only_decode_errors(lambda d: SessionStartTime.from_bytes(d, crc_expected=crc), data)
    only_decode_errors(lambda d: SessionRunTime.from_bytes(d, crc_expected=crc), data)
    only_decode_errors(lambda d: CgmSocp.from_bytes(d, crc_expected=crc), data)


@FUZZ
@given(st.lists(cgm_measurements, min_size=1, max_size=3), st.integers(0, 40), st.integers(0, 255))
def test_fuzz_cgm_mutations(records: list[CgmMeasurement], index: int, xor: int) -> None:
    data = bytearray(encode_cgm_measurements(records))
    data[index % len(data)] ^= xor
    for crc in (True, False, None):
        only_decode_errors(partial(parse_cgm_measurements, crc_expected=crc), bytes(data))


@ROUND_TRIP
@given(st.lists(cgm_measurements, min_size=1, max_size=4))
def test_round_trip_cgm_measurements(records: list[CgmMeasurement]) -> None:
    data = encode_cgm_measurements(records)
    assert parse_cgm_measurements(data, crc_expected=None) == records
    for crc in (True, False):
        same = [r for r in records if r.e2e_crc == crc]
        if same:
            assert parse_cgm_measurements(encode_cgm_measurements(same), crc_expected=crc) == same


@ROUND_TRIP
@given(cgm_features, cgm_statuses, session_start_times, session_run_times, cgm_socps())
def test_round_trip_cgms_others(
    feature: CgmFeature,
    status: CgmStatus,
    start: SessionStartTime,
    run: SessionRunTime,
    socp: CgmSocp,
) -> None:
    assert CgmFeature.from_bytes(bytes(feature)) == feature
    assert CgmStatus.from_bytes(bytes(status)) == status
    assert CgmStatus.from_bytes(bytes(status), crc_expected=status.e2e_crc) == status
    assert SessionStartTime.from_bytes(bytes(start)) == start
    assert SessionRunTime.from_bytes(bytes(run)) == run
    assert CgmSocp.from_bytes(bytes(socp)) == socp
    assert CgmSocp.from_bytes(bytes(socp), crc_expected=socp.e2e_crc) == socp
