"""Record Access Control Point requests and responses (GLS and CGMS filters)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.crc import append_crc
from drivers.errors import CRCError, DecodeError, EncodeError
from drivers.racp import (
    CgmsFilterType,
    GlsFilterType,
    RacpOpcode,
    RacpOperator,
    RacpProfile,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
    decode_racp,
)
from drivers.sigtime import DateTime
from tests.drivers.codec_strategies import (
    FUZZ,
    ROUND_TRIP,
    only_decode_errors,
    racp_requests,
    racp_responses,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("0101", RacpRequest(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)),
        ("0300", RacpRequest(RacpOpcode.ABORT_OPERATION, RacpOperator.NULL)),
        (
            "0405",
            RacpRequest(RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.FIRST_RECORD),
        ),
        ("0206", RacpRequest(RacpOpcode.DELETE_STORED_RECORDS, RacpOperator.LAST_RECORD)),
        (
            "0103 01 0a00",
            RacpRequest(
                RacpOpcode.REPORT_STORED_RECORDS,
                RacpOperator.GREATER_THAN_OR_EQUAL_TO,
                GlsFilterType.SEQUENCE_NUMBER,
                (10,),
            ),
        ),
        (
            "0104 01 0a00 1400",
            RacpRequest(
                RacpOpcode.REPORT_STORED_RECORDS,
                RacpOperator.WITHIN_RANGE_OF,
                GlsFilterType.SEQUENCE_NUMBER,
                (10, 20),
            ),
        ),
        (
            "0102 02 e4070c1f173b3b",
            RacpRequest(
                RacpOpcode.REPORT_STORED_RECORDS,
                RacpOperator.LESS_THAN_OR_EQUAL_TO,
                GlsFilterType.USER_FACING_TIME,
                (DateTime(2020, 12, 31, 23, 59, 59),),
            ),
        ),
    ],
)
def test_gls_requests(data: str, expected: RacpRequest) -> None:
    assert RacpRequest.from_bytes(h(data)) == expected
    assert decode_racp(h(data)) == expected
    assert bytes(expected) == h(data)


def test_cgms_time_offset_filter_with_crc() -> None:
    request = RacpRequest(
        RacpOpcode.REPORT_STORED_RECORDS,
        RacpOperator.GREATER_THAN_OR_EQUAL_TO,
        CgmsFilterType.TIME_OFFSET,
        (300,),
    )
    wire = append_crc(h("0103 01 2c01"))
    assert request.encode(crc=True) == wire
    assert RacpRequest.from_bytes(wire, profile=RacpProfile.CGMS, crc_expected=True) == request
    with pytest.raises(CRCError):
        RacpRequest.from_bytes(wire[:-1] + b"\x00", profile=RacpProfile.CGMS, crc_expected=True)
    with pytest.raises(DecodeError):  # CGMS has no filter type 2
        RacpRequest.from_bytes(h("0102 02 e4070c1f173b3b"), profile=RacpProfile.CGMS)


def test_responses() -> None:
    assert RacpResponse.from_bytes(h("0500 2c01")) == RacpResponse.count(300)
    assert RacpResponse.from_bytes(h("0600 0106")) == RacpResponse(
        RacpOpcode.RESPONSE_CODE, None, 1, RacpResponseCode.NO_RECORDS_FOUND
    )
    assert decode_racp(h("0600 0101")) == RacpResponse.code(1, RacpResponseCode.SUCCESS)
    assert bytes(RacpResponse.count(0)) == h("0500 0000")
    assert RacpResponse.code(0x09, RacpResponseCode.OP_CODE_NOT_SUPPORTED).encode(
        crc=True
    ) == append_crc(h("0600 0902"))


@pytest.mark.parametrize(
    "data",
    [
        "",
        "01",  # no operator
        "0100",  # report with Null operator
        "0301",  # abort with an operator
        "0107",  # operator 7 RFU
        "0103 03 0a00",  # filter type 3 RFU
        "0103 01 0a",  # truncated filter value
        "0104 01 0a00",  # within range needs two values
        "0101 00",  # trailing octet
        "0500 01",  # 1-octet count (Nordic accepts; GLS defines uint16)
        "0500 01000000",  # 4-octet count
        "0501 0100",  # response with an operator
        "0600 0100",  # response code 0 RFU
        "0600 010a",  # response code 10 RFU
        "0700",  # op code 7 RFU
    ],
)
def test_rejects(data: str) -> None:
    with pytest.raises(DecodeError):
        decode_racp(h(data))


def test_construction_checks() -> None:
    with pytest.raises(EncodeError):
        RacpRequest(RacpOpcode.RESPONSE_CODE, RacpOperator.NULL)
    with pytest.raises(EncodeError):
        RacpRequest(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS, None, (1,))
    with pytest.raises(EncodeError):
        RacpRequest(
            RacpOpcode.REPORT_STORED_RECORDS,
            RacpOperator.LESS_THAN_OR_EQUAL_TO,
            GlsFilterType.USER_FACING_TIME,
            (5,),
        )
    with pytest.raises(EncodeError):
        RacpResponse.count(70000)


@FUZZ
@given(st.binary(max_size=20), st.sampled_from(RacpProfile), st.booleans())
def test_fuzz_racp(data: bytes, profile: RacpProfile, crc: bool) -> None:
    only_decode_errors(lambda d: decode_racp(d, profile=profile, crc_expected=crc), data)


@ROUND_TRIP
@given(racp_requests(), racp_responses, st.booleans())
def test_round_trip_racp(request: RacpRequest, response: RacpResponse, crc: bool) -> None:
    profile = request.profile or RacpProfile.GLS
    wire = request.encode(crc=crc)
    assert RacpRequest.from_bytes(wire, profile=profile, crc_expected=crc) == request
    assert RacpResponse.from_bytes(response.encode(crc=crc), crc_expected=crc) == response
