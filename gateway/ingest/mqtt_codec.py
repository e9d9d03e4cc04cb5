"""The few MQTT control packets the ingester needs, MQTT v5 and 3.1.1 (OASIS mqtt-v5.0
section 3, mqtt-v3.1.1 section 3). Pure: bytes in, values out; no I/O.

Only what an ingesting subscriber uses: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH in
both directions at QoS 0/1, PUBACK, PINGREQ/PINGRESP, DISCONNECT. QoS 2, topic aliases
(we announce no Topic Alias Maximum, so a broker must not use them), AUTH and wills are
not spoken; a packet that needs them is a :class:`MqttProtocolError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Fixed-header packet types (upper nibble of the first byte).
CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x80
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"  # v5: reason 0x00 (normal) may be omitted
MAX_REMAINING = 268_435_455  # four varint bytes

# v5 property identifiers used here (section 2.2.2.2)
SESSION_EXPIRY = 0x11
SERVER_KEEP_ALIVE = 0x13
RECEIVE_MAXIMUM = 0x21
# value layout of every property a broker may send us, to skip the ones we ignore
_PROP_KIND = {
    0x01: "b",  # payload format indicator
    0x02: "i",  # message expiry interval
    0x03: "s",  # content type
    0x08: "s",  # response topic
    0x09: "d",  # correlation data
    0x0B: "v",  # subscription identifier
    0x11: "i",
    0x12: "s",  # assigned client identifier
    0x13: "h",
    0x15: "s",  # authentication method
    0x16: "d",  # authentication data
    0x17: "b",  # request problem information
    0x18: "i",  # will delay interval
    0x19: "b",  # request response information
    0x1A: "s",  # response information
    0x1C: "s",  # server reference
    0x1F: "s",  # reason string
    0x21: "h",
    0x22: "h",  # topic alias maximum
    0x23: "h",  # topic alias
    0x24: "b",  # maximum qos
    0x25: "b",  # retain available
    0x26: "p",  # user property (string pair)
    0x27: "i",  # maximum packet size
    0x28: "b",  # wildcard subscription available
    0x29: "b",  # subscription identifiers available
    0x2A: "b",  # shared subscription available
}


class MqttProtocolError(Exception):
    """The peer sent something this client cannot accept; the connection must close."""


def varint(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"remaining length {n} out of range")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(value, position after it), or None when the buffer ends inside it."""
    value = shift = 0
    for i in range(pos, min(pos + 4, len(buf))):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    if len(buf) - pos >= 4:
        raise MqttProtocolError("malformed variable byte integer")
    return None


