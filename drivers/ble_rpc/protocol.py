"""The wire format: one JSON object per line, bytes as lowercase hex.

Requests ``{"id": n, "op": ..., ...}`` get one reply ``{"id": n, "ok": value}`` or
``{"id": n, "error": text, "att": code-or-null}``; the host also sends events
``{"event": "notify", "handle": h, "data": hex}`` and ``{"event": "disconnected"}``.
A connection to the host serves one peripheral connection.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

# Requests
CONNECT = "connect"  # address, pair -> Gatt
READ = "read"  # handle -> hex
READ_DESCRIPTOR = "read_descriptor"  # handle -> hex
WRITE = "write"  # handle, data, response -> null
WRITE_DESCRIPTOR = "write_descriptor"  # handle, data -> null
START_NOTIFY = "start_notify"  # handle -> null
STOP_NOTIFY = "stop_notify"  # handle -> null
PAIR = "pair"
UNPAIR = "unpair"
DISCONNECT = "disconnect"

# Events
NOTIFY = "notify"
DISCONNECTED = "disconnected"


class Descriptor(TypedDict):
    handle: int
    uuid: str


class Characteristic(TypedDict):
    handle: int
    uuid: str
    properties: list[str]
    descriptors: list[Descriptor]


class Service(TypedDict):
    handle: int
    uuid: str
    characteristics: list[Characteristic]


class Gatt(TypedDict):
    """What a connect returns: the negotiated ATT MTU and the discovered database."""

    mtu: int
    services: list[Service]


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"not a message: {line[:80]!r}")
    return message
