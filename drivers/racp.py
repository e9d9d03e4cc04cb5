"""Record Access Control Point (0x2A52) as used by GLS and CGMS.

PDU: Op Code (uint8) · Operator (uint8) · Operand (variable) · [E2E-CRC, CGMS only]
(GLS 1.0 §3.4 / CGMS 1.0.1 §3.6, record_access_control_point XML).

* Requests (op codes 1-4) with operators 2-4 carry a filter: Filter Type (uint8) then
  one value (<=, >=) or a minimum and a maximum (within range, inclusive). GLS filter
  types: 1 Sequence Number (uint16), 2 User Facing Time (Date Time). CGMS: 1 Time Offset
  (uint16). The other operators carry no operand.
* Number of Stored Records response (op code 5, operator Null): uint16 count (GLS
  §3.4.1.x; 1- or 4-octet counts are rejected, see docs/ble-profiles.md).
* Response Code (op code 6, operator Null): Request Op Code (uint8) · Response Code Value
  (uint8, 1..9).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Final

from drivers import _wire
from drivers._wire import Reader, build, check_enum, check_range
from drivers.crc import append_crc, strip_crc
from drivers.errors import DecodeError, EncodeError
from drivers.sigtime import DateTime

CHARACTERISTIC: Final = "Record Access Control Point"


class RacpOpcode(IntEnum):
    REPORT_STORED_RECORDS = 1
    DELETE_STORED_RECORDS = 2
    ABORT_OPERATION = 3
    REPORT_NUMBER_OF_STORED_RECORDS = 4
    NUMBER_OF_STORED_RECORDS_RESPONSE = 5
    RESPONSE_CODE = 6


REQUEST_OPCODES: Final = frozenset(
    {
        RacpOpcode.REPORT_STORED_RECORDS,
        RacpOpcode.DELETE_STORED_RECORDS,
        RacpOpcode.ABORT_OPERATION,
        RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
    }
)


class RacpOperator(IntEnum):
    NULL = 0
    ALL_RECORDS = 1
    LESS_THAN_OR_EQUAL_TO = 2
    GREATER_THAN_OR_EQUAL_TO = 3
    WITHIN_RANGE_OF = 4  # inclusive
    FIRST_RECORD = 5  # the oldest
    LAST_RECORD = 6  # the most recent


FILTERED_OPERATORS: Final = frozenset(
    {
        RacpOperator.LESS_THAN_OR_EQUAL_TO,
        RacpOperator.GREATER_THAN_OR_EQUAL_TO,
        RacpOperator.WITHIN_RANGE_OF,
    }
)


class RacpResponseCode(IntEnum):
    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9


class GlsFilterType(IntEnum):
    """GLS 1.0 RACP filter types."""

    SEQUENCE_NUMBER = 1  # uint16
    USER_FACING_TIME = 2  # Date Time (Base Time + Time Offset)


class CgmsFilterType(IntEnum):
    """CGMS 1.0.1 RACP filter type."""

    TIME_OFFSET = 1  # uint16 minutes


class RacpProfile(Enum):
    """Which service's filter types apply (the same op codes, different filters)."""

    GLS = "gls"
    CGMS = "cgms"


FilterType = GlsFilterType | CgmsFilterType
FilterValue = int | DateTime


def _filter_cls(profile: RacpProfile) -> type[GlsFilterType] | type[CgmsFilterType]:
    return GlsFilterType if profile is RacpProfile.GLS else CgmsFilterType


