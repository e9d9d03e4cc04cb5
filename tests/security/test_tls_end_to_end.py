"""The real hub publisher and the real ingest receiver, each with its own certificate,
through Mosquitto on the shipped config."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.publisher import Publisher, PublisherConfig
from gateway.contract.urls import MqttUrl
from gateway.contract.v1 import HubStatus, ReadingsBatch, topic_readings, topic_status
from gateway.ingest.mqtt_session import Delivery, MqttReceiver, ReceiverConfig
from tests.asyncutil import until
from tests.factories import cgm_reading
from tests.security.broker import Pki, ShippedMosquitto

pytestmark = pytest.mark.mosquitto


def publisher(
    broker: ShippedMosquitto, certs: Pki, box: Outbox, hub_id: str, cert_of: str
) -> Publisher:
    cert, key = certs.hub(cert_of)

    async def status() -> HubStatus:
        return HubStatus(hub_id=hub_id, online=True)

    return Publisher(
        PublisherConfig(
            hub_id=hub_id,
            mqtt=MqttUrl.parse(broker.url),
            client_id=hub_id,
            max_batch_readings=50,
            ca_file=str(certs.ca),
            cert_file=str(cert),
            key_file=str(key),
            backoff_initial_s=0.05,
            backoff_max_s=0.5,
        ),
        box,
        status,
    )


def receiver(broker: ShippedMosquitto, certs: Pki, got: list[Delivery]) -> MqttReceiver:
    cert, key = certs.service("svc-ingest")
    holder: list[MqttReceiver] = []

    def on_delivery(d: Delivery) -> None:
        got.append(d)
        holder[0].ack(d)  # stands in for "durably written"

    r = MqttReceiver(
        ReceiverConfig(
            mqtt=MqttUrl.parse(broker.url),
            client_id="ingest-e2e",
            topics=["$share/ingest/" + topic_readings("+"), topic_status("+")],
            ca_file=str(certs.ca),
            cert_file=str(cert),
            key_file=str(key),
            protocol="5",
        ),
        on_delivery,
    )
    holder.append(r)
    return r


def batches(got: list[Delivery], hub_id: str) -> list[ReadingsBatch]:
    topic = topic_readings(hub_id)
    return [ReadingsBatch.model_validate_json(d.payload) for d in got if d.topic == topic]


def keys(got: list[Delivery], hub_id: str) -> list[str]:
    return [r.key for b in batches(got, hub_id) for r in b.readings]


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_edge_publisher_to_ingest_receiver_over_tls(
    broker: ShippedMosquitto, certs: Pki, tmp_path: Path
) -> None:
    got: list[Delivery] = []
    recv = receiver(broker, certs, got)
    recv_task = asyncio.create_task(recv.run(backoff_initial_s=0.05, backoff_max_s=0.5))
    try:
        await until(lambda: recv.connected, what="ingest receiver connected over TLS")
        async with Outbox(tmp_path / "outbox.db") as box:
            readings = [cgm_reading("CGM1", i * 5, 100.0 + i) for i in range(120)]
            await box.put(
                "CGM1", [(r["key"], json.dumps(r)) for r in readings], stream="records", cursor=119
            )
            pub = publisher(broker, certs, box, "hub-1", cert_of="hub-1")
            pub_task = asyncio.create_task(pub.run())
            try:
                await until(lambda: box.depth == 0, what="outbox drained")
                await until(lambda: len(keys(got, "hub-1")) == 120, what="every reading")
            finally:
                await stop(pub_task)
        assert pub.stats.protocol == "5"
        assert sorted(keys(got, "hub-1")) == sorted(r["key"] for r in readings)
        assert {b.hub_id for b in batches(got, "hub-1")} == {"hub-1"}
        # the hub's retained status made it too (its topic is in its rights)
        statuses = [d for d in got if d.topic == topic_status("hub-1")]
        assert statuses and HubStatus.model_validate_json(statuses[0].payload).online
        assert recv.protocol == "5"
    finally:
        await recv.close()
        await stop(recv_task)
    log = broker.log_text()
    assert "u'hub-1'" in log and "u'svc-ingest'" in log  # each with its own identity


async def test_hub_publishing_under_another_id_is_refused_and_keeps_its_rows(
    broker: ShippedMosquitto, certs: Pki, tmp_path: Path
) -> None:
    """hub-1's certificate on a hub configured as hub-2: the broker refuses every batch
    (PUBACK 0x87). The readings must stay in the outbox, not be deleted as delivered."""
    got: list[Delivery] = []
    recv = receiver(broker, certs, got)
    recv_task = asyncio.create_task(recv.run(backoff_initial_s=0.05, backoff_max_s=0.5))
    try:
        await until(lambda: recv.connected, what="ingest receiver connected")
        async with Outbox(tmp_path / "outbox.db") as box:
            r = cgm_reading("CGM1", 0, 100.0)
            await box.put("CGM1", [(r["key"], json.dumps(r))], stream="records", cursor=0)
            pub = publisher(broker, certs, box, "hub-2", cert_of="hub-1")
            pub_task = asyncio.create_task(pub.run())
            try:
                # The refused batch stays in the outbox and is counted in stats.refused.
                await until(
                    lambda: box.depth == 0 or getattr(pub.stats, "refused", 0) > 0,
                    what="the refused batch to be handled",
                )
            finally:
                await stop(pub_task)
            depth = box.depth
    finally:
        await recv.close()
        await stop(recv_task)
    assert keys(got, "hub-2") == []
    assert depth == 1, "a batch the broker refused (0x87) was deleted from the outbox"
