"""A stream of malformed JSON, schema violations, oversized payloads, hub/topic mismatch,
NaN and out-of-range values interleaved with valid batches, through a real Mosquitto into
InfluxDB with the registry on PostgreSQL: every valid reading stored, every bad part
quarantined with the right reason."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.contract.v1 import topic_readings
from gateway.ingest.ingester import IngestConfig, Ingester
from gateway.ingest.mqtt_session import ReceiverConfig
from gateway.ingest.pipeline import PipelineConfig
from gateway.registry.service import Registry
from gateway.store.influx1 import Influx1Store
from tests.asyncutil import until
from tests.factories import batch, cgm_reading
from tests.harness import MosquittoServer
from tests.mqttutil import publish_many

pytestmark = [pytest.mark.postgres, pytest.mark.influxdb]


async def test_hostile_stream_keeps_every_valid_reading(
    mosquitto: MosquittoServer, influx_db: str, pg_url: str
) -> None:
    registry = Registry(StoreUrl.parse(pg_url))
    await registry.open()
    store = Influx1Store(StoreUrl.parse(influx_db))
    await store.open()
    try:
        await registry.add_hub("hub-1")
        await registry.add_patient("P-1")
        await registry.add_device("CGM1", "cgm", hub_id="hub-1")
        await registry.assign("CGM1", "P-1", datetime(2026, 1, 1, tzinfo=UTC))

        valid: list[bytes] = []
        bad: list[tuple[bytes, str]] = []
        for i in range(300):
            valid.append(batch("hub-1", [cgm_reading("CGM1", i * 5, 60.0 + i % 200)]))
        out_of_range = batch("hub-1", [cgm_reading("CGM1", 5000, 700.0)])  # flagged, stored
        nan_value = batch("hub-1", [cgm_reading("CGM1", 5005, 100.0)]).replace(b"100.0", b"NaN")
        bad += [
            (b"{not json", "malformed_json"),
            (
                json.dumps({"schema": "diatabase.readings/v1", "hub_id": "hub-1"}).encode(),
                "schema_violation",
            ),
            (b'{"x": "' + b"a" * 70_000 + b'"}', "oversized"),
            (batch("hub-2", [cgm_reading("CGM1", 9000, 100.0)]), "hub_mismatch"),
            (nan_value, "invalid_reading"),
            (batch("hub-1", [cgm_reading("STRANGER", 1, 100.0)]), "unknown_device"),
        ]
        stream = list(valid)
        for j, (payload, _reason) in enumerate(bad):
            stream.insert(j * 40 + 7, payload)  # interleaved
        stream.append(out_of_range)

        ingester = Ingester(
            ReceiverConfig(
                mqtt=MqttUrl.parse(mosquitto.url),
                client_id="ingest-hostile",
                topics=Ingester.default_topics(),
            ),
            store,
            registry,
            IngestConfig(pipeline=PipelineConfig(max_payload_bytes=64 * 1024)),
        )
        task = asyncio.create_task(ingester.run())
        await until(lambda: ingester.receiver.connected, what="connected")
        await asyncio.to_thread(publish_many, mosquitto.url, topic_readings("hub-1"), stream)
        await until(lambda: ingester.stats.messages == len(stream), what="all messages handled")
        ingester.stop()
        await asyncio.wait_for(task, 15)

        assert await store.count() == len(valid) + 1
        assert dict(ingester.stats.quarantined) == {reason: 1 for _p, reason in bad}
        assert await registry.quarantine_counts() == {reason: 1 for _p, reason in bad}
        flagged = await store.query(
            "SELECT mg_dl, flags FROM glucose WHERE flags =~ /out_of_range/"
        )
        assert [r["mg_dl"] for r in flagged] == [700.0]
    finally:
        await store.close()
        await registry.close()


async def test_reading_the_database_refuses_is_quarantined_once(
    mosquitto: MosquittoServer, influx_db: str, tmp_path: object
) -> None:
    """InfluxDB refuses one point (a field type conflict from another writer): that reading
    is quarantined as store_rejected, its neighbours are stored and acknowledged."""
    registry = Registry(StoreUrl.parse(f"sqlite:///{tmp_path}/registry.db"))
    await registry.open()
    store = Influx1Store(StoreUrl.parse(influx_db))
    await store.open()
    try:
        await registry.add_hub("hub-1")
        await registry.add_patient("P-1")
        await registry.add_device("CGM1", "cgm", hub_id="hub-1")
        await registry.assign("CGM1", "P-1", datetime(2026, 1, 1, tzinfo=UTC))
        # Another writer made "flags" a float field in the same shard (type conflicts are
        # per shard: the point sits next to the readings' times); our flag is a string.
        resp = await store.http.post(
            "/write",
            params={"db": store.database},
            content=b"glucose,device=X,kind=cgm,patient=P-9 value=1.0,flags=1.0 1793516400000000000",
        )
        assert resp.status_code == 204
        readings = [cgm_reading("CGM1", i * 5, 100.0) for i in range(5)]
        readings.append(cgm_reading("CGM1", 25, 700.0))  # flagged out_of_range: refused
        ingester = Ingester(
            ReceiverConfig(
                mqtt=MqttUrl.parse(mosquitto.url),
                client_id="ingest-refused",
                topics=Ingester.default_topics(),
            ),
            store,
            registry,
        )
        task = asyncio.create_task(ingester.run())
        await until(lambda: ingester.receiver.connected, what="connected")
        await asyncio.to_thread(
            publish_many, mosquitto.url, topic_readings("hub-1"), [batch("hub-1", readings)]
        )
        await until(lambda: ingester.stats.messages == 1, what="handled")
        ingester.stop()
        await asyncio.wait_for(task, 15)
        assert ingester.stats.stored == 5
        assert dict(ingester.stats.quarantined) == {"store_rejected": 1}
        assert await registry.quarantine_counts() == {"store_rejected": 1}
    finally:
        await store.close()
        await registry.close()
