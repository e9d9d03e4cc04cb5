"""Input limits of the shipped config: an oversized packet never gets through."""

from __future__ import annotations

import re

import pytest

from gateway.contract.v1 import topic_readings
from tests.security.broker import (
    SHIPPED_CONF,
    Pki,
    RawSession,
    ShippedMosquitto,
    V5Client,
    tls_context,
)

pytestmark = pytest.mark.mosquitto

LIMIT = 1024 * 1024  # docs/security.md, "Input limits"; ingester max_payload_bytes


def test_shipped_packet_limit_is_documented_value() -> None:
    assert re.findall(r"^max_packet_size (\d+)$", SHIPPED_CONF.read_text(), re.M) == [str(LIMIT)]


def test_oversized_publish_disconnects_the_hub_and_reaches_nobody(
    broker: ShippedMosquitto, certs: Pki
) -> None:
    ingest = V5Client(broker.port, tls_context(certs, *certs.service("svc-ingest")), "ingest")
    assert ingest.connect() == 0
    try:
        assert ingest.subscribe(topic_readings("+")) == [1]
        topic = topic_readings("hub-1")
        ctx = tls_context(certs, *certs.hub("hub-1"))
        # MQTT 3.1.1 is never told the limit, so the client cannot hold back: the broker
        # must enforce it. Mosquitto 2.0.11 counts the packet type byte and the remaining
        # length (topic length 2, topic, packet id 2, payload), not the 1-4 length bytes:
        # the largest payload that passes...
        fits = b"a" * (LIMIT - 1 - 2 - len(topic) - 2)
        with RawSession(broker.port, ctx) as session:
            assert session.connect("hub-1") == 0
            session.publish(topic, fits, packet_id=1)
        ingest.wait_for(lambda: len(ingest.messages) == 1, what="the largest allowed batch")
        # ...one byte more and the connection is closed without a PUBACK
        with RawSession(broker.port, ctx) as session:
            assert session.connect("hub-1") == 0
            with pytest.raises((ConnectionError, OSError)):
                session.publish(topic, fits + b"a", packet_id=2)
        with RawSession(broker.port, ctx) as session:  # barrier: a later batch arrives...
            assert session.connect("hub-1") == 0
            session.publish(topic, b"next", packet_id=3)
        ingest.wait_for(lambda: len(ingest.messages) == 2, what="the next batch")
        assert ingest.payloads() == [fits, b"next"]  # ...and the oversized one never did
    finally:
        ingest.close()
