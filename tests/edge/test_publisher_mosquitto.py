"""The publisher drains the outbox in bounded batches and deletes rows only after PUBACK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from edge.outbox import Outbox
from edge.publisher import Publisher, PublisherConfig
from gateway.contract.urls import MqttUrl
from gateway.contract.v1 import HubStatus, ReadingsBatch, topic_readings
from tests.asyncutil import until
from tests.factories import cgm_reading
from tests.harness import MosquittoServer, free_port


class Collector:
    """A plain paho subscriber that records every readings batch it receives."""

    def __init__(self, url: str, topic: str) -> None:
        self.batches: list[ReadingsBatch] = []
        u = MqttUrl.parse(url)
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="collector")
        self.client.on_message = lambda c, u_, m: self.batches.append(
            ReadingsBatch.model_validate_json(m.payload)
        )
        self.client.connect(u.host, u.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def keys(self) -> list[str]:
        return [r.key for b in self.batches for r in b.readings]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def status() -> HubStatus:
    return HubStatus(hub_id="hub-1", online=True)


async def test_backlog_drains_in_bounded_batches(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    collector = Collector(mosquitto.url, topic_readings("hub-1"))
    async with Outbox(tmp_path / "outbox.db") as box:
        readings = [cgm_reading("CGM1", i * 5, 100.0) for i in range(1234)]
        await box.put(
            "CGM1", [(r["key"], json.dumps(r)) for r in readings], stream="records", cursor=1233
        )
        pub = Publisher(
            PublisherConfig(
                hub_id="hub-1",
                mqtt=MqttUrl.parse(mosquitto.url),
                client_id="hub-1",
                max_batch_readings=100,
            ),
            box,
            status,
        )
        task = asyncio.create_task(pub.run())
        try:
            await until(lambda: box.depth == 0, what="outbox drained")
            await until(lambda: len(collector.keys()) >= 1234, what="all readings received")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            collector.close()
    assert sorted(set(collector.keys())) == sorted(r["key"] for r in readings)
    assert max(len(b.readings) for b in collector.batches) <= 100
    assert pub.stats.protocol == "5"


async def test_rows_stay_while_broker_is_down(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    mosquitto.stop()
    async with Outbox(tmp_path / "outbox.db") as box:
        r = cgm_reading("CGM1", 0, 100.0)
        await box.put("CGM1", [(r["key"], json.dumps(r))], stream="records", cursor=0)
        pub = Publisher(
            PublisherConfig(
                hub_id="hub-1",
                mqtt=MqttUrl.parse(mosquitto.url),
                client_id="hub-1",
                backoff_initial_s=0.05,
                backoff_max_s=0.2,
            ),
            box,
            status,
        )
        task = asyncio.create_task(pub.run())
        try:
            await until(lambda: pub.stats.connects == 0 and box.depth == 1, what="refused")
            mosquitto.start()
            collector = Collector(mosquitto.url, topic_readings("hub-1"))
            await until(lambda: box.depth == 0, what="drained after restart")
            await until(lambda: collector.keys() == [r["key"]], what="received")
            collector.close()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_username_and_password_from_the_mqtt_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`mqtt://user:password@host:port` reaches a broker listener that requires them;
    a wrong password connects nothing and keeps every row."""
    caplog.set_level(logging.DEBUG, logger="edge.publisher")
    port = free_port()
    passwords = tmp_path / "passwords"
    await asyncio.to_thread(
        subprocess.run,
        ["mosquitto_passwd", "-b", "-c", str(passwords), "hub-1", "s3cret pass"],
        check=True,
    )
    with MosquittoServer(
        global_config="per_listener_settings true",
        extra_config=[
            f"listener {port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {passwords}",
        ],
    ) as broker:
        broker.start()
        collector = Collector(broker.url, topic_readings("hub-1"))  # the anonymous listener
        try:
            for password, delivered in (("wrong", False), ("s3cret%20pass", True)):
                async with Outbox(tmp_path / f"outbox-{delivered}.db") as box:
                    r = cgm_reading("CGM1", 5 if delivered else 0, 100.0)
                    key = r["key"]
                    await box.put("CGM1", [(r["key"], json.dumps(r))], stream="records", cursor=0)
                    pub = Publisher(
                        PublisherConfig(
                            hub_id="hub-1",
                            mqtt=MqttUrl.parse(f"mqtt://hub-1:{password}@127.0.0.1:{port}"),
                            client_id=f"hub-1-{delivered}",
                            backoff_initial_s=0.05,
                            backoff_max_s=0.2,
                        ),
                        box,
                        status,
                    )
                    task = asyncio.create_task(pub.run())
                    try:
                        if delivered:
                            await until(lambda k=key: k in set(collector.keys()), what="received")
                            await until(lambda: box.depth == 0, what="acked and deleted")
                        else:
                            await until(lambda: refusals(caplog) >= 3, what="three refusals")
                            assert pub.stats.connects == 0 and box.depth == 1
                            # refused by the broker's authentication, not unreachable
                            assert "Not authorized" in caplog.text
                    finally:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
        finally:
            collector.close()
    assert collector.keys() == [cgm_reading("CGM1", 5, 100.0)["key"]]


def refusals(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.name == "edge.publisher" and "fail" in r.getMessage() for r in caplog.records)
