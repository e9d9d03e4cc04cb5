"""Signed batches through a real Mosquitto: a value tampered with in transit is
quarantined, an unsigned batch from a hub that must sign is quarantined, a good one is
stored with the id of the key that signed it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.contract.signing import Signer, verify
from gateway.contract.urls import MqttUrl, StoreUrl
from gateway.contract.v1 import ReadingsBatch, topic_readings
from gateway.ingest.ingester import Ingester
from gateway.ingest.mqtt_session import ReceiverConfig
from gateway.registry.service import Registry
from gateway.store.sqlite import SqliteStore
from tests.asyncutil import until
from tests.factories import batch, cgm_reading
from tests.harness import MosquittoServer
from tests.mqttutil import publish_many


def test_signature_covers_every_byte(tmp_path: Path) -> None:
    signer = Signer.load_or_create(tmp_path / "hub.key")
    assert (tmp_path / "hub.key").stat().st_mode & 0o777 == 0o600
    assert Signer.load_or_create(tmp_path / "hub.key").key_id == signer.key_id  # reloaded
    signed = signer.sign(batch("hub-1", [cgm_reading("CGM1", 5, 112.0)]))
    assert ReadingsBatch.model_validate_json(signed).signature is not None
    assert verify(signed, signer.public_key_b64).valid
    tampered = signed.replace(b"112.0", b"212.0")
    assert verify(tampered, signer.public_key_b64).reason == "signature does not match the payload"
    other = Signer.load_or_create(tmp_path / "other.key")
    assert not verify(signed, other.public_key_b64).valid


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[Registry, SqliteStore, Signer]]:
    signer = Signer.load_or_create(tmp_path / "hub.key")
    reg = Registry(StoreUrl.parse(f"sqlite:///{tmp_path}/registry.db"))
    await reg.open()
    await reg.add_hub("hub-1", public_key=signer.public_key_b64, require_signature=True)
    await reg.add_patient("P-1")
    await reg.add_device("CGM1", "cgm", hub_id="hub-1")
    await reg.assign("CGM1", "P-1", datetime(2026, 1, 1, tzinfo=UTC))
    store = SqliteStore(StoreUrl.parse(f"sqlite:///{tmp_path}/readings.db"))
    await store.open()
    yield reg, store, signer
    await store.close()
    await reg.close()


async def test_tampered_in_transit_is_quarantined(
    mosquitto: MosquittoServer, parts: tuple[Registry, SqliteStore, Signer]
) -> None:
    registry, store, signer = parts
    ingester = Ingester(
        ReceiverConfig(
            mqtt=MqttUrl.parse(mosquitto.url),
            client_id="ingest-sig",
            topics=Ingester.default_topics(),
        ),
        store,
        registry,
    )
    task = asyncio.create_task(ingester.run())
    await until(lambda: ingester.receiver.connected, what="connected")
    good = signer.sign(batch("hub-1", [cgm_reading("CGM1", 5, 112.0)]))
    # A man in the middle (or a compromised broker) changes 112 mg/dL into 212.
    tampered = signer.sign(batch("hub-1", [cgm_reading("CGM1", 10, 112.0)])).replace(
        b"112.0", b"212.0"
    )
    unsigned = batch("hub-1", [cgm_reading("CGM1", 15, 100.0)])
    await asyncio.to_thread(
        publish_many, mosquitto.url, topic_readings("hub-1"), [good, tampered, unsigned]
    )
    await until(lambda: ingester.stats.messages == 3, what="three messages")
    ingester.stop()
    await asyncio.wait_for(task, 10)
    rows = await store.all_readings()
    assert [(r.mg_dl, r.signed_by) for r in rows] == [(112.0, signer.key_id)]
    assert dict(ingester.stats.quarantined) == {"bad_signature": 1, "unsigned": 1}
