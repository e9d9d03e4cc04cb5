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
import contextvars
import functools
import logging
import secrets
import ssl
from pathlib import Path
from typing import Any

from gateway.contract.urls import MqttUrl

log = logging.getLogger(__name__)

_mids: contextvars.ContextVar[list[int]] = contextvars.ContextVar("nightscout_publish_mids")


class PublishError(Exception):
    """The broker did not durably take the message; nothing may be acknowledged upstream."""


class PublishRefusedError(PublishError):
    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"broker refused the publish: reason code 0x{code:02X}")


@functools.cache
def _ack_client_class() -> type[Any]:
    """An aiomqtt client class that keeps each PUBACK's reason code (aiomqtt treats every
    PUBACK as success), by the message id paho assigned, captured per task so concurrent
    publishes do not mix. Built on first use: ``serve`` without MQTT imports no client."""
    import aiomqtt

    class AckClient(aiomqtt.Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.refused: dict[int, int] = {}
            paho_publish = self._client.publish

            def publish(*a: Any, **kw: Any) -> Any:
                info = paho_publish(*a, **kw)
                holder = _mids.get(None)
                if holder is not None:
                    holder.append(info.mid)
                return info

            self._client.publish = publish  # type: ignore[method-assign]

        def _on_publish(
            self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any
        ) -> None:
            code = getattr(reason_code, "value", 0) or 0
            if code >= 0x80:
                self.refused[mid] = code
            super()._on_publish(client, userdata, mid, reason_code, properties)

    return AckClient


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
        if not self.url.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        return ctx

    async def _connected(self) -> Any:
        import aiomqtt

        async with self._lock:
            if self._client is None:
                client = _ack_client_class()(
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

        for attempt in (1, 2):
            reused = self._client is not None
            client: Any = None
            holder: list[int] = []
            try:
                client = await self._connected()
                token = _mids.set(holder)
                try:
                    await client.publish(
                        topic, payload, qos=1, retain=retain, timeout=self.timeout_s
                    )
                finally:
                    _mids.reset(token)
            except aiomqtt.MqttError as err:
                if client is not None:
                    await self._drop(client)
                if reused and attempt == 1:
                    continue
                log.warning("nightscout publisher: %s (%s)", err, self.url)
                raise PublishError(f"broker unavailable: {err}") from err
            for mid in holder:
                code = client.refused.pop(mid, None)
                if code is not None:
                    raise PublishRefusedError(code)
            return

    async def close(self) -> None:
        if self._client is not None:
            await self._drop(self._client)

    async def __aenter__(self) -> ReadingsPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
