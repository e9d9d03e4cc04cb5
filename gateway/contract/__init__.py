"""The wire contract between hubs and the gateway. One version per module."""

from gateway.contract.v1 import (
    SCHEMA_ID,
    DeviceInfo,
    HubEvent,
    HubStatus,
    Reading,
    ReadingsBatch,
    reading_key,
    topic_events,
    topic_readings,
    topic_status,
)

__all__ = [
    "SCHEMA_ID",
    "DeviceInfo",
    "HubEvent",
    "HubStatus",
    "Reading",
    "ReadingsBatch",
    "reading_key",
    "topic_events",
    "topic_readings",
    "topic_status",
]
