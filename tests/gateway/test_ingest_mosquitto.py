"""The ingester against a real Mosquitto: stored once, duplicates absorbed, bad input
quarantined, unassigned devices parked then relinked."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from prometheus_client import generate_latest

from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.contract.v1 import topic_readings
from gateway.ingest.ingester import IngestConfig, Ingester
from gateway.ingest.mqtt_session import ReceiverConfig
from gateway.registry.service import Registry
from gateway.store.sqlite import SqliteStore
from tests.asyncutil import until
from tests.factories import batch, bg_reading, cgm_reading
from tests.harness import MosquittoServer

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def publish_all(url: str, topic: str, payloads: list[bytes]) -> None:
    u = MqttUrl.parse(url)
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id="test-pub", protocol=paho.MQTTv5
    )
    client.connect(u.host, u.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    reg = Registry(StoreUrl.parse(f"sqlite:///{tmp_path}/registry.db"))
    await reg.open()
    await reg.add_hub("hub-1")
    for patient, serial, kind in [("P-1", "CGM1", "cgm"), ("P-2", "BG1", "glucose_meter")]:
        await reg.add_patient(patient)
        await reg.add_device(serial, kind, hub_id="hub-1")
        await reg.assign(serial, patient, EPOCH)
    await reg.add_device("LATE", "cgm", hub_id="hub-1")
    yield reg
    await reg.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(StoreUrl.parse(f"sqlite:///{tmp_path}/readings.db"))
    await s.open()
    yield s
    await s.close()


async def test_end_to_end_through_mosquitto(
    mosquitto: MosquittoServer, registry: Registry, store: SqliteStore
) -> None:
    ingester = Ingester(
        ReceiverConfig(
            mqtt=MqttUrl.parse(mosquitto.url),
            client_id="ingest-test",
            topics=Ingester.default_topics(),
        ),
        store,
        registry,
        IngestConfig(relink_interval_s=0.2),
    )
    task = asyncio.create_task(ingester.run())
    await until(lambda: ingester.receiver.connected)
    assert ingester.receiver.protocol == "5"

    good = [batch("hub-1", [cgm_reading("CGM1", i * 5, 100.0 + i)]) for i in range(200)]
    meter = batch("hub-1", [bg_reading("BG1", s, 0.001 * (s + 1)) for s in range(10)])
    late = batch("hub-1", [cgm_reading("LATE", 0, 150.0)])
    bad = [b"{oops", batch("hub-9", [cgm_reading("CGM1", 999, 100.0)])]
    payloads = [*good, meter, *good[:50], late, *bad]  # 50 redeliveries of the same batches
    started = time.time()
    await asyncio.to_thread(publish_all, mosquitto.url, topic_readings("hub-1"), payloads)

    await until(lambda: ingester.stats.messages == len(payloads))
    assert await store.count() == 210
    assert ingester.stats.duplicates == 50
    assert dict(ingester.stats.quarantined) == {"malformed_json": 1, "hub_mismatch": 1}
    assert ingester.stats.acked == len(payloads)
    # the counters read at scrape time agree with the stats
    text = generate_latest(ingester.metrics.registry).decode()
    assert f"diatabase_messages_received_total {float(len(payloads))}" in text
    assert "diatabase_inflight_messages 0.0" in text
    first = re.search(r"^diatabase_first_message_time_seconds (\S+)$", text, re.M)
    assert first is not None and started <= float(first.group(1)) <= time.time()
    last_write = re.search(r"^diatabase_last_write_time_seconds (\S+)$", text, re.M)
    assert last_write is not None
    assert float(first.group(1)) <= float(last_write.group(1)) <= time.time()
    quarantined = await registry.quarantine_list()
    assert {q.reason for q in quarantined} == {"malformed_json", "hub_mismatch"}
    assert await registry.parked_count() == 1

    # The parked reading is written once its device is assigned, without a restart.
    await registry.add_patient("P-3")
    await registry.assign("LATE", "P-3", EPOCH)
    await until(lambda: ingester.stats.relinked == 1)
    assert await registry.parked_count() == 0
    latest = {r.patient_id: r.mg_dl for r in await store.latest_per_patient()}
    assert latest == {"P-1": 299.0, "P-2": 1000.0, "P-3": 150.0}

    ingester.stop()
    await asyncio.wait_for(task, 10)


async def test_two_replicas_on_a_shared_subscription_split_the_stream(
    mosquitto: MosquittoServer, registry: Registry, store: SqliteStore
) -> None:
    """MQTT v5 shared subscription: each message goes to one replica; all stored once."""
    replicas = [
        Ingester(
            ReceiverConfig(
                mqtt=MqttUrl.parse(mosquitto.url),
                client_id=f"ingest-{n}",
                topics=Ingester.default_topics("ingest"),
            ),
            store,
            registry,
        )
        for n in (1, 2)
    ]
    assert replicas[0].receiver.config.topics == ["$share/ingest/diatabase/v1/hubs/+/readings"]
    tasks = [asyncio.create_task(r.run()) for r in replicas]
    await until(lambda: all(r.receiver.connected for r in replicas), what="both connected")
    payloads = [batch("hub-1", [cgm_reading("CGM1", i * 5, 100.0)]) for i in range(400)]
    await asyncio.to_thread(publish_all, mosquitto.url, topic_readings("hub-1"), payloads)
    await until(lambda: sum(r.stats.messages for r in replicas) == 400, what="all delivered")
    for r in replicas:
        r.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert all(r.stats.messages > 0 for r in replicas)  # the load was split
    assert await store.count() == 400
    assert sum(r.stats.duplicates for r in replicas) == 0
