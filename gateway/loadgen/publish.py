"""QoS 1 publishing for simulated hubs over a few MQTT v5 connections, each with a bounded
window of unacknowledged messages.

The window matters: MQTT packet ids are 16-bit, and paho hands out ids past 65,535 by
wrapping onto ids still in flight once that many QoS 1 messages are outstanding, which
confuses PUBACKs with the wrong message. The window also gives back-pressure: when the
broker stops acknowledging, generation waits instead of queueing without bound.

Each PUBACK's reason code is kept: a v5 broker acknowledges a refused publish (0x87 not
authorised) or one nobody was subscribed to (0x10 no matching subscribers, Mosquitto)
with a PUBACK, and neither delivers the readings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS

from gateway.contract.urls import MqttUrl

MAX_WINDOW = 65_000  # below the 16-bit packet id space, with room for the client's own
NO_MATCHING_SUBSCRIBERS = 0x10


class PublishError(Exception):
    """A publish could not be handed to the MQTT client (connection lost, queue full)."""


class _Connection(aiomqtt.Client):
    """aiomqtt for the connection; publishing straight through paho so that a message
    in flight costs one future and a callback, not a task, and its reason code is seen."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acks: dict[int, asyncio.Future[int]] = {}

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        fut = self.acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(int(getattr(reason_code, "value", 0) or 0))
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def _on_disconnect(self, *args: Any, **kwargs: Any) -> None:
        for fut in self.acks.values():
            if not fut.done():
                fut.set_exception(PublishError("connection lost before PUBACK"))
        self.acks.clear()
        super()._on_disconnect(*args, **kwargs)

    def send(self, topic: str, payload: bytes) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != MQTT_ERR_SUCCESS:
            raise PublishError(f"publish failed: paho error {info.rc}")
        self.acks[info.mid] = fut
        if info.is_published():  # acknowledged before we registered (paho may do that)
            self.acks.pop(info.mid, None)
            fut.set_result(0)
        return fut


class HubPublisher:
    """``connections`` MQTT v5 clients; ``publish`` waits only for a window slot and
    calls ``on_ack(reason_code_or_None)`` when the PUBACK (or a failure) arrives."""

    def __init__(
        self,
        url: MqttUrl,
        *,
        client_prefix: str,
        connections: int,
        window: int,
        ca_file: str | None = None,
    ) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be 1..{MAX_WINDOW} (MQTT packet ids are 16-bit)")
        if connections < 1:
            raise ValueError("connections must be >= 1")
        self.url = url
        self.window = window
        per_conn = max(1, window // connections)
        tls = url.tls_context(ca_file)
        self._conns = [
            _Connection(
                url.host,
                url.port,
                username=url.username,
                password=url.password,
                identifier=f"{client_prefix}-{i}",
                protocol=aiomqtt.ProtocolVersion.V5,
                tls_context=tls,
                max_inflight_messages=per_conn + 10,
                timeout=30,
            )
            for i in range(connections)
        ]
        self._slots = [asyncio.Semaphore(per_conn) for _ in self._conns]
        self._stack = contextlib.AsyncExitStack()
        self.in_flight: set[asyncio.Future[int]] = set()

    async def __aenter__(self) -> HubPublisher:
        try:
            for c in self._conns:
                await self._stack.enter_async_context(c)
        except aiomqtt.MqttError as err:
            await self._stack.aclose()
            raise PublishError(f"cannot connect to {self.url}: {err}") from err
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def publish(
        self, lane: int, topic: str, payload: bytes, on_ack: Callable[[int | None], None]
    ) -> None:
        """Publish on connection ``lane % connections`` (a hub always uses one lane, so its
        batches stay in order)."""
        i = lane % len(self._conns)
        slots = self._slots[i]
        await slots.acquire()
        try:
            fut = self._conns[i].send(topic, payload)
        except BaseException:
            slots.release()
            raise
        self.in_flight.add(fut)

        def done(f: asyncio.Future[int]) -> None:
            slots.release()
            self.in_flight.discard(f)
            on_ack(None if f.cancelled() or f.exception() else f.result())

        fut.add_done_callback(done)

    async def drain(self, timeout_s: float) -> int:
        """Wait for the outstanding PUBACKs; returns how many never came."""
        pending = set(self.in_flight)
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=timeout_s)
        for f in pending:
            f.cancel()
        return len(pending)