@dataclass(frozen=True, slots=True)
class RacpRequest:
    """A request written by the collector (op codes 1-4).

    ``operand`` holds the filter values: one for <= and >=, (min, max) for within range,
    none otherwise. Values are uint16 (sequence number, time offset) or DateTime (GLS
    user facing time).
    """

    opcode: RacpOpcode
    operator: RacpOperator
    filter_type: FilterType | None = None
    operand: tuple[FilterValue, ...] = ()

    def __post_init__(self) -> None:
        check_enum("opcode", self.opcode, RacpOpcode)
        check_enum("operator", self.operator, RacpOperator)
        if self.opcode not in REQUEST_OPCODES:
            raise EncodeError(f"{self.opcode.name} is a response op code, not a request")
        if self.opcode is RacpOpcode.ABORT_OPERATION and self.operator is not RacpOperator.NULL:
            raise EncodeError("abort takes the Null operator")
        if self.opcode is not RacpOpcode.ABORT_OPERATION and self.operator is RacpOperator.NULL:
            raise EncodeError(f"{self.opcode.name} needs an operator other than Null")
        if not isinstance(self.operand, tuple):
            raise EncodeError("operand must be a tuple")
        if self.operator in FILTERED_OPERATORS:
            if not isinstance(self.filter_type, GlsFilterType | CgmsFilterType):
                raise EncodeError(f"{self.operator.name} needs a filter type")
            want = 2 if self.operator is RacpOperator.WITHIN_RANGE_OF else 1
            if len(self.operand) != want:
                raise EncodeError(f"{self.operator.name} takes {want} operand value(s)")
            for value in self.operand:
                if self.filter_type is GlsFilterType.USER_FACING_TIME:
                    if not isinstance(value, DateTime):
                        raise EncodeError("user facing time filter values are DateTime")
                elif isinstance(value, DateTime):
                    raise EncodeError(f"{self.filter_type.name} filter values are uint16")
                else:
                    check_range("filter value", value, 0, 0xFFFF)
        elif self.filter_type is not None or self.operand:
            raise EncodeError(f"{self.operator.name} takes no operand")

    @property
    def profile(self) -> RacpProfile | None:
        if isinstance(self.filter_type, CgmsFilterType):
            return RacpProfile.CGMS
        if isinstance(self.filter_type, GlsFilterType):
            return RacpProfile.GLS
        return None

    def encode(self, *, crc: bool = False) -> bytes:
        out = bytearray((self.opcode, self.operator))
        if self.filter_type is not None:
            out += _wire.u8(self.filter_type)
            for value in self.operand:
                out += bytes(value) if isinstance(value, DateTime) else _wire.u16(value)
        return append_crc(bytes(out)) if crc else bytes(out)

    def __bytes__(self) -> bytes:
        return self.encode()

    @classmethod
    def from_bytes(
        cls, data: bytes, *, profile: RacpProfile = RacpProfile.GLS, crc_expected: bool = False
    ) -> RacpRequest:
        body = strip_crc(CHARACTERISTIC, data) if crc_expected else bytes(data)
        r = Reader(CHARACTERISTIC, body)
        opcode = r.enum(RacpOpcode, r.u8("Op Code"), "Op Code")
        if opcode not in REQUEST_OPCODES:
            raise r.error(f"{opcode.name} is not a request op code")
        operator = r.enum(RacpOperator, r.u8("Operator"), "Operator")
        filter_type: FilterType | None = None
        values: list[FilterValue] = []
        if operator in FILTERED_OPERATORS:
            filter_type = r.enum(_filter_cls(profile), r.u8("Filter Type"), "Filter Type")
            for i in range(2 if operator is RacpOperator.WITHIN_RANGE_OF else 1):
                what = f"filter value {i + 1}"
                if filter_type is GlsFilterType.USER_FACING_TIME:
                    values.append(DateTime.read(r, what))
                else:
                    values.append(r.u16(what))
        r.finish()
        return build(r, lambda: cls(opcode, operator, filter_type, tuple(values)))


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """An indication from the server: a record count (op code 5) or a response code (6)."""

    opcode: RacpOpcode
    number_of_records: int | None = None
    request_opcode: int | None = None
    response_code: RacpResponseCode | None = None

    def __post_init__(self) -> None:
        check_enum("opcode", self.opcode, RacpOpcode)
        if self.opcode is RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            if self.number_of_records is None:
                raise EncodeError("a number of stored records response needs the count")
            check_range("number_of_records", self.number_of_records, 0, 0xFFFF)
            if self.request_opcode is not None or self.response_code is not None:
                raise EncodeError("a count response carries no response code")
        elif self.opcode is RacpOpcode.RESPONSE_CODE:
            if self.request_opcode is None or self.response_code is None:
                raise EncodeError("a response code needs request_opcode and response_code")
            check_range("request_opcode", self.request_opcode, 0, 0xFF)
            check_enum("response_code", self.response_code, RacpResponseCode)
            if self.number_of_records is not None:
                raise EncodeError("a response code carries no count")
        else:
            raise EncodeError(f"{self.opcode.name} is a request op code, not a response")

    @classmethod
    def count(cls, number_of_records: int) -> RacpResponse:
        return cls(RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE, number_of_records)

    @classmethod
    def code(cls, request_opcode: int, response_code: RacpResponseCode) -> RacpResponse:
        return cls(RacpOpcode.RESPONSE_CODE, None, request_opcode, response_code)

    @property
    def operator(self) -> RacpOperator:
        return RacpOperator.NULL  # both responses use the Null operator

    def encode(self, *, crc: bool = False) -> bytes:
        out = bytearray((self.opcode, RacpOperator.NULL))
        if self.number_of_records is not None:
            out += _wire.u16(self.number_of_records)
        else:
            assert self.request_opcode is not None and self.response_code is not None
            out += bytes((self.request_opcode, self.response_code))
        return append_crc(bytes(out)) if crc else bytes(out)

    def __bytes__(self) -> bytes:
        return self.encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, crc_expected: bool = False) -> RacpResponse:
        body = strip_crc(CHARACTERISTIC, data) if crc_expected else bytes(data)
        r = Reader(CHARACTERISTIC, body)
        opcode = r.enum(RacpOpcode, r.u8("Op Code"), "Op Code")
        operator = r.u8("Operator")
        if operator != RacpOperator.NULL:
            raise r.error(f"responses use the Null operator, got 0x{operator:02X}")
        if opcode is RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            count = r.u16("Number of Stored Records")
            r.finish()
            return cls.count(count)
        if opcode is RacpOpcode.RESPONSE_CODE:
            request = r.u8("Request Op Code")
            code = r.enum(RacpResponseCode, r.u8("Response Code Value"), "Response Code Value")
            r.finish()
            return cls.code(request, code)
        raise r.error(f"{opcode.name} is not a response op code")


def decode_racp(
    data: bytes, *, profile: RacpProfile = RacpProfile.GLS, crc_expected: bool = False
) -> RacpRequest | RacpResponse:
    """Decode either direction, chosen by the op code."""
    if not data:
        raise DecodeError(CHARACTERISTIC, data, "empty value")
    if data[0] in (RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE, RacpOpcode.RESPONSE_CODE):
        return RacpResponse.from_bytes(data, crc_expected=crc_expected)
    return RacpRequest.from_bytes(data, profile=profile, crc_expected=crc_expected)
