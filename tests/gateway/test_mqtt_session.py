"""The ingester's MQTT receiver against a real Mosquitto: every message in order and
intact (small and large, v5 properties), PUBACKs only when asked, unacked messages
redelivered on the next connection, the receive window respected, 3.1.1 too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.contract.urls import MqttUrl
from gateway.ingest.mqtt_session import Delivery, MqttReceiver, ReceiverConfig
from tests.asyncutil import until
from tests.harness import MosquittoServer

TOPIC = "diatabase/v1/hubs/hub-1/readings"


def publish_sync(url: str, payloads: list[bytes], *, with_props: bool = False) -> None:
    u = MqttUrl.parse(url)
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="pub", protocol=paho.MQTTv5)
    c.connect(u.host, u.port)
    c.loop_start()
    try:
        props = None
        if with_props:  # the broker forwards these: the receiver must skip them
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = 3600
            props.UserProperty = [("k", "v" * 200)]
        infos = [c.publish(TOPIC, p, qos=1, properties=props) for p in payloads]
        for info in infos:
            info.wait_for_publish(20)
            assert info.is_published()
    finally:
        c.loop_stop()
        c.disconnect()


async def publish(url: str, payloads: list[bytes], *, with_props: bool = False) -> None:
    await asyncio.to_thread(publish_sync, url, payloads, with_props=with_props)


@contextlib.asynccontextmanager
async def running(r: MqttReceiver) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(r.run(backoff_initial_s=0.05, backoff_max_s=0.2))
    try:
        await until(lambda: r.connected, what="receiver connected")
        yield task
    finally:
        await r.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def receiver(url: str, got: list[Delivery], **kw: object) -> MqttReceiver:
    cfg = ReceiverConfig(
        mqtt=MqttUrl.parse(url), client_id="rx-1", topics=["diatabase/v1/hubs/+/readings"]
    )
    for k, v in kw.items():
        setattr(cfg, k, v)
    return MqttReceiver(cfg, got.append)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_every_message_intact_in_order_and_acked_in_one_write(
    mosquitto: MosquittoServer, protocol: str
) -> None:
    got: list[Delivery] = []
    # small ones, one larger than a socket read (reassembled from many chunks), small again
    payloads = [f"m{i}".encode() * 50 for i in range(300)]
    payloads.insert(150, bytes(range(256)) * 2000)  # 512 KB
    r = receiver(mosquitto.url, got, protocol=protocol, receive_maximum=1000)
    async with running(r):
        assert r.protocol == protocol
        sender = asyncio.create_task(publish(mosquitto.url, payloads, with_props=protocol == "5"))
        # acknowledged in batches (3.1.1: the broker sends at most 100 unacked)
        while r.unacked or len(got) < len(payloads):
            await until(lambda: r.unacked > 0, what="a batch")
            assert r.ack_many(got[len(got) - r.unacked :]) > 0
        await sender
        assert [d.payload for d in got] == payloads
        assert {d.topic for d in got} == {TOPIC} and {d.qos for d in got} == {1}
        assert r.unacked == 0
    # acknowledged: nothing comes back on the next connection
    again: list[Delivery] = []
    r2 = receiver(mosquitto.url, again, protocol=protocol)
    async with running(r2):
        await publish(mosquitto.url, [b"marker"])
        await until(lambda: len(again) == 1, what="marker")
    assert [d.payload for d in again] == [b"marker"]


async def test_unacked_messages_are_redelivered_and_stale_acks_skipped(
    mosquitto: MosquittoServer,
) -> None:
    got: list[Delivery] = []
    r = receiver(mosquitto.url, got, receive_maximum=10)
    sent = [f"{i}".encode() for i in range(25)]
    async with running(r):
        await publish(mosquitto.url, sent)
        # the receive window: no more than 10 unacked messages are sent to us
        await until(lambda: len(got) == 10, what="one window")
        with pytest.raises(AssertionError):
            await until(lambda: len(got) > 10, deadline_s=0.5)
        assert r.ack_many(got[:4]) == 4
        await until(lambda: len(got) >= 14, what="more after the ack")
        first_generation = list(got)
    # reconnect: everything not acknowledged comes again, in order
    got.clear()
    async with running(r):
        # an ack of the old connection's delivery is not sent on the new one
        assert r.ack_many(first_generation[4:]) == 0
        while True:
            await until(lambda: r.unacked > 0 or len(got) >= 21, what="redelivery")
            r.ack_many(got[len(got) - r.unacked :])
            if len(got) >= 21:
                break
        assert [d.payload for d in got] == sent[4:]
    got.clear()
    async with running(r):
        await publish(mosquitto.url, [b"end"])
        await until(lambda: len(got) == 1)
    assert [d.payload for d in got] == [b"end"]


async def test_reconnects_when_the_broker_restarts(mosquitto: MosquittoServer) -> None:
    got: list[Delivery] = []
    changes: list[bool] = []
    r = receiver(mosquitto.url, got)
    r.on_connection_change = changes.append
    async with running(r):
        mosquitto.stop()
        await until(lambda: not r.connected, what="disconnect seen")
        mosquitto.start()
        await until(lambda: r.connected, what="reconnected")
        await publish(mosquitto.url, [b"after"])
        await until(lambda: len(got) == 1)
        assert r.publish("diatabase/v1/quarantine", b"notice")
    assert changes[:3] == [True, False, True]
