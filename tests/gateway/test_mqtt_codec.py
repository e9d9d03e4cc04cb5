"""The ingester's MQTT packets: byte vectors from the MQTT v5 / 3.1.1 specifications."""

from __future__ import annotations

import struct

import pytest

from gateway.ingest import mqtt_codec as codec


@pytest.mark.parametrize(
    ("n", "wire"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_varint_round_trip(n: int, wire: bytes) -> None:
    assert codec.varint(n) == wire
    assert codec.read_varint(b"x" + wire + b"rest", 1) == (n, 1 + len(wire))


def test_varint_truncated_and_malformed() -> None:
    assert codec.read_varint(b"\x80\x80", 0) is None
    with pytest.raises(codec.MqttProtocolError):
        codec.read_varint(b"\xff\xff\xff\xff\x01", 0)
    with pytest.raises(ValueError):
        codec.varint(268_435_456)


def test_connect_v5_persistent_session_with_receive_maximum() -> None:
    wire = codec.connect(
        "ing-1",
        v5=True,
        keepalive_s=30,
        session_expiry_s=3600,
        receive_maximum=2000,
        username="u",
        password="p",
    )
    body = (
        b"\x00\x04MQTT\x05"
        + b"\xc0"  # username + password, clean start off
        + b"\x00\x1e"  # keepalive 30
        + b"\x08\x11\x00\x00\x0e\x10\x21\x07\xd0"  # session expiry 3600, receive max 2000
        + b"\x00\x05ing-1\x00\x01u\x00\x01p"
    )
    assert wire == b"\x10" + bytes([len(body)]) + body


def test_connect_311_clean_session_off() -> None:
    body = b"\x00\x04MQTT\x04\x00\x00\x3c\x00\x01c"
    assert codec.connect("c", v5=False, keepalive_s=60) == b"\x10" + bytes([len(body)]) + body


def test_subscribe_qos1_both_versions() -> None:
    topic = b"$share/g/diatabase/v1/hubs/+/readings"
    v5 = codec.subscribe(7, [topic.decode()], v5=True)
    assert v5 == b"\x82" + bytes([2 + 1 + 2 + len(topic) + 1]) + b"\x00\x07\x00" + (
        struct.pack("!H", len(topic)) + topic + b"\x01"
    )
    v3 = codec.subscribe(7, ["a/b"], v5=False)
    assert v3 == b"\x82\x08\x00\x07\x00\x03a/b\x01"


def test_publish_and_pubacks() -> None:
    assert codec.publish("t", b"hi", v5=True, qos=1, packet_id=5, retain=True) == (
        b"\x33\x08\x00\x01t\x00\x05\x00hi"
    )
    assert codec.publish("t", b"hi", v5=False) == b"\x30\x05\x00\x01thi"
    assert codec.puback(0x1234) == b"\x40\x02\x12\x34"
    assert codec.pubacks([1, 65535, 300]) == (
        codec.puback(1) + codec.puback(65535) + codec.puback(300)
    )
    assert codec.pubacks([]) == b""


def test_connack_v5_properties_and_311_reply() -> None:
    # session present, accepted, receive maximum 100, server keep alive 20, a reason
    # string and a user property (skipped)
    props = b"\x21\x00\x64\x13\x00\x14\x1f\x00\x02ok\x26\x00\x01k\x00\x01v"
    body = b"\x01\x00" + codec.varint(len(props)) + props
    assert codec.parse_connack(body, v5=True) == codec.Connack(True, 0, 100, 20)
    # a 3.1.1 broker answering our v5 CONNECT: "unacceptable protocol version"
    assert codec.parse_connack(b"\x00\x01", v5=True) == codec.Connack(False, 1)
    assert codec.parse_connack(b"\x00\x84\x00", v5=True).reason == 0x84


def test_properties_errors_are_typed() -> None:
    with pytest.raises(codec.MqttProtocolError, match="unknown property"):
        codec.parse_properties(b"\x02\x7f\x00", 0)
    with pytest.raises(codec.MqttProtocolError, match="truncated"):
        codec.parse_properties(b"\x05\x21\x00", 0)
    with pytest.raises(codec.MqttProtocolError, match="truncated"):
        codec.parse_properties(b"\x02\x21\x00", 0)


def test_suback_reason_codes() -> None:
    assert codec.parse_suback(b"\x00\x01\x00\x01\x87", v5=True) == (1, [1, 0x87])
    assert codec.parse_suback(b"\x00\x02\x01", v5=False) == (2, [1])
