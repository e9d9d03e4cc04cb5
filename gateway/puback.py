"""An aiomqtt client that checks the reason code of every PUBACK.

Used by every publisher whose caller must know the broker durably took a message (the
hub's outbox, the web app's uploads and alert republishing).
"""

from __future__ import annotations

import contextvars
from typing import Any

import aiomqtt


class PublishRefusedError(aiomqtt.MqttError):
    """The broker acknowledged a publish with a failure reason (e.g. 0x87 not authorised)."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"broker refused the publish: reason code 0x{code:02X}")


NO_MATCHING_SUBSCRIBERS = 0x10
_publish_mid: contextvars.ContextVar[list[int]] = contextvars.ContextVar("publish_mid")


class AckCheckingClient(aiomqtt.Client):
    """aiomqtt client that keeps each PUBACK's reason code.

    An MQTT v5 broker answers a refused QoS 1 publish (an ACL denial: 0x87) with a PUBACK,
    which aiomqtt treats as success; deleting the outbox rows then would lose readings.
    paho reports the reason code to ``on_publish``; the mid of each publish is captured
    per task when aiomqtt calls paho, so concurrent publishes cannot mix them up.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.refused: dict[int, int] = {}
        paho_publish = self._client.publish

        def publish(*a: object, **kw: object) -> object:
            info = paho_publish(*a, **kw)  # type: ignore[arg-type]
            holder = _publish_mid.get(None)
            if holder is not None:
                holder.append(info.mid)
            return info

        self._client.publish = publish  # type: ignore[method-assign,assignment]

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        code = getattr(reason_code, "value", 0) or 0
        if code >= 0x80:
            self.refused[mid] = code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_checked(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - passed through to aiomqtt's own
        unheard_ok: bool = False,
    ) -> None:
        """Publish and raise PublishRefusedError on a failure PUBACK; ``unheard_ok`` accepts
        "no matching subscribers" (a retained status nobody listens to yet is fine)."""
        holder: list[int] = []
        token = _publish_mid.set(holder)
        try:
            await self.publish(topic, payload, qos=qos, retain=retain, timeout=timeout)
        finally:
            _publish_mid.reset(token)
        for mid in holder:
            code = self.refused.pop(mid, None)
            if code is not None and not (unheard_ok and code == NO_MATCHING_SUBSCRIBERS):
                raise PublishRefusedError(code)
