"""The shipped queue and persistence settings: a stalled, absent or restarting ingester
loses nothing, and (control) Mosquitto's defaults would have lost readings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.contract.v1 import topic_readings
from tests.security.broker import SHIPPED_CONF, Pki, ShippedMosquitto, V5Client, tls_context

pytestmark = pytest.mark.mosquitto

N = 5000
SHARED = "$share/ingest/" + topic_readings("+")
MARKER = b"marker"


def payloads(start: int, stop: int) -> list[bytes]:
    # ~1 KiB each, like a small readings batch
    return [f"{i:06d}".encode() + b"." * 1018 for i in range(start, stop)]


def ingester(broker: ShippedMosquitto, certs: Pki, **kw: object) -> V5Client:
    ctx = tls_context(certs, *certs.service("svc-ingest"))
    client = V5Client(
        broker.port,
        ctx,
        "ingest-1",
        clean_start=False,
        session_expiry_s=3600,
        **kw,  # type: ignore[arg-type]
    )
    assert client.connect() == 0
    return client


def hub(broker: ShippedMosquitto, certs: Pki) -> V5Client:
    client = V5Client(broker.port, tls_context(certs, *certs.hub("hub-1")), "hub-1")
    assert client.connect() == 0
    return client


def drain(broker: ShippedMosquitto, certs: Pki) -> list[bytes]:
    """Reconnect the ingester's session and take everything queued for it.

    It subscribes again, as gateway.ingest.mqtt_session does on every connect. The hub
    then publishes a marker: the session's queued messages are delivered before it, so
    once the marker is in, the queue is empty.
    """
    back = ingester(broker, certs)
    assert back.subscribe(SHARED) == [1]
    sender = hub(broker, certs)
    try:
        assert sender.publish(topic_readings("hub-1"), MARKER) < 0x80
        back.wait_for(lambda: MARKER in back.payloads(), 120, what="the marker")
        return [p for p in back.payloads() if p != MARKER]
    finally:
        sender.close()
        back.close()


def publish(broker: ShippedMosquitto, certs: Pki, batch: list[bytes]) -> list[int]:
    sender = hub(broker, certs)
    try:
        return sender.publish_many(topic_readings("hub-1"), batch)
    finally:
        sender.close()


def test_absent_ingester_and_broker_restart_lose_nothing(
    make_broker: Callable[..., ShippedMosquitto], certs: Pki
) -> None:
    broker = make_broker()
    first = ingester(broker, certs)
    assert first.subscribe(SHARED) == [1]
    first.close()  # the session stays, with its shared subscription

    assert all(rc == 0 for rc in publish(broker, certs, payloads(0, N // 2)))
    broker.stop()  # SIGTERM: the snapshot includes the queue
    broker.start()
    # the ingester comes back, subscribes again and is gone again
    again = ingester(broker, certs, receive_maximum=1, manual_ack=True)
    assert again.subscribe(SHARED) == [1]
    again.close()
    assert all(rc == 0 for rc in publish(broker, certs, payloads(N // 2, N)))

    got = drain(broker, certs)
    assert sorted(set(got)) == payloads(0, N)
    assert "dropped" not in broker.log_text()


def test_known_limitation_shared_subscription_is_not_restored_after_restart(
    broker: ShippedMosquitto, certs: Pki
) -> None:
    """Mosquitto 2.0.11 restores a session's queued messages after a restart but not its
    shared subscription: until an ingester subscribes again, a hub's batch has no
    subscriber. The broker says so in the PUBACK (0x10, "no matching subscribers"), the
    only signal a hub has; docs/security.md says what the publisher must do with it."""
    first = ingester(broker, certs)
    assert first.subscribe(SHARED) == [1]
    first.close()
    assert publish(broker, certs, payloads(0, 1)) == [0]  # queued for the session
    broker.stop()
    broker.start()
    assert publish(broker, certs, payloads(1, 2)) == [0x10]  # nobody will get this one
    assert drain(broker, certs) == payloads(0, 1)


def test_connected_ingester_that_stops_acking_loses_nothing(
    broker: ShippedMosquitto, certs: Pki
) -> None:
    stalled = ingester(broker, certs, receive_maximum=10, manual_ack=True)
    assert stalled.subscribe(SHARED) == [1]
    assert all(rc == 0 for rc in publish(broker, certs, payloads(0, N)))
    # the broker sends no more than the Receive Maximum while nothing is acknowledged
    stalled.wait_for(lambda: len(stalled.messages) == 10, what="a full receive window")
    stalled.close()  # gone without acknowledging anything

    got = drain(broker, certs)
    assert sorted(set(got)) == payloads(0, N)
    assert "dropped" not in broker.log_text()


def test_control_mosquitto_defaults_would_drop_readings(
    make_broker: Callable[..., ShippedMosquitto], certs: Pki
) -> None:
    """The same scenario with the two queue lines at Mosquitto's defaults loses data:
    the test above can see a drop, and the shipped values are what prevents it."""
    text = SHIPPED_CONF.read_text()
    for line, default in [
        ("max_queued_messages 100000000", "max_queued_messages 1000"),
        ("max_queued_bytes 2147483647", "max_queued_bytes 0"),
    ]:
        assert text.count(f"\n{line}\n") == 1, line
        text = text.replace(f"\n{line}\n", f"\n{default}\n")
    broker = make_broker(config_text=text)
    first = ingester(broker, certs)
    assert first.subscribe(SHARED) == [1]
    first.close()
    # every one of them is PUBACKed to the hub, which then forgets it
    assert all(rc == 0 for rc in publish(broker, certs, payloads(0, N)))

    got = drain(broker, certs)
    assert len(set(got)) == 1000
    assert "Outgoing messages are being dropped" in broker.log_text()