def _str(s: str) -> bytes:
    raw = s.encode()
    if len(raw) > 0xFFFF:
        raise ValueError("MQTT string longer than 65,535 bytes")
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def connect(
    client_id: str,
    *,
    v5: bool,
    keepalive_s: int,
    clean_start: bool = False,
    session_expiry_s: int = 0,
    receive_maximum: int = 65535,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    flags = 0x02 if clean_start else 0
    if username is not None:
        flags |= 0x80
        if password is not None:
            flags |= 0x40
    body = _str("MQTT") + bytes((5 if v5 else 4, flags)) + struct.pack("!H", keepalive_s)
    if v5:
        props = struct.pack(
            "!BIBH", SESSION_EXPIRY, session_expiry_s, RECEIVE_MAXIMUM, receive_maximum
        )
        body += varint(len(props)) + props
    body += _str(client_id)
    if username is not None:
        body += _str(username)
        if password is not None:
            body += _str(password)
    return _packet(CONNECT, body)


def subscribe(packet_id: int, topics: list[str], *, v5: bool, qos: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + (b"\x00" if v5 else b"")
    for t in topics:
        body += _str(t) + bytes((qos,))
    return _packet(SUBSCRIBE | 0x02, body)


def publish(
    topic: str, payload: bytes, *, v5: bool, qos: int = 0, packet_id: int = 0, retain: bool = False
) -> bytes:
    body = _str(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if v5:
        body += b"\x00"
    return _packet(PUBLISH | (qos << 1) | int(retain), body + payload)


_PUBACK = struct.Struct("!BBH")


def puback(packet_id: int) -> bytes:
    """Success PUBACK; in v5 the reason code 0x00 and empty properties may be omitted."""
    return _PUBACK.pack(PUBACK, 2, packet_id)


def pubacks(packet_ids: list[int]) -> bytes:
    """Many success PUBACKs as one buffer (one write for a batch)."""
    return struct.pack("!" + "BBH" * len(packet_ids), *_interleave(packet_ids))


def _interleave(ids: list[int]) -> list[int]:
    out = [PUBACK, 2, 0] * len(ids)
    out[2::3] = ids
    return out


@dataclass(frozen=True, slots=True)
class Connack:
    session_present: bool
    reason: int  # 0 = accepted; v5 reason code or 3.1.1 return code
    receive_maximum: int = 65535  # how many QoS 1 publishes the broker takes unacked
    server_keep_alive: int | None = None


def parse_connack(body: bytes, *, v5: bool) -> Connack:
    if len(body) < 2:
        raise MqttProtocolError("short CONNACK")
    present, reason = bool(body[0] & 1), body[1]
    if not v5 or len(body) == 2:
        # A 3.1.1 broker answers a v5 CONNECT with a 3.1.1 CONNACK (no properties).
        return Connack(present, reason)
    props = parse_properties(body, 2)[0]
    receive_maximum = props.get(RECEIVE_MAXIMUM, 65535)
    keep_alive = props.get(SERVER_KEEP_ALIVE)
    assert isinstance(receive_maximum, int) and (keep_alive is None or isinstance(keep_alive, int))
    return Connack(present, reason, receive_maximum, keep_alive)


def parse_suback(body: bytes, *, v5: bool) -> tuple[int, list[int]]:
    if len(body) < 3:
        raise MqttProtocolError("short SUBACK")
    packet_id = struct.unpack_from("!H", body)[0]
    pos = 2
    if v5:
        pos = parse_properties(body, pos)[1]
    return packet_id, list(body[pos:])


def parse_properties(buf: bytes, pos: int) -> tuple[dict[int, object], int]:
    """The v5 property block at ``pos``: ({id: value}, position after it)."""
    head = read_varint(buf, pos)
    if head is None:
        raise MqttProtocolError("truncated properties")
    length, pos = head
    end = pos + length
    if end > len(buf):
        raise MqttProtocolError("truncated properties")
    props: dict[int, object] = {}
    try:
        while pos < end:
            pid = buf[pos]
            kind = _PROP_KIND.get(pid)
            pos += 1
            if kind == "b":
                props[pid] = buf[pos]
                pos += 1
            elif kind == "h":
                props[pid] = struct.unpack_from("!H", buf, pos)[0]
                pos += 2
            elif kind == "i":
                props[pid] = struct.unpack_from("!I", buf, pos)[0]
                pos += 4
            elif kind == "v":
                got = read_varint(buf, pos)
                if got is None:
                    raise MqttProtocolError("truncated property")
                props[pid], pos = got
            elif kind in ("s", "d"):
                n = struct.unpack_from("!H", buf, pos)[0]
                props[pid] = bytes(buf[pos + 2 : pos + 2 + n])
                pos += 2 + n
            elif kind == "p":
                for _ in range(2):
                    n = struct.unpack_from("!H", buf, pos)[0]
                    pos += 2 + n
            else:
                raise MqttProtocolError(f"unknown property 0x{pid:02x}")
    except (struct.error, IndexError) as err:
        raise MqttProtocolError("truncated property") from err
    if pos != end:
        raise MqttProtocolError("property block overruns its length")
    return props, end


def parse_disconnect(body: bytes) -> int:
    """A v5 DISCONNECT's reason code (0 when omitted)."""
    return body[0] if body else 0
