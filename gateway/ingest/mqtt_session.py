"""MQTT subscriber on an asyncio protocol, with acknowledgement after durability.

Why not a general client library here: the ingester must PUBACK a message only after the
batch holding it is durably written or quarantined. aiomqtt acknowledges before the
application sees a message; paho 2.x has ``manual_ack`` but, driven from the event loop,
reads one packet per wakeup (``loop_read`` ignores ``max_packets`` for QoS 1), makes three
``recv`` calls per packet and a thread-safe loop callback per acknowledgement: the
benchmark put 35 % of the ingester's time in paho (docs/performance.md). Here one
``data_received`` chunk yields every PUBLISH it holds, and a batch's PUBACKs go out in one
write. The packets themselves are in :mod:`gateway.ingest.mqtt_codec`.

Session: MQTT v5 with clean start off, a session expiry and a Receive Maximum (the bound
on unacked messages the broker sends us); ``protocol="auto"`` falls back to 3.1.1 (clean
session off; the broker's own in-flight limit applies) for brokers without v5. A delivery
carries the connection generation it arrived on; after a reconnect its ack is skipped
(the broker redelivers it, and storage is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from gateway.contract.urls import MqttUrl
from gateway.ingest import mqtt_codec as codec

log = logging.getLogger(__name__)

# CONNACK codes meaning "this broker does not speak the protocol version we sent":
# v5 0x84 Unsupported Protocol Version, 3.1.1 0x01 (a 3.1.1 broker's answer to v5).
_UNSUPPORTED_PROTOCOL = {0x84, 0x01}
_CONNECT_TIMEOUT_S = 15.0
# Our own QoS 1 publishes (quarantine notices, alerts) waiting for a broker slot.
_MAX_QUEUED_OUT = 10_000


@dataclass(slots=True)
class Delivery:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received: float  # time.monotonic()
    dup: bool = False


@dataclass
class ReceiverConfig:
    mqtt: MqttUrl
    client_id: str
    topics: list[str]
    receive_maximum: int = 1000
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    protocol: str = "auto"  # "5", "3.1.1" or "auto" (v5, falling back to 3.1.1)


class _Connection(asyncio.Protocol):
    """One TCP/TLS connection: splits the stream into packets and dispatches them."""

    def __init__(self, receiver: MqttReceiver, generation: int, v5: bool) -> None:
        self.r = receiver
        self.generation = generation
        self.v5 = v5
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[codec.Connack] = asyncio.get_running_loop().create_future()
        self.suback: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self.last_received = time.monotonic()
        self._tail = b""  # bytes of an incomplete packet
        self._parts: list[bytes] = []  # chunks of a large packet still arriving
        self._need = 0  # total bytes the packet in _parts needs

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports implement asyncio.Transport without subclassing it)
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        err = ConnectionError(f"connection closed: {exc}" if exc else "connection closed")
        for fut in (self.connack, self.suback):
            if not fut.done():
                fut.set_exception(err)
            # nobody may await it any more: do not log "exception never retrieved"
            if fut.done() and not fut.cancelled():
                fut.exception()
        self.closed.set()
        self.r._connection_lost(self)

    def data_received(self, data: bytes) -> None:
        now = self.last_received = time.monotonic()
        if self._parts:
            self._parts.append(data)
            self._need -= len(data)
            if self._need > 0:
                return
            data = b"".join(self._parts)
            self._parts = []
        elif self._tail:
            data = self._tail + data
        try:
            self._tail = self._split(data, now)
        except (codec.MqttProtocolError, IndexError, UnicodeDecodeError) as err:
            log.error("mqtt protocol error, closing the connection: %s", err)
            self._tail = b""
            if self.transport is not None:
                self.transport.abort()

    def _split(self, data: bytes, now: float) -> bytes:
        """Handle every complete packet in ``data``; returns the incomplete rest."""
        pos = 0
        n = len(data)
        v5 = self.v5
        gen = self.generation
        deliver = self.r.on_delivery
        r = self.r
        while pos < n:
            first = data[pos]
            # remaining length: a variable byte integer of at most 4 bytes
            i = pos + 1
            length = shift = 0
            while True:
                if i >= n:
                    return data[pos:]
                byte = data[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise codec.MqttProtocolError("malformed remaining length")
            end = i + length
            if end > n:
                rest = data[pos:]
                if length > 65536:  # collect a large packet's chunks, join once
                    self._parts = [rest]
                    self._need = end - n
                    return b""
                return rest
            kind = first & 0xF0
            if kind == 0x30:  # PUBLISH
                qos = (first >> 1) & 3
                tlen = (data[i] << 8) | data[i + 1]
                j = i + 2 + tlen
                topic = data[i + 2 : j].decode()
                mid = 0
                if qos:
                    if qos > 1:
                        raise codec.MqttProtocolError("QoS 2 PUBLISH on a QoS 1 subscription")
                    mid = (data[j] << 8) | data[j + 1]
                    j += 2
                    r.unacked += 1
                if v5:
                    plen = data[j]
                    if plen < 0x80:
                        j += 1 + plen
                    else:
                        got = codec.read_varint(data, j)
                        if got is None:
                            raise codec.MqttProtocolError("truncated PUBLISH properties")
                        j = got[1] + got[0]
                deliver(Delivery(topic, data[j:end], mid, qos, gen, now, bool(first & 8)))
            else:
                self._control(kind, data[i:end])
            pos = end
        return b""

    def _control(self, kind: int, body: bytes) -> None:
        if kind == codec.PUBACK:
            self.r._puback(self, struct.unpack_from("!H", body)[0])
        elif kind == codec.PINGRESP:
            pass
        elif kind == codec.CONNACK:
            if not self.connack.done():
                self.connack.set_result(codec.parse_connack(body, v5=self.v5))
        elif kind == codec.SUBACK:
            if not self.suback.done():
                self.suback.set_result(codec.parse_suback(body, v5=self.v5)[1])
        elif kind == codec.DISCONNECT:
            reason = codec.parse_disconnect(body)
            log.warning("broker disconnected us (reason 0x%02x)", reason)
            if self.transport is not None:
                self.transport.close()
        else:
            raise codec.MqttProtocolError(f"unexpected packet type 0x{kind:02x}")

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True


@dataclass
class MqttReceiver:
    """One broker connection at a time; ``on_delivery`` is called on the loop for each
    message, in order, as soon as its bytes are in."""

    config: ReceiverConfig
    on_delivery: Callable[[Delivery], None]
    on_connection_change: Callable[[bool], None] | None = None
    generation: int = 0
    connected: bool = False
    protocol: str = ""
    unacked: int = 0
    _conn: _Connection | None = None
    _v5: bool = True
    _v5_worked: bool = False
    _keepalive: asyncio.Task[None] | None = None
    # our own QoS 1 publishes: packet ids in flight, and those waiting for a slot
    _out_ids: set[int] = field(default_factory=set)
    _out_next: int = 0
    _out_max: int = 65535
    _out_queue: deque[tuple[str, bytes, bool]] = field(default_factory=deque)
    dropped_out: int = 0

    def __post_init__(self) -> None:
        self._v5 = self.config.protocol != "3.1.1"

    # -- public -------------------------------------------------------------------------
    async def run(self, backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        delay = backoff_initial_s
        failing = False
        while True:
            try:
                conn = await self._connect_once()
                if failing:
                    log.info("mqtt connection recovered")
                    failing = False
                delay = backoff_initial_s
                await conn.closed.wait()
            except (OSError, ConnectionError, TimeoutError, codec.MqttProtocolError) as err:
                if not failing:
                    log.warning("mqtt connection failed: %s; retrying with backoff", err)
                    failing = True
            finally:
                self._teardown()
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_max_s)

    def ack(self, delivery: Delivery) -> bool:
        """PUBACK one delivery; False when it belongs to a closed connection."""
        return self.ack_many([delivery]) == 1

    def ack_many(self, deliveries: list[Delivery]) -> int:
        """PUBACK deliveries in one write; returns how many were acknowledged (the rest
        belong to a closed connection; the broker redelivers them)."""
        conn = self._conn
        if conn is None or not self.connected:
            return sum(1 for d in deliveries if d.qos == 0)
        gen = self.generation
        ids = [d.mid for d in deliveries if d.qos and d.generation == gen]
        if ids and not conn.write(codec.pubacks(ids)):
            return sum(1 for d in deliveries if d.qos == 0)
        self.unacked -= len(ids)
        return len(ids) + sum(1 for d in deliveries if d.qos == 0)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """Fire-and-forget publish on the ingest connection; False when disconnected.
        QoS 1 publishes beyond the broker's Receive Maximum wait in a bounded queue."""
        if self._conn is None or not self.connected:
            return False
        if qos == 0:
            return self._conn.write(codec.publish(topic, payload, v5=self._v5, retain=retain))
        if len(self._out_ids) >= self._out_max:
            if len(self._out_queue) >= _MAX_QUEUED_OUT:
                self._out_queue.popleft()
                self.dropped_out += 1
            self._out_queue.append((topic, payload, retain))
            return True
        return self._send_qos1(topic, payload, retain)

    async def close(self) -> None:
        conn = self._conn
        if conn is not None and self.connected:
            # The broker closes the connection when it has processed DISCONNECT: waiting
            # for that means a successor with our client id finds the session free.
            conn.write(codec.DISCONNECT_PACKET)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.closed.wait(), 5)
        self._teardown()

    # -- connection -----------------------------------------------------------------------
    async def _connect_once(self) -> _Connection:
        while True:
            try:
                conn, connack = await self._attempt()
            except (OSError, ConnectionError, TimeoutError):
                # Some 3.1.1-only brokers close the socket on a v5 CONNECT instead of
                # answering "unsupported protocol version": try 3.1.1 next time.
                if self.config.protocol == "auto" and not self._v5_worked:
                    self._v5 = not self._v5
                raise
            if connack.reason == 0:
                break
            self._teardown()
            if (
                self._v5
                and connack.reason in _UNSUPPORTED_PROTOCOL
                and self.config.protocol == "auto"
            ):
                log.info("broker does not speak MQTT v5; using 3.1.1")
                self._v5 = False
                continue
            raise ConnectionError(f"broker refused connection (reason 0x{connack.reason:02x})")
        self.protocol = "5" if self._v5 else "3.1.1"
        self._v5_worked = self._v5_worked or self._v5
        self._out_max = min(connack.receive_maximum, 65535)
        keepalive = connack.server_keep_alive or self.config.keepalive_s
        self._keepalive = asyncio.create_task(self._keepalive_loop(conn, keepalive))
        conn.write(codec.subscribe(1, self.config.topics, v5=self._v5))
        codes = await asyncio.wait_for(conn.suback, _CONNECT_TIMEOUT_S)
        for topic, code in zip(self.config.topics, codes, strict=False):
            if code >= 0x80:
                log.error("broker refused the subscription to %s (0x%02x)", topic, code)
        self.connected = True
        if self.on_connection_change:
            self.on_connection_change(True)
        return conn

    async def _attempt(self) -> tuple[_Connection, codec.Connack]:
        """One TCP (or TLS) connection and CONNECT; returns it and the CONNACK."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        self.generation += 1
        self.unacked = 0
        self._out_ids.clear()
        conn = _Connection(self, self.generation, self._v5)
        ctx = cfg.mqtt.tls_context(cfg.ca_file, cfg.cert_file, cfg.key_file)
        await asyncio.wait_for(
            loop.create_connection(lambda: conn, cfg.mqtt.host, cfg.mqtt.port, ssl=ctx),
            _CONNECT_TIMEOUT_S,
        )
        self._conn = conn
        conn.write(
            codec.connect(
                cfg.client_id,
                v5=self._v5,
                keepalive_s=cfg.keepalive_s,
                session_expiry_s=cfg.session_expiry_s,
                receive_maximum=cfg.receive_maximum,
                username=cfg.mqtt.username,
                password=cfg.mqtt.password,
            )
        )
        try:
            connack = await asyncio.wait_for(conn.connack, _CONNECT_TIMEOUT_S)
        except BaseException:
            self._teardown()
            raise
        return conn, connack

    def _connection_lost(self, conn: _Connection) -> None:
        if conn is self._conn and self.connected:
            self.connected = False
            if self.on_connection_change:
                self.on_connection_change(False)

    def _teardown(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        conn, self._conn = self._conn, None
        was = self.connected
        self.connected = False
        self._out_queue.clear()
        if conn is not None and conn.transport is not None:
            conn.transport.abort()
        if was and self.on_connection_change:
            self.on_connection_change(False)

    async def _keepalive_loop(self, conn: _Connection, keepalive_s: int) -> None:
        """PINGREQ at half the keepalive; a broker silent for 1.5 keepalives is gone."""
        if keepalive_s <= 0:
            return
        while not conn.closed.is_set():
            await asyncio.sleep(keepalive_s / 2)
            if time.monotonic() - conn.last_received > keepalive_s * 1.5:
                log.warning("no packet from the broker in %.0f s; reconnecting", keepalive_s * 1.5)
                assert conn.transport is not None
                conn.transport.abort()
                return
            conn.write(codec.PINGREQ_PACKET)

    # -- our QoS 1 publishes -----------------------------------------------------------------
    def _send_qos1(self, topic: str, payload: bytes, retain: bool) -> bool:
        assert self._conn is not None
        pid = self._out_next
        while True:
            pid = pid % 65535 + 1
            if pid not in self._out_ids:
                break
        self._out_next = pid
        self._out_ids.add(pid)
        return self._conn.write(
            codec.publish(topic, payload, v5=self._v5, qos=1, packet_id=pid, retain=retain)
        )

    def _puback(self, conn: _Connection, packet_id: int) -> None:
        if conn is not self._conn:
            return
        self._out_ids.discard(packet_id)
        while self._out_queue and len(self._out_ids) < self._out_max:
            self._send_qos1(*self._out_queue.popleft())
