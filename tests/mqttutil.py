"""Publishing test traffic with paho, with a bounded in-flight window (packet ids wrap at
65,535: an uncapped publisher breaks past that)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import paho.mqtt.client as paho

from gateway.contract.urls import MqttUrl


def publish_many(
    url: str,
    topic: str,
    payloads: Iterable[bytes],
    *,
    client_id: str = "test-pub",
    window: int = 500,
) -> int:
    """Publish QoS 1 and wait for every PUBACK; returns how many were published."""
    u = MqttUrl.parse(url)
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    slots = threading.Semaphore(window)
    client.on_publish = lambda *_args: slots.release()
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.connect(u.host, u.port)
    client.loop_start()
    count = 0
    try:
        infos = []
        for payload in payloads:
            if not slots.acquire(timeout=60):
                raise TimeoutError("broker stopped acknowledging")
            infos.append(client.publish(topic, payload, qos=1))
            count += 1
        for info in infos:
            info.wait_for_publish(60)
            if not info.is_published():
                raise TimeoutError("publish not acknowledged")
    finally:
        client.loop_stop()
        client.disconnect()
    return count
