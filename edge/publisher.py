"""MQTT publisher: drains the outbox in bounded batches and deletes rows only on PUBACK.

aiomqtt on MQTT v5 with a stable client id, ``clean_start`` off and a session expiry, so a
reconnect resumes the session. Brokers that speak only 3.1.1 (the embedded demo broker)
refuse v5 with "unsupported protocol version": the publisher then falls back to 3.1.1 with
a persistent session (``clean_session=False``). The retained status topic carries the hub's
health; the Last Will replaces it with ``online: false`` when the hub vanishes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.outbox import Outbox, OutboxRow
from gateway.contract.signing import Signer
from gateway.contract.urls import MqttUrl
from gateway.contract.v1 import (
    SCHEMA_ID,
    HubStatus,
    topic_readings,
    topic_status,
)
from gateway.puback import AckCheckingClient, PublishRefusedError

log = logging.getLogger(__name__)

# CONNACK reason codes that mean "this broker does not speak v5": 0x84 (v5) and 1 (3.1.1).
_UNSUPPORTED_PROTOCOL = {132, 1}


@dataclass(frozen=True, slots=True)
class PublisherConfig:
    hub_id: str
    mqtt: MqttUrl
    client_id: str
    max_batch_readings: int = 500
    max_batch_bytes: int = 256 * 1024
    max_in_flight: int = 4
    session_expiry_s: int = 7 * 24 * 3600
    status_interval_s: float = 30.0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    connect_timeout_s: float = 10.0
    publish_timeout_s: float = 30.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    protocol: str = "auto"  # "5", "3.1.1" or "auto"


@dataclass
class PublisherStats:
    batches: int = 0
    readings: int = 0
    connected: bool = False
    protocol: str = ""
    connects: int = 0
    refused: int = 0  # batches the broker answered with a failure reason code


StatusProvider = Callable[[], Awaitable[HubStatus]]


@dataclass
class Publisher:
    config: PublisherConfig
    outbox: Outbox
    status: StatusProvider
    stats: PublisherStats = field(default_factory=PublisherStats)
    signer: Signer | None = None
    _in_flight: set[int] = field(default_factory=set)
    _v5: bool = True

    def __post_init__(self) -> None:
        self._v5 = self.config.protocol != "3.1.1"

    def _tls(self) -> ssl.SSLContext | None:
        c = self.config
        return c.mqtt.tls_context(c.ca_file, c.cert_file, c.key_file)

    def _client(self) -> AckCheckingClient:
        cfg = self.config
        offline = HubStatus(hub_id=cfg.hub_id, online=False).model_dump_json(by_alias=True)
        will = aiomqtt.Will(topic_status(cfg.hub_id), offline, qos=1, retain=True)
        common = dict(
            hostname=cfg.mqtt.host,
            port=cfg.mqtt.port,
            username=cfg.mqtt.username,
            password=cfg.mqtt.password,
            identifier=cfg.client_id,
            will=will,
            timeout=cfg.connect_timeout_s,
            tls_context=self._tls(),
            max_inflight_messages=max(20, cfg.max_in_flight + 2),
        )
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry_s
            return AckCheckingClient(
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=False,
                properties=props,
                **common,
            )
        return AckCheckingClient(
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=False,
            **common,
        )

    async def run(self) -> None:
        """Connect, publish forever, reconnect with capped exponential backoff."""
        delay = self.config.backoff_initial_s
        failing_since: datetime | None = None
        while True:
            try:
                async with self._client() as client:
                    self.stats.connected = True
                    self.stats.connects += 1
                    self.stats.protocol = "5" if self._v5 else "3.1.1"
                    if failing_since is not None:
                        log.info(
                            "mqtt connection recovered after %s", datetime.now(UTC) - failing_since
                        )
                        failing_since = None
                    delay = self.config.backoff_initial_s
                    await self._session(client)
            except MqttConnectError as err:
                rc = getattr(err.rc, "value", err.rc)
                if self._v5 and rc in _UNSUPPORTED_PROTOCOL and self.config.protocol == "auto":
                    log.info("broker does not speak MQTT v5; using 3.1.1")
                    self._v5 = False
                    continue
                failing_since = self._failed(err, failing_since)
            except PublishRefusedError as err:
                # Misconfigured identity or ACL, or nobody subscribed: keep the rows, say
                # so loudly, back off.
                self.stats.refused += 1
                failing_since = self._failed(err, failing_since)
                delay = self.config.backoff_max_s
            except (aiomqtt.MqttError, OSError, TimeoutError) as err:
                if self.stats.connects == 0 and self.config.protocol == "auto":
                    # Never connected yet: a 3.1.1-only broker may drop a v5 CONNECT
                    # without answering; alternate protocols until one works.
                    self._v5 = not self._v5
                failing_since = self._failed(err, failing_since)
            finally:
                self.stats.connected = False
                self._in_flight.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.backoff_max_s)

    def _failed(self, err: BaseException, since: datetime | None) -> datetime:
        if since is None:
            log.warning("mqtt connection failed: %s; retrying with backoff", err)
            return datetime.now(UTC)
        log.debug("mqtt still failing: %s", err)
        return since

    async def _session(self, client: AckCheckingClient) -> None:
        await self.publish_status(client)
        try:
            await self._pump(client)
        except BaseExceptionGroup as group:
            # A broken connection fails every task at once: surface one cause.
            raise group.exceptions[0] from None

    async def _pump(self, client: AckCheckingClient) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._status_loop(client, self.config.status_interval_s))
            slots = asyncio.Semaphore(self.config.max_in_flight)
            while True:
                await self.outbox.wait_for_rows()
                await slots.acquire()
                rows = await self._next_batch()
                if not rows:
                    slots.release()
                    # Everything waiting is already in flight: wait for a change.
                    await self.outbox.wait_for_change()
                    continue
                tg.create_task(self._publish_batch(client, rows, slots))

    async def _next_batch(self) -> list[OutboxRow]:
        rows = await self.outbox.peek(self.config.max_batch_readings, exclude=self._in_flight)
        batch: list[OutboxRow] = []
        size = 256
        for row in rows:
            size += len(row.payload) + 1
            if batch and size > self.config.max_batch_bytes:
                break
            batch.append(row)
        self._in_flight.update(r.id for r in batch)
        return batch

    async def _publish_batch(
        self, client: AckCheckingClient, rows: list[OutboxRow], slots: asyncio.Semaphore
    ) -> None:
        try:
            payload = encode_batch(self.config.hub_id, rows, self.signer)
            await client.publish_checked(
                topic_readings(self.config.hub_id),
                payload,
                qos=1,
                timeout=self.config.publish_timeout_s,
            )
            await self.outbox.ack([r.id for r in rows])
            self.stats.batches += 1
            self.stats.readings += len(rows)
        finally:
            self._in_flight.difference_update(r.id for r in rows)
            slots.release()

    async def _status_loop(self, client: AckCheckingClient, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.publish_status(client)

    async def publish_status(self, client: AckCheckingClient) -> None:
        status = await self.status()
        await client.publish_checked(
            topic_status(self.config.hub_id),
            status.model_dump_json(by_alias=True).encode(),
            qos=1,
            retain=True,
            unheard_ok=True,
        )


def encode_batch(hub_id: str, rows: list[OutboxRow], signer: Signer | None = None) -> bytes:
    """Assemble the envelope around readings that are already JSON (no re-validation),
    signed as the last member when the hub has a key."""
    head = json.dumps(
        {
            "schema": SCHEMA_ID,
            "hub_id": hub_id,
            "sent_at": datetime.now(UTC).isoformat(),
            "batch_id": str(uuid.uuid4()),
        },
        separators=(",", ":"),
    )
    body = ",".join(r.payload for r in rows)
    envelope = f'{head[:-1]},"readings":[{body}]}}'.encode()
    return signer.sign(envelope) if signer is not None else envelope
