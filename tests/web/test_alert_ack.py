"""Acknowledging an alert in the web app republishes the patient's retained alert state, so
pagers and other screens watching ``diatabase/v1/alerts/{patient}`` see it (real Mosquitto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import httpx
import pytest

from tests.harness import MosquittoServer

pytestmark = pytest.mark.mosquitto


async def retained(url: str, topic: str) -> dict[str, Any]:
    """The retained message on ``topic``, read by a client that subscribes afterwards."""
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port), identifier="ack-test-reader") as client:
        await client.subscribe(topic, qos=1)
        async for message in client.messages:
            assert message.retain
            return json.loads(bytes(message.payload))  # type: ignore[arg-type]
    raise AssertionError("no message")


async def test_acknowledge_republishes_the_retained_alert_state(
    make_web: Any, mosquitto: MosquittoServer
) -> None:
    web = await make_web(mqtt=mosquitto.url)
    now = datetime.now(UTC).replace(microsecond=0)
    await web.registry.add_patient("P-A")
    low = await web.registry.start_alert("P-A", "low", "warning", now, value_mg_dl=62)
    high = await web.registry.start_alert("P-B", "high", "warning", now, value_mg_dl=300)
    assert low is not None and high is not None

    async with httpx.AsyncClient(base_url=web.url) as http:
        resp = await http.post(
            f"/api/alerts/{low.id}/ack",
            headers={"accept": "application/json", "x-forwarded-user": "nurse-3"},
        )
        assert resp.status_code == 200, resp.text

    state = await retained(mosquitto.url, "diatabase/v1/alerts/P-A")
    assert state["patient"] == "P-A"
    assert state["changed"] == {"id": low.id, "kind": "low", "change": "acknowledged"}
    (alert,) = state["open"]  # only this patient's alerts
    assert alert["id"] == low.id and alert["acknowledged_at"] is not None


async def test_acknowledge_without_a_broker_still_acknowledges(make_web: Any) -> None:
    web = await make_web(mqtt="mqtt://127.0.0.1:9")  # nothing listens there
    now = datetime.now(UTC).replace(microsecond=0)
    await web.registry.add_patient("P-A")
    low = await web.registry.start_alert("P-A", "low", "warning", now, value_mg_dl=62)
    assert low is not None
    async with httpx.AsyncClient(base_url=web.url) as http:
        resp = await http.post(f"/api/alerts/{low.id}/ack", headers={"accept": "application/json"})
    assert resp.status_code == 200
    (stored,) = await web.registry.open_alerts("P-A")
    assert stored.acknowledged_at is not None
