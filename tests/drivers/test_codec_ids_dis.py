"""IDS status characteristics and history events; DIS strings and Battery Level."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.crc import append_crc
from drivers.dis import BatteryLevel, DisString, decode_dis_string
from drivers.errors import CRCError, DecodeError, EncodeError
from drivers.ids import (
    AnnunciationStatus,
    BolusActivationType,
    BolusDeliveredPart2Event,
    BolusEndReason,
    BolusPart1Event,
    BolusType,
    DeliveredBasalRateChangedEvent,
    IddAnnunciationStatus,
    IddEventType,
    IddFeatureBits,
    IddFeatures,
    IddFilterType,
    IddHistoryData,
    IddRacpRequest,
    IddRacpResponse,
    IddStatus,
    IddStatusChanged,
    IddStatusChangedFlags,
    IddStatusFlags,
    OperationalState,
    ReferenceTimeEvent,
    ReferenceTimeReason,
    ReservoirRemainingEvent,
    TbrChangedEvent,
    TbrEndedEvent,
    TbrEndReason,
    TbrStartedEvent,
    TbrType,
    TherapyControlState,
    TotalDailyInsulinEvent,
)
from drivers.ieee11073 import SFloat
from drivers.racp import RacpOpcode, RacpOperator, RacpResponseCode
from drivers.sigtime import DateTime, DstOffset, TimeZone
from tests.drivers.codec_strategies import (
    FUZZ,
    ROUND_TRIP,
    flags_of,
    optional,
    sfloats,
    u8,
    u16,
)
from tests.drivers.codec_strategies import only_decode_errors as ok


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_status_changed() -> None:
    value = IddStatusChanged.from_bytes(h("8100"))
    assert value == IddStatusChanged(
        IddStatusChangedFlags.THERAPY_CONTROL_STATE_CHANGED
        | IddStatusChangedFlags.HISTORY_EVENT_RECORDED
    )
    protected = append_crc(h("8100 07"))
    assert IddStatusChanged.from_bytes(protected) == IddStatusChanged(value.flags, 7)
    with pytest.raises(CRCError):
        IddStatusChanged.from_bytes(h("8100 07 3412"))
    with pytest.raises(DecodeError):
        IddStatusChanged.from_bytes(h("81"))


def test_status() -> None:
    value = IddStatus.from_bytes(h("55 96 f401 01"))
    assert value == IddStatus(
        TherapyControlState.RUN,
        OperationalState.READY,
        SFloat.from_raw(0x01F4),
        IddStatusFlags.RESERVOIR_ATTACHED,
    )
    assert value.reservoir_attached and value.reservoir_remaining_iu.value == 500.0
    assert IddStatus.from_bytes(append_crc(h("33 33 0000 00 2a"))).e2e_counter == 42
    for bad in ("55 97 f401 01", "10 96 f401 01", "55 96 f401"):
        with pytest.raises(DecodeError):
            IddStatus.from_bytes(h(bad))


def test_annunciation_status_uint8_status() -> None:
    data = h("07 0100 c300 33 0a00 0b00")  # present + AuxInfo1 + AuxInfo2
    value = IddAnnunciationStatus.from_bytes(data)
    assert value == IddAnnunciationStatus(
        1, 0x00C3, AnnunciationStatus.PENDING, (10, 11, None, None, None)
    )
    assert value.type_name == "battery_low"
    assert bytes(value) == data
    assert IddAnnunciationStatus.from_bytes(h("00")) == IddAnnunciationStatus()
    protected = append_crc(h("01 0200 0f00 55 09"))
    assert IddAnnunciationStatus.from_bytes(protected) == IddAnnunciationStatus(
        2, 0x000F, AnnunciationStatus.CONFIRMED, e2e_counter=9
    )


@pytest.mark.parametrize(
    "data",
    [
        "01 0100 c300 3300",  # a uint16 status (ehealth's reading) leaves a stray octet
        "02",  # AuxInfo without annunciation
        "41 0100 c300 33",  # RFU flag bit 6
        "01 0100 c300 34",  # status 0x34 RFU
        "03 0100 c300 33",  # AuxInfo1 announced, missing
    ],
)
def test_annunciation_rejects(data: str) -> None:
    with pytest.raises(DecodeError):
        IddAnnunciationStatus.from_bytes(h(data), e2e_expected=False)


def test_features() -> None:
    plain = h("ffff 00 6400 020000")  # 100 IU/mL, basal rate supported
    assert IddFeatures.from_bytes(plain) == IddFeatures(
        SFloat.from_raw(0x0064), IddFeatureBits.BASAL_RATE
    )
    body = h("05 6400 030000")
    protected = append_crc(body)  # CRC after the fields here: move it to the front
    value = IddFeatures.from_bytes(protected[-2:] + body)
    assert value == IddFeatures(
        SFloat.from_raw(0x0064), IddFeatureBits.E2E_PROTECTION | IddFeatureBits.BASAL_RATE, 5
    )
    assert bytes(value) == protected[-2:] + body
    with pytest.raises(CRCError):
        IddFeatures.from_bytes(h("3412") + body)
    with pytest.raises(DecodeError):
        IddFeatures.from_bytes(h("3412 00 6400 020000"))  # no E2E: CRC must be 0xFFFF


def test_history_bolus_delivered() -> None:
    part1 = IddHistoryData.from_bytes(h("6900 0a000000 1e00 0700 33 1e00 0000 0000"))
    assert part1 == IddHistoryData(
        IddEventType.BOLUS_DELIVERED_PART_1,
        10,
        30,
        BolusPart1Event(7, BolusType.FAST, SFloat.from_raw(0x001E), SFloat.from_raw(0), 0),
    )
    part2 = IddHistoryData.from_bytes(h("9600 0b000000 0000 07 3c000000 33 33 0500"))
    assert part2.event_data == BolusDeliveredPart2Event(
        60, BolusActivationType.MANUAL_BOLUS, BolusEndReason.PROGRAMMED_AMOUNT_REACHED, 5
    )


def test_history_basal_and_tbr() -> None:
    basal = IddHistoryData.from_bytes(h("9900 01000000 0000 01 0a f0 14 f0 33"))
    assert basal.event_data == DeliveredBasalRateChangedEvent(
        SFloat.from_raw(0xF00A), SFloat.from_raw(0xF014), 0x33
    )
    assert isinstance(basal.event_data, DeliveredBasalRateChangedEvent)
    assert basal.event_data.new_rate_iu_h.value == 2.0
    # Layouts as ehealthinnovation/AndroidBLEParser and tidepool-org/InsulinDeliveryServiceKit
    # read them (their test vectors re-encoded: flags, type, SFLOAT, durations, options).
    started = IddHistoryData.from_bytes(h("a500 02000000 0000 01 3c 0900 0a00 03"))
    assert started.event_data == TbrStartedEvent(TbrType.RELATIVE, SFloat.from_raw(0x0009), 10, 3)
    absolute = IddHistoryData.from_bytes(h("a500 02000000 0000 00 33 0f f0 1e00"))
    assert absolute.event_data == TbrStartedEvent(TbrType.ABSOLUTE, SFloat.from_raw(0xF00F), 30)
    assert bytes(absolute) == h("a500 02000000 0000 00 33 0f f0 1e00")
    changed = IddHistoryData.from_bytes(h("c300 04000000 0000 00 33 0f f0 1e00 0500"))
    assert changed.event_data == TbrChangedEvent(TbrType.ABSOLUTE, SFloat.from_raw(0xF00F), 30, 5)
    ended = IddHistoryData.from_bytes(h("aa00 03000000 0000 00 33 1e00 33"))
    assert ended.event_data == TbrEndedEvent(
        TbrType.ABSOLUTE, 30, TbrEndReason.PROGRAMMED_DURATION_OVER
    )
    ended_full = h("aa00 03000000 0000 03 3c 0f00 3c 02 1000")
    assert IddHistoryData.from_bytes(ended_full).event_data == TbrEndedEvent(
        TbrType.RELATIVE, 15, TbrEndReason.CANCELLED, 2, 16
    )
    with pytest.raises(DecodeError):  # bit 1 (a delivery context) is RFU in the event
        IddHistoryData.from_bytes(h("a500 02000000 0000 02 33 0f f0 1e00 33"))
    with pytest.raises(DecodeError):  # the old guess: a TBR value in the ended event
        IddHistoryData.from_bytes(h("aa00 03000000 0000 00 1e00 3c 9600 33"))


def test_history_reference_time_and_total() -> None:
    ref = IddHistoryData.from_bytes(h("0f00 00000000 0000 33 e4070c1f173b3b 04 04"))
    assert ref.event_data == ReferenceTimeEvent(
        ReferenceTimeReason.SET_DATE_TIME,
        DateTime(2020, 12, 31, 23, 59, 59),
        TimeZone(4),
        DstOffset.DAYLIGHT_TIME,
    )
    total = IddHistoryData.from_bytes(h("ff00 05000000 0000 01 2800 3c00 e4070c1f"))
    assert total.event_data == TotalDailyInsulinEvent(
        SFloat.from_raw(0x0028), SFloat.from_raw(0x003C), DateTime(2020, 12, 31), True
    )
    with pytest.raises(DecodeError):  # no flags octet: one octet short
        IddHistoryData.from_bytes(h("ff00 05000000 0000 2800 3c00 e4070c1f"))
    reservoir = IddHistoryData.from_bytes(h("3003 06000000 0000 7b f3"))
    assert reservoir.event_data == ReservoirRemainingEvent(SFloat.from_raw(0xF37B))


def test_idd_racp() -> None:
    # Requests as tidepool-org/InsulinDeliveryServiceKit builds them.
    from_seq = h("33 55 0f 07000000")
    request = IddRacpRequest.from_bytes(from_seq)
    assert request == IddRacpRequest(
        RacpOpcode.REPORT_STORED_RECORDS,
        RacpOperator.GREATER_THAN_OR_EQUAL_TO,
        IddFilterType.SEQUENCE_NUMBER,
        (7,),
    )
    assert bytes(request) == from_seq
    last_ref = IddRacpRequest.from_bytes(h("33 69 33"))
    assert last_ref == IddRacpRequest(
        RacpOpcode.REPORT_STORED_RECORDS,
        RacpOperator.LAST_RECORD,
        IddFilterType.SEQUENCE_NUMBER_REFERENCE_TIME_EVENTS,
    )
    assert IddRacpRequest.from_bytes(h("55 0f")).opcode is RacpOpcode.ABORT_OPERATION
    assert IddRacpResponse.from_bytes(h("66 0f 2c010000")) == IddRacpResponse.count(300)
    done = IddRacpResponse.code(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)
    assert bytes(done) == h("0f 0f 33 f0")
    none = IddRacpResponse.code(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND)
    assert bytes(none) == h("0f 0f 33 06")
    assert IddRacpResponse.from_bytes(h("0f 0f 33 06")) == none
    for bad in ("", "33", "33 55 0f 0700", "33 55 0f 07000000 00", "01 01", "0f 0f 33 0a",
                "0f 33 33 f0", "66 0f 2c01", "33 3c"):  # fmt: skip
        with pytest.raises(DecodeError):
            try:
                IddRacpRequest.from_bytes(h(bad))
            except DecodeError:
                IddRacpResponse.from_bytes(h(bad))
    with pytest.raises(EncodeError):
        IddRacpRequest(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.GREATER_THAN_OR_EQUAL_TO)
    with pytest.raises(EncodeError):
        IddRacpResponse(RacpOpcode.REPORT_STORED_RECORDS)


def test_history_unknown_event_kept_raw() -> None:
    value = IddHistoryData.from_bytes(h("abcd 01000000 0200 deadbeef"))
    assert value == IddHistoryData(0xCDAB, 1, 2, h("deadbeef"))
    assert value.event_name is None
    known_but_raw = IddHistoryData.from_bytes(h("9a03 01000000 0200 00"))  # priming done
    assert known_but_raw.event_data == b"\x00"
    assert known_but_raw.event_type is IddEventType.PRIMING_DONE


def test_history_rejects() -> None:
    with pytest.raises(DecodeError):
        IddHistoryData.from_bytes(h("6900 0a000000 1e00 0700 33 1e00"))  # truncated part 1
    with pytest.raises(DecodeError):
        IddHistoryData.from_bytes(h("6900 0a000000 1e00 0700 33 1e00 0000 0000 00"))  # long
    with pytest.raises(DecodeError):
        IddHistoryData.from_bytes(h("6900 0a00"))
    with pytest.raises(EncodeError):
        IddHistoryData(IddEventType.BOLUS_DELIVERED_PART_1, 1, 0, b"raw")


def test_dis_and_battery() -> None:
    assert decode_dis_string(b"Acme\x00\x00") == "Acme"
    with pytest.raises(DecodeError, match="NUL inside"):  # found by the fuzz test
        DisString.from_bytes(b"A\x00B")
    assert DisString.from_bytes("Zürich 1.2".encode()) == DisString("Zürich 1.2")
    assert bytes(DisString("SN-1")) == b"SN-1"
    with pytest.raises(DecodeError):
        DisString.from_bytes(b"\xff\xfe")
    assert BatteryLevel.from_bytes(b"\x64") == BatteryLevel(100)
    for bad in (b"", b"\x65", b"\x01\x02"):
        with pytest.raises(DecodeError):
            BatteryLevel.from_bytes(bad)
    with pytest.raises(EncodeError):
        BatteryLevel(101)


@FUZZ
@given(st.binary(max_size=24), st.booleans())
def test_fuzz_ids(data: bytes, e2e: bool) -> None:
    ok(lambda d: IddStatusChanged.from_bytes(d, e2e_expected=e2e), data)
    ok(lambda d: IddStatus.from_bytes(d, e2e_expected=e2e), data)
    ok(lambda d: IddAnnunciationStatus.from_bytes(d, e2e_expected=e2e), data)
    ok(lambda d: IddAnnunciationStatus.from_bytes(d), data)
    ok(IddFeatures.from_bytes, data)
    ok(lambda d: IddHistoryData.from_bytes(d, e2e_expected=e2e), data)
    ok(IddRacpRequest.from_bytes, data)
    ok(IddRacpResponse.from_bytes, data)
    ok(DisString.from_bytes, data)
    ok(BatteryLevel.from_bytes, data)


@FUZZ
@given(st.sampled_from(IddEventType), st.binary(max_size=16))
def test_fuzz_history_known_types(event_type: IddEventType, rest: bytes) -> None:
    ok(IddHistoryData.from_bytes, event_type.to_bytes(2, "little") + bytes(6) + rest)


events = st.one_of(
    st.builds(
        lambda t, p1: (t, p1),
        st.sampled_from(
            [IddEventType.BOLUS_DELIVERED_PART_1, IddEventType.BOLUS_PROGRAMMED_PART_1]
        ),
        st.builds(BolusPart1Event, u16, st.sampled_from(BolusType), sfloats, sfloats, u16),
    ),
    st.builds(
        lambda p2: (IddEventType.BOLUS_DELIVERED_PART_2, p2),
        st.builds(
            BolusDeliveredPart2Event,
            st.integers(0, 0xFFFF_FFFF),
            optional(st.sampled_from(BolusActivationType)),
            optional(st.sampled_from(BolusEndReason)),
            optional(u16),
        ),
    ),
    st.builds(
        lambda b: (IddEventType.DELIVERED_BASAL_RATE_CHANGED, b),
        st.builds(DeliveredBasalRateChangedEvent, sfloats, sfloats, optional(u8)),
    ),
    st.builds(
        lambda t, e: (t, e),
        st.just(IddEventType.TBR_ADJUSTMENT_STARTED),
        st.builds(TbrStartedEvent, st.sampled_from(TbrType), sfloats, u16, optional(u8)),
    ),
    st.builds(
        lambda e: (IddEventType.TBR_ADJUSTMENT_CHANGED, e),
        st.builds(TbrChangedEvent, st.sampled_from(TbrType), sfloats, u16, u16, optional(u8)),
    ),
    st.builds(
        lambda e: (IddEventType.TBR_ADJUSTMENT_ENDED, e),
        st.builds(
            TbrEndedEvent,
            st.sampled_from(TbrType),
            u16,
            st.sampled_from(TbrEndReason),
            optional(u8),
            optional(u16),
        ),
    ),
    st.builds(
        lambda e: (IddEventType.TOTAL_DAILY_INSULIN_DELIVERY, e),
        st.builds(
            TotalDailyInsulinEvent,
            sfloats,
            sfloats,
            st.builds(DateTime, st.integers(1582, 9999), st.integers(1, 12), st.integers(1, 28)),
            st.booleans(),
        ),
    ),
    st.builds(
        lambda e: (IddEventType.RESERVOIR_REMAINING_AMOUNT_CHANGED, e),
        st.builds(ReservoirRemainingEvent, sfloats),
    ),
    st.builds(lambda raw: (IddEventType.PRIMING_DONE, raw), st.binary(max_size=8)),
)


@ROUND_TRIP
@given(events, st.integers(0, 0xFFFF_FFFF), u16, optional(u8))
def test_round_trip_history(
    event: tuple[int, object], sequence: int, offset: int, counter: int | None
) -> None:
    value = IddHistoryData(event[0], sequence, offset, event[1], counter)  # type: ignore[arg-type]
    assert IddHistoryData.from_bytes(bytes(value), e2e_expected=counter is not None) == value


@ROUND_TRIP
@given(
    flags_of(IddStatusChangedFlags, 16),
    st.sampled_from(TherapyControlState),
    st.sampled_from(OperationalState),
    sfloats,
    optional(u8),
    optional(st.tuples(u16, u16, st.sampled_from(AnnunciationStatus))),
    st.tuples(*[optional(u16)] * 5),
    flags_of(IddFeatureBits, 24),
)
def test_round_trip_ids_status(
    changed: IddStatusChangedFlags,
    therapy: TherapyControlState,
    operational: OperationalState,
    reservoir: SFloat,
    counter: int | None,
    head: tuple[int, int, AnnunciationStatus] | None,
    aux: tuple[int | None, ...],
    features: IddFeatureBits,
) -> None:
    sc = IddStatusChanged(changed, counter)
    assert IddStatusChanged.from_bytes(bytes(sc)) == sc
    status = IddStatus(therapy, operational, reservoir, IddStatusFlags(1), counter)
    assert IddStatus.from_bytes(bytes(status)) == status
    annunciation = (
        IddAnnunciationStatus(*head, aux, counter)
        if head
        else IddAnnunciationStatus(e2e_counter=counter)
    )
    assert (
        IddAnnunciationStatus.from_bytes(bytes(annunciation), e2e_expected=counter is not None)
        == annunciation
    )
    feat = IddFeatures(reservoir, features, counter or 0)
    assert IddFeatures.from_bytes(bytes(feat)) == feat


@ROUND_TRIP
@given(st.text().filter(lambda t: "\x00" not in t), st.integers(0, 100))
def test_round_trip_dis(text: str, percent: int) -> None:
    assert DisString.from_bytes(bytes(DisString(text))) == DisString(text)
    assert BatteryLevel.from_bytes(bytes(BatteryLevel(percent))) == BatteryLevel(percent)
