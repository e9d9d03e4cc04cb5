"""Input hardening through a real Mosquitto: 10,000 generated hostile payloads interleaved
with valid batches; the ingester stays up, every valid reading is stored, every hostile
message is quarantined; a hub over its rate limit has the excess quarantined, not dropped."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.contract.v1 import topic_readings
from gateway.ingest.ingester import IngestConfig, Ingester
from gateway.ingest.mqtt_session import ReceiverConfig
from gateway.ingest.pipeline import PipelineConfig
from gateway.ingest.ratelimit import HubRateLimiter
from gateway.registry.service import Registry
from gateway.store.sqlite import SqliteStore
from tests.asyncutil import until
from tests.factories import batch, cgm_reading
from tests.harness import MosquittoServer
from tests.mqttutil import publish_many


def hostile(rnd: random.Random, template: bytes) -> bytes:
    """One of many ways a payload can be wrong."""
    kind = rnd.randrange(9)
    if kind == 0:  # random bytes
        return rnd.randbytes(rnd.randrange(1, 400))
    if kind == 1:  # truncated valid payload
        return template[: rnd.randrange(1, len(template) - 1)]
    if kind == 2:  # byte flips in a valid payload
        b = bytearray(template)
        for _ in range(rnd.randrange(1, 6)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        return bytes(b) if bytes(b) != template else b"{"
    if kind == 3:  # deep nesting
        depth = rnd.randrange(500, 5000)
        return b"[" * depth + b"]" * depth
    if kind == 4:  # wrong types in the envelope
        doc = json.loads(template)
        doc[rnd.choice(["hub_id", "sent_at", "batch_id", "readings", "schema"])] = rnd.choice(
            [None, 42, [], {}, "x" * 100, -1e308]
        )
        return json.dumps(doc).encode()
    if kind == 5:  # huge or non-finite numbers in a reading
        doc = json.loads(template)
        doc["readings"][0]["value"] = rnd.choice([1e308, -1e308, 10**400])
        return json.dumps(doc).replace("Infinity", "1e999").encode()
    if kind == 6:  # too many readings
        doc = json.loads(template)
        doc["readings"] = doc["readings"] * 1001
        return json.dumps(doc).encode()
    if kind == 7:  # oversized
        return b'{"pad":"' + b"z" * 70_000 + b'"}'
    # not JSON at all: unicode garbage
    return "".join(chr(rnd.randrange(0x20, 0x2FFF)) for _ in range(50)).encode()


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[Registry, SqliteStore]]:
    reg = Registry(StoreUrl.parse(f"sqlite:///{tmp_path}/registry.db"))
    await reg.open()
    await reg.add_hub("hub-1")
    await reg.add_patient("P-1")
    await reg.add_device("CGM1", "cgm", hub_id="hub-1")
    await reg.assign("CGM1", "P-1", datetime(2026, 1, 1, tzinfo=UTC))
    store = SqliteStore(StoreUrl.parse(f"sqlite:///{tmp_path}/readings.db"))
    await store.open()
    yield reg, store
    await store.close()
    await reg.close()


@pytest.mark.slow
async def test_ten_thousand_hostile_payloads(
    mosquitto: MosquittoServer, parts: tuple[Registry, SqliteStore]
) -> None:
    registry, store = parts
    rnd = random.Random(20261128)
    template = batch("hub-1", [cgm_reading("CGM1", 0, 100.0)])
    valid = [batch("hub-1", [cgm_reading("CGM1", 5 * i, 50.0 + i % 300)]) for i in range(1, 501)]
    stream: list[bytes] = []
    for i in range(10_000):
        stream.append(hostile(rnd, template))
        if i % 20 == 0:
            stream.append(valid[i // 20])
    ingester = Ingester(
        ReceiverConfig(
            mqtt=MqttUrl.parse(mosquitto.url),
            client_id="ingest-fuzz",
            topics=Ingester.default_topics(),
        ),
        store,
        registry,
        IngestConfig(pipeline=PipelineConfig(max_payload_bytes=64 * 1024)),
    )
    task = asyncio.create_task(ingester.run())
    await until(lambda: ingester.receiver.connected, what="connected")
    await asyncio.to_thread(publish_many, mosquitto.url, topic_readings("hub-1"), stream)
    await until(lambda: ingester.stats.messages == len(stream), deadline_s=120, what="all handled")
    assert not task.done()  # still up
    ingester.stop()
    await asyncio.wait_for(task, 15)
    stored = {r.key for r in await store.all_readings()}
    assert stored >= {json.loads(v)["readings"][0]["key"] for v in valid}
    # Every message is accounted for: each one either failed as a whole (one quarantine
    # entry) or had readings, each stored, a duplicate, parked or quarantined. A byte flip
    # can leave a payload valid (a changed digit): then it is stored, not lost.
    st = ingester.stats
    assert st.stored + st.duplicates + st.parked + st.quarantined_total >= len(stream)
    q = await registry.quarantine_counts()
    assert sum(q.values()) == st.quarantined_total > 9_000
    assert set(q) <= {
        "malformed_json",
        "schema_violation",
        "oversized",
        "invalid_reading",
        "hub_mismatch",
        "unknown_device",
        "future_time",
        "special_value",
        "unknown_topic",
    }


async def test_hub_over_its_rate_limit_is_quarantined_not_dropped(
    mosquitto: MosquittoServer, parts: tuple[Registry, SqliteStore]
) -> None:
    registry, store = parts
    ingester = Ingester(
        ReceiverConfig(
            mqtt=MqttUrl.parse(mosquitto.url),
            client_id="ingest-rate",
            topics=Ingester.default_topics(),
        ),
        store,
        registry,
        IngestConfig(hub_readings_per_s=0.001, hub_burst_readings=10),
    )
    task = asyncio.create_task(ingester.run())
    await until(lambda: ingester.receiver.connected, what="connected")
    msgs = [batch("hub-1", [cgm_reading("CGM1", 5 * i, 100.0)]) for i in range(25)]
    await asyncio.to_thread(publish_many, mosquitto.url, topic_readings("hub-1"), msgs)
    await until(lambda: ingester.stats.messages == 25, what="all handled")
    ingester.stop()
    await asyncio.wait_for(task, 10)
    assert await store.count() == 10
    assert await registry.quarantine_counts() == {"rate_limited": 15}


def test_token_bucket_refills() -> None:
    now = [0.0]
    limiter = HubRateLimiter(readings_per_s=10, burst=20, clock=lambda: now[0])
    assert limiter.allow("h", 20)
    assert not limiter.allow("h", 1)
    now[0] = 1.0  # one second later: 10 more tokens
    assert limiter.allow("h", 10) and not limiter.allow("h", 1)
    assert limiter.allow("other", 5)  # per hub
