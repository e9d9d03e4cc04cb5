"""MQTT subscriber on paho, driven directly by the asyncio loop, with manual acknowledgement.

Why not aiomqtt here: aiomqtt acknowledges a QoS 1 message before the application sees it
(and has no public manual-ack option), so a crash between receipt and the database write
would lose the message. paho 2.x has ``manual_ack``: we PUBACK only after the batch holding
the message is durably written or quarantined. Driving paho's socket from the event loop
(add_reader/add_writer, as paho's own asyncio example does) also removes aiomqtt's queue hop,
which the issue measured as the throughput ceiling.

The receive window is bounded: MQTT v5 Receive Maximum tells the broker how many unacked
messages it may send; with 3.1.1 the broker's own inflight limit applies. A delivery carries
the connection generation it arrived on; after a reconnect its ack is skipped (the broker
redelivers it, and storage is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.contract.urls import MqttUrl

log = logging.getLogger(__name__)

_UNSUPPORTED_PROTOCOL = {132, 1}


@dataclass(frozen=True, slots=True)
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


@dataclass
class MqttReceiver:
    """Owns one paho client; ``on_delivery`` is called on the loop for each message."""

    config: ReceiverConfig
    on_delivery: Callable[[Delivery], None]
    on_connection_change: Callable[[bool], None] | None = None
    generation: int = 0
    connected: bool = False
    protocol: str = ""
    unacked: int = 0
    _client: paho.Client | None = None
    _misc: asyncio.Task[None] | None = None
    _disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    _v5: bool = True
    _v5_worked: bool = False

    def __post_init__(self) -> None:
        self._v5 = self.config.protocol != "3.1.1"

    # -- public -------------------------------------------------------------------------
    async def run(self, backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        delay = backoff_initial_s
        failing = False
        while True:
            try:
                await self._connect_once()
                if failing:
                    log.info("mqtt connection recovered")
                    failing = False
                delay = backoff_initial_s
                await self._disconnected.wait()
            except (OSError, ConnectionError, TimeoutError) as err:
                if not failing:
                    log.warning("mqtt connection failed: %s; retrying with backoff", err)
                    failing = True
            finally:
                self._teardown()
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_max_s)

    def ack(self, delivery: Delivery) -> bool:
        """PUBACK one delivery; False when it belongs to a closed connection."""
        if delivery.qos == 0:
            return True
        if delivery.generation != self.generation or self._client is None or not self.connected:
            return False
        self._client.ack(delivery.mid, delivery.qos)
        self.unacked -= 1
        return True

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """Fire-and-forget publish on the ingest connection; False when disconnected."""
        if self._client is None or not self.connected:
            return False
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc == paho.MQTT_ERR_SUCCESS

    async def close(self) -> None:
        if self._client is not None and self.connected:
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._disconnected.wait(), 5)
        self._teardown()

    # -- connection -----------------------------------------------------------------------
    def _new_client(self) -> paho.Client:
        cfg = self.config
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=paho.MQTTv5 if self._v5 else paho.MQTTv311,
            clean_session=None if self._v5 else False,
            manual_ack=True,
        )
        if cfg.mqtt.username:
            client.username_pw_set(cfg.mqtt.username, cfg.mqtt.password)
        if cfg.mqtt.tls:
            ctx = ssl.create_default_context(cafile=cfg.ca_file)
            if cfg.cert_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            client.tls_set_context(ctx)
        # With 3.1.1 there is no Receive Maximum; keep paho's own inbound bound loose.
        client.max_inflight_messages_set(cfg.receive_maximum)
        loop = asyncio.get_running_loop()

        def on_socket_open(c: paho.Client, _u: Any, sock: Any) -> None:
            loop.call_soon_threadsafe(self._watch, sock)

        def on_socket_close(c: paho.Client, _u: Any, sock: Any) -> None:
            loop.call_soon_threadsafe(self._unwatch, sock)

        def on_register_write(c: paho.Client, _u: Any, sock: Any) -> None:
            loop.call_soon_threadsafe(self._watch_write, sock)

        def on_unregister_write(c: paho.Client, _u: Any, sock: Any) -> None:
            loop.call_soon_threadsafe(self._unwatch_write, sock)

        client.on_socket_open = on_socket_open
        client.on_socket_close = on_socket_close
        client.on_socket_register_write = on_register_write
        client.on_socket_unregister_write = on_unregister_write
        return client

    async def _connect_once(self) -> None:
        while True:
            try:
                client, rc = await self._attempt()
            except (OSError, ConnectionError, TimeoutError):
                # Some 3.1.1-only brokers close the socket on a v5 CONNECT instead of
                # answering "unsupported protocol version": try 3.1.1 next time.
                if self.config.protocol == "auto" and not self._v5_worked:
                    self._v5 = not self._v5
                raise
            if rc == 0:
                break
            self._teardown()
            if self._v5 and rc in _UNSUPPORTED_PROTOCOL and self.config.protocol == "auto":
                log.info("broker does not speak MQTT v5; using 3.1.1")
                self._v5 = False
                continue
            raise ConnectionError(f"broker refused connection: {paho.connack_string(rc)} ({rc})")
        self.connected = True
        self.unacked = 0
        self.protocol = "5" if self._v5 else "3.1.1"
        self._v5_worked = self._v5_worked or self._v5
        for topic in self.config.topics:
            client.subscribe(topic, qos=1)
        if self.on_connection_change:
            self.on_connection_change(True)

    async def _attempt(self) -> tuple[paho.Client, int]:
        """One CONNECT; returns the client and the CONNACK reason code."""
        loop = asyncio.get_running_loop()
        client = self._new_client()
        connack: asyncio.Future[int] = loop.create_future()
        self.generation += 1
        generation = self.generation
        self._disconnected = asyncio.Event()

        def on_connect(c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
            if not connack.done():
                connack.set_result(int(rc.value) if hasattr(rc, "value") else int(rc))

        def on_disconnect(c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
            if generation == self.generation:
                self.connected = False
                self._disconnected.set()
                if self.on_connection_change:
                    self.on_connection_change(False)
            if not connack.done():
                connack.set_exception(ConnectionError(f"disconnected before CONNACK: {rc}"))

        def on_message(c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            if msg.qos:
                self.unacked += 1
            self.on_delivery(
                Delivery(
                    topic=msg.topic,
                    payload=msg.payload,
                    mid=msg.mid,
                    qos=msg.qos,
                    generation=generation,
                    received=time.monotonic(),
                    dup=bool(msg.dup),
                )
            )

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        self._client = client
        props = None
        kwargs: dict[str, Any] = {}
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.config.session_expiry_s
            props.ReceiveMaximum = self.config.receive_maximum
            kwargs["clean_start"] = False

        def connect() -> None:
            # The TCP connect blocks: it runs off the loop; socket callbacks hop back.
            client.connect(
                self.config.mqtt.host,
                self.config.mqtt.port,
                self.config.keepalive_s,
                properties=props,
                **kwargs,
            )

        await loop.run_in_executor(None, connect)
        self._misc = asyncio.create_task(self._misc_loop(client))
        try:
            rc = await asyncio.wait_for(connack, 15)
        except BaseException:
            self._teardown()
            raise
        return client, rc

    def _teardown(self) -> None:
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        client, self._client = self._client, None
        self.connected = False
        if client is not None:
            sock = client.socket()
            if sock is not None:
                self._unwatch(sock)
                self._unwatch_write(sock)
                with contextlib.suppress(OSError):
                    sock.close()

    # -- socket plumbing ------------------------------------------------------------------
    def _watch(self, sock: socket.socket) -> None:
        client = self._client
        if client is None:
            return
        asyncio.get_running_loop().add_reader(sock, self._read, client)

    def _read(self, client: paho.Client) -> None:
        # Read many packets per wakeup: one packet per callback caps throughput.
        client.loop_read(max_packets=100)

    def _unwatch(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(sock)

    def _watch_write(self, sock: socket.socket) -> None:
        client = self._client
        if client is None:
            return
        asyncio.get_running_loop().add_writer(sock, client.loop_write)

    def _unwatch_write(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_writer(sock)

    async def _misc_loop(self, client: paho.Client) -> None:
        while True:
            await asyncio.sleep(1.0)
            if client.loop_misc() != paho.MQTT_ERR_SUCCESS:
                return
