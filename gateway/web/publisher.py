"""QoS 1 publishing from the web app (Nightscout uploads, acknowledged alerts), PUBACK
checked.

One MQTT v5 connection, opened on first use and dropped on any error (the next publish
reconnects). A publish returns only after the broker's PUBACK; a PUBACK with a failure
reason code (0x87: the ACL refuses the topic) raises, as does a timeout, so the HTTP
caller can answer 503 and the uploader keeps its entries and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from pathlib import Path
from typing import Any

from gateway.contract.urls import MqttUrl

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not durably take the message; nothing may be acknowledged upstream."""


class ReadingsPublisher:
    def __init__(
        self,
        url: MqttUrl,
        *,
        client_id: str = "diatabase-web",
        ca_file: Path | None = None,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        # a random suffix: two web replicas must not take over each other's connection
        self.client_id = f"{client_id[:40]}-ns-{secrets.token_hex(4)}"
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        self.timeout_s = timeout_s
        self._client: Any = None  # the AckClient while connected
        self._lock = asyncio.Lock()

    def _tls(self) -> ssl.SSLContext | None:
        return self.url.tls_context(self.ca_file, self.cert_file, self.key_file)

    async def _connected(self) -> Any:
        import aiomqtt

        async with self._lock:
            if self._client is None:
                from gateway.puback import AckCheckingClient  # serve without MQTT: no client

                client = AckCheckingClient(
                    self.url.host,
                    self.url.port,
                    username=self.url.username,
                    password=self.url.password,
                    identifier=self.client_id,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    tls_context=self._tls(),
                    timeout=self.timeout_s,
                )
                await client.__aenter__()
                self._client = client
                log.info("nightscout publisher: connected to %s", self.url)
            return self._client

    async def _drop(self, client: Any) -> None:
        async with self._lock:
            if self._client is client:
                self._client = None
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish QoS 1 and return after a success PUBACK; raises PublishError.

        A connection that was already open may have died unnoticed: that case reconnects
        and publishes once more (a message published twice is stored once downstream)."""
        import aiomqtt

        from gateway.puback import PublishRefusedError

        for attempt in (1, 2):
            reused = self._client is not None
            client: Any = None
            try:
                client = await self._connected()
                await client.publish_checked(
                    topic, payload, qos=1, retain=retain, timeout=self.timeout_s, unheard_ok=retain
                )
            except PublishRefusedError as err:
                raise PublishError(str(err)) from err
            except aiomqtt.MqttError as err:
                if client is not None:
                    await self._drop(client)
                if reused and attempt == 1:
                    continue
                log.warning("nightscout publisher: %s (%s)", err, self.url)
                raise PublishError(f"broker unavailable: {err}") from err
            return

    async def close(self) -> None:
        if self._client is not None:
            await self._drop(self._client)

    async def __aenter__(self) -> ReadingsPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
