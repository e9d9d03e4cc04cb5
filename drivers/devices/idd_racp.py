"""IDD Record Access Control Point (0x2B27) PDUs: a small codec kept beside the pump driver.

``drivers/ids.py`` has no IDD RACP codec yet, so this module carries one (clearly
separate; move it there when the codec owner adds it). The IDD RACP has the GLS/CGMS
RACP procedures with Hamming-distance-4 codes (IDS 1.0 §3.10, as the ehealth-innovation
parser lists the op codes; operator, filter and response values are recalled from the
same tables and are *unverified* against the IDS text):

* PDU: Op Code (uint8) · Operator (uint8) · Operand · [E2E-Counter · E2E-CRC, not used here]
* Filter Type 0x0F = Sequence Number (uint32); 0x33 = Sequence Number, Reference Time
  events only; 0x3C = Sequence Number, non-reference-time events only.
* Number of Stored Records response: uint32 count.
* Response Code: Request Op Code (uint8) · Response Code Value (uint8).

The procedures are expressed with the shared :mod:`drivers.racp` enums; only the wire
values differ.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from drivers.errors import DecodeError, EncodeError
from drivers.racp import FILTERED_OPERATORS, RacpOpcode, RacpOperator, RacpResponseCode

CHARACTERISTIC: Final = "IDD Record Access Control Point"

OPCODE_WIRE: Final[dict[RacpOpcode, int]] = {
    RacpOpcode.REPORT_STORED_RECORDS: 0x33,
    RacpOpcode.DELETE_STORED_RECORDS: 0x3C,
    RacpOpcode.ABORT_OPERATION: 0x55,
    RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS: 0x5A,
    RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE: 0x66,
    RacpOpcode.RESPONSE_CODE: 0x0F,
}
OPERATOR_WIRE: Final[dict[RacpOperator, int]] = {
    RacpOperator.NULL: 0x0F,
    RacpOperator.ALL_RECORDS: 0x33,
    RacpOperator.LESS_THAN_OR_EQUAL_TO: 0x3C,
    RacpOperator.GREATER_THAN_OR_EQUAL_TO: 0x55,
    RacpOperator.WITHIN_RANGE_OF: 0x5A,
    RacpOperator.FIRST_RECORD: 0x66,
    RacpOperator.LAST_RECORD: 0x69,
}
RESPONSE_WIRE: Final[dict[RacpResponseCode, int]] = {
    RacpResponseCode.SUCCESS: 0xF0,
    RacpResponseCode.OP_CODE_NOT_SUPPORTED: 0x0F,
    RacpResponseCode.INVALID_OPERATOR: 0x33,
    RacpResponseCode.OPERATOR_NOT_SUPPORTED: 0x3C,
    RacpResponseCode.INVALID_OPERAND: 0x55,
    RacpResponseCode.NO_RECORDS_FOUND: 0x5A,
    RacpResponseCode.ABORT_UNSUCCESSFUL: 0x66,
    RacpResponseCode.PROCEDURE_NOT_COMPLETED: 0x69,
    RacpResponseCode.OPERAND_NOT_SUPPORTED: 0x96,
}
_OPCODE_FROM = {v: k for k, v in OPCODE_WIRE.items()}
_OPERATOR_FROM = {v: k for k, v in OPERATOR_WIRE.items()}
_RESPONSE_FROM = {v: k for k, v in RESPONSE_WIRE.items()}
_REQUESTS = frozenset(
    {
        RacpOpcode.REPORT_STORED_RECORDS,
        RacpOpcode.DELETE_STORED_RECORDS,
        RacpOpcode.ABORT_OPERATION,
        RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS,
    }
)


class IddFilterType(IntEnum):
    SEQUENCE_NUMBER = 0x0F
    SEQUENCE_NUMBER_REFERENCE_TIME_EVENTS = 0x33
    SEQUENCE_NUMBER_NON_REFERENCE_TIME_EVENTS = 0x3C


@dataclass(frozen=True, slots=True)
class IddRacpRequest:
    opcode: RacpOpcode
    operator: RacpOperator
    filter_type: IddFilterType | None = None
    operand: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.opcode not in _REQUESTS:
            raise EncodeError(f"{self.opcode!r} is not a request op code")
        if self.operator in FILTERED_OPERATORS:
            want = 2 if self.operator is RacpOperator.WITHIN_RANGE_OF else 1
            if self.filter_type is None or len(self.operand) != want:
                raise EncodeError(f"{self.operator.name} takes a filter and {want} value(s)")
            for value in self.operand:
                if not 0 <= value <= 0xFFFF_FFFF:
                    raise EncodeError(f"sequence number {value} is not a uint32")
        elif self.filter_type is not None or self.operand:
            raise EncodeError(f"{self.operator.name} takes no operand")

    def __bytes__(self) -> bytes:
        out = bytes((OPCODE_WIRE[self.opcode], OPERATOR_WIRE[self.operator]))
        if self.filter_type is not None:
            out += bytes((self.filter_type,)) + b"".join(struct.pack("<I", v) for v in self.operand)
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> IddRacpRequest:
        data = bytes(data)
        if len(data) < 2:
            raise DecodeError(CHARACTERISTIC, data, "truncated")
        opcode = _OPCODE_FROM.get(data[0])
        operator = _OPERATOR_FROM.get(data[1])
        if opcode is None or operator is None:
            raise DecodeError(CHARACTERISTIC, data, "unknown op code or operator")
        filter_type: IddFilterType | None = None
        values: tuple[int, ...] = ()
        if operator in FILTERED_OPERATORS:
            count = 2 if operator is RacpOperator.WITHIN_RANGE_OF else 1
            if len(data) != 3 + 4 * count:
                raise DecodeError(CHARACTERISTIC, data, "bad operand length")
            try:
                filter_type = IddFilterType(data[2])
            except ValueError:
                raise DecodeError(CHARACTERISTIC, data, "unknown filter type") from None
            values = struct.unpack(f"<{count}I", data[3:])
        elif len(data) != 2:
            raise DecodeError(CHARACTERISTIC, data, "unexpected operand")
        try:
            return cls(opcode, operator, filter_type, values)
        except EncodeError as err:
            raise DecodeError(CHARACTERISTIC, data, str(err)) from err


@dataclass(frozen=True, slots=True)
class IddRacpResponse:
    opcode: RacpOpcode
    number_of_records: int | None = None
    request_opcode: RacpOpcode | None = None
    response_code: RacpResponseCode | None = None

    @classmethod
    def count(cls, number: int) -> IddRacpResponse:
        return cls(RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE, number)

    @classmethod
    def code(cls, request: RacpOpcode, code: RacpResponseCode) -> IddRacpResponse:
        return cls(RacpOpcode.RESPONSE_CODE, None, request, code)

    def __bytes__(self) -> bytes:
        head = bytes((OPCODE_WIRE[self.opcode], OPERATOR_WIRE[RacpOperator.NULL]))
        if self.number_of_records is not None:
            return head + struct.pack("<I", self.number_of_records)
        assert self.request_opcode is not None and self.response_code is not None
        return head + bytes((OPCODE_WIRE[self.request_opcode], RESPONSE_WIRE[self.response_code]))

    @classmethod
    def from_bytes(cls, data: bytes) -> IddRacpResponse:
        data = bytes(data)
        opcode = _OPCODE_FROM.get(data[0]) if data else None
        if len(data) == 6 and opcode is RacpOpcode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            return cls.count(struct.unpack_from("<I", data, 2)[0])
        if len(data) == 4 and opcode is RacpOpcode.RESPONSE_CODE:
            request = _OPCODE_FROM.get(data[2])
            code = _RESPONSE_FROM.get(data[3])
            if request is not None and code is not None:
                return cls.code(request, code)
        raise DecodeError(CHARACTERISTIC, data, "not an IDD RACP response")
