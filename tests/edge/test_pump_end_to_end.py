"""Insulin pumps end to end: a virtual IDS pump read through the bleak API by the hub agent,
published over a real Mosquitto, stored by the ingester, and its annunciations alerting.

Boluses (IU) and delivered basal rates (IU/h) are checked against the pump's ground
truth; pump events (reference time, reservoir, annunciations) carry no value and arrive
with their fields in ``details``; an occlusion raises ``pump_occlusion`` and the user
confirming it on the pump clears it; reservoir low raises ``reservoir_low``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.ids import AnnunciationStatus
from drivers.virtual import SimClock, VirtualWorld
from edge.settings import DeviceConfig
from tests.asyncutil import until, until_async
from tests.edge.test_durability import (
    START,
    backend,
    edge_settings,
    quick_agent,
    register,
    running,
    sync_polled,
    truth_keys,
)
from tests.harness import MosquittoServer

pytestmark = pytest.mark.ble

OCCLUSION = 0x003C
RESERVOIR_LOW = 0x0066


async def test_pump_history_and_annunciations_reach_storage_and_alerts(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    clock = SimClock(START, speed=60)
    async with VirtualWorld(clock) as world, backend(tmp_path, mosquitto.url) as b:
        pump = await world.add_pump("PUMP-E2E", history=timedelta(days=1))
        settings = edge_settings(
            tmp_path,
            mosquitto.url,
            [DeviceConfig(kind="insulin_pump", address=pump.address, poll_interval_s=3600)],
        )
        await register(b, settings.hub_id, tmp_path / "hub-signing.key", world)
        agent = quick_agent(settings, world)

        def alerts_are(expected: set[str]) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return {a.kind for a in await b.registry.open_alerts("P-1")} == expected

            return check

        async with running(agent):
            await until(lambda: agent.tasks and agent.tasks[0].syncs >= 1, 30, "first sync")
            clock.pause()
            occlusion_id = pump.annunciate(clock.now(), OCCLUSION)
            pump.annunciate(clock.now(), RESERVOIR_LOW)
            await sync_polled(agent.tasks)
            await until_async(alerts_are({"pump_occlusion", "reservoir_low"}), 30, "alerts")

            pump.annunciate(clock.now(), OCCLUSION, AnnunciationStatus.CONFIRMED)
            await sync_polled(agent.tasks)
            await until_async(alerts_are({"reservoir_low"}), 30, "occlusion cleared")
            await until(lambda: agent.outbox.depth == 0, what="outbox drained")

        stored = await b.store.all_readings()
        by_key = {r.key: r for r in stored}
        assert len(by_key) == len(stored)  # nothing twice
        truth = truth_keys(world)
        assert truth and truth <= set(by_key)
        for p in world.produced():  # every bolus and basal change, value and unit as sent
            r = next(r for r in stored if r.kind == p.kind and r.device_time == p.device_time)
            assert (r.value, r.unit, r.mg_dl) == (pytest.approx(p.value), p.unit, None)
        kinds = {r.kind for r in stored}
        assert {"insulin_bolus", "insulin_basal", "insulin_event"} <= kinds
        events = [r for r in stored if r.kind == "insulin_event"]
        assert all(r.value is None and r.unit == "" for r in events)
        # every history record the pump holds arrived: truth + events, parts joined
        joined = sum(1 for rec in pump.records if rec.event_name == "bolus_delivered_part_2")
        assert len(stored) == len(pump.records) - joined
        annunciations = [r.details for r in events if "annunciation" in r.details]
        assert [(d["annunciation"], d["annunciation_status"]) for d in annunciations] == [
            ("occlusion_detected", "pending"),
            ("reservoir_low", "pending"),
            ("occlusion_detected", "confirmed"),
        ]
        assert annunciations[0]["annunciation_id"] == occlusion_id
        reservoir = [
            r.details
            for r in events
            if r.details.get("event_type") == "reservoir_remaining_amount_changed"
        ]
        assert reservoir  # its amount in IU, as a number, under the event's field name
        assert all(
            any(k.endswith("_iu") and isinstance(v, float) for k, v in d.items()) for d in reservoir
        )
