"""Devices by advertised name and by service UUID with an allow list: the agent as shipped
(bleak scanner and clients on the virtual link, real outbox, real Mosquitto) serves the
devices it is asked to serve and never a neighbour's device of the same model."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from typer.testing import CliRunner

from drivers.virtual import VirtualWorld
from edge.agent import EdgeAgent
from edge.device_task import DeviceTask
from edge.settings import DeviceConfig, EdgeSettings, OutboxConfig
from gateway.cli.app import app
from gateway.contract.urls import MqttUrl
from tests.asyncutil import until
from tests.harness import MosquittoServer

pytestmark = pytest.mark.ble


def settings(tmp_path: Path, url: str, **kw: object) -> EdgeSettings:
    return EdgeSettings(
        hub_id="hub-disc",
        mqtt=MqttUrl.parse(url),
        outbox=OutboxConfig(path=tmp_path / "outbox.db"),
        signing_key=None,
        **kw,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running(agent: EdgeAgent) -> AsyncIterator[None]:
    task = asyncio.create_task(agent.run(), name="edge agent")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


def task_for(agent: EdgeAgent, address: str) -> DeviceTask:
    return next(t for t in agent.tasks if t.address == address)


async def test_a_name_filtered_device_is_found_and_synced(
    world: VirtualWorld, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    world.clock.pause()
    mine = await world.add_meter("BG-N1", history=timedelta(days=2))
    other = await world.add_meter("BG-N2", history=timedelta(days=2))
    s = settings(
        tmp_path,
        mosquitto.url,
        devices=[DeviceConfig(kind="glucose_meter", name=r".* BG-N1", poll_interval_s=3600)],
    )
    seen: set[str] = set()

    def scanner(detection_callback: Any, **kw: Any) -> BleakScanner:
        def spy(device: BLEDevice, adv: AdvertisementData) -> None:
            seen.add(device.address)
            detection_callback(device, adv)

        return world.scanner(detection_callback=spy, **kw)

    agent = EdgeAgent(s, client_factory=world.client_factory, scanner_factory=scanner)
    async with running(agent):
        await until(lambda: any(t.syncs for t in agent.tasks), what="the named meter synced")
        await until(lambda: other.address in seen, what="the other meter's advertisement")
        meter = task_for(agent, mine.address)
        assert meter.state.identity is not None and meter.state.identity.serial == "BG-N1"
        assert meter.state.records_read == len(mine.produced) > 0
        await until(lambda: agent.publisher.stats.readings >= len(mine.produced), what="published")
        # The other meter advertises too (same model, same service): never served.
        assert [t.address for t in agent.tasks] == [mine.address]


async def test_discovery_serves_the_allow_list_and_not_the_neighbour(
    world: VirtualWorld,
    mosquitto: MosquittoServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world.clock.pause()
    caplog.set_level(logging.INFO, logger="edge.discovery")
    cgm = await world.add_cgm("CGM-D1", history=timedelta(hours=3))  # allowed by address
    meter = await world.add_meter("BG-OURS", history=timedelta(days=1))  # allowed by serial
    neighbour = await world.add_meter("BG-NEXT-DOOR", history=timedelta(days=1))
    s = settings(
        tmp_path,
        mosquitto.url,
        # An address-configured device is served once, not again when discovered.
        devices=[DeviceConfig(kind="cgm", address=cgm.address)],
        discover_services=True,
        allow=[cgm.address.lower(), "BG-OURS"],
    )
    agent = EdgeAgent(s, client_factory=world.client_factory, scanner_factory=world.scanner)
    async with running(agent):
        await until(
            lambda: neighbour.address in caplog.text and "not in the allow list" in caplog.text,
            what="the neighbour identified and refused",
        )
        await until(
            lambda: len(agent.tasks) == 2 and all(t.syncs for t in agent.tasks),
            what="both allowed devices synced",
        )
        want = len(cgm.produced) + len(meter.produced)
        await until(lambda: agent.publisher.stats.readings >= want, what="published")
        served = sorted(t.address for t in agent.tasks)
        assert served == sorted([cgm.address, meter.address])
        assert task_for(agent, meter.address).state.records_read == len(meter.produced)
        assert agent.publisher.stats.readings == want  # nothing of the neighbour's
    assert neighbour.address not in served


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("discover_services = true\n", "discover_services needs an allow list"),
        ('[[devices]]\nkind = "cgm"\nname = "Meter ("\n', "is not a regular expression"),
        ('[[devices]]\nkind = "cgm"\n', "needs an address or a name pattern"),
    ],
)
def test_discovery_config_errors_are_one_line_exit_2(
    tmp_path: Path, toml: str, message: str
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'hub_id = "hub-1"\nmqtt = "mqtt://127.0.0.1:1"\n{toml}')
    result = CliRunner().invoke(app, ["edge", "run", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
