"""Hub settings: one typed object, from ``--config hub.toml``, ``DIATABASE_*`` and flags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.contract.urls import MqttUrlField
from gateway.contract.v1 import HubId


class DeviceConfig(BaseModel):
    """One device the hub serves: by address, or by advertised name pattern."""

    kind: Literal["glucose_meter", "cgm", "insulin_pump"]
    address: str | None = None
    name: str | None = Field(
        default=None, description="regular expression the whole advertised name must match"
    )
    pair: bool = False
    poll_interval_s: float = Field(default=300.0, gt=0, description="meters: time between syncs")

    @model_validator(mode="after")
    def _target(self) -> DeviceConfig:
        if not self.address and not self.name:
            raise ValueError("each device needs an address or a name pattern")
        if self.name:
            try:
                re.compile(self.name)
            except re.error as err:
                raise ValueError(f"name {self.name!r} is not a regular expression: {err}") from None
        return self


class OutboxConfig(BaseModel):
    path: Path = Path("var/edge/outbox.db")
    max_rows: int = Field(default=500_000, ge=10)


class PublishConfig(BaseModel):
    max_batch_readings: int = Field(default=500, ge=1, le=1000)
    # The shipped broker refuses packets over 1 MiB (deploy/mosquitto/mosquitto.conf).
    max_batch_bytes: int = Field(default=256 * 1024, ge=4096, le=1_000_000)
    max_in_flight: int = Field(default=4, ge=1, le=64)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    # How often the retained status is refreshed (it is also sent on every connect).
    status_interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)


class TlsConfig(BaseModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIATABASE_", env_nested_delimiter="__", extra="forbid"
    )

    hub_id: HubId
    mqtt: MqttUrlField
    client_id: str | None = None
    mqtt_protocol: Literal["auto", "5", "3.1.1"] = Field(
        default="auto", description="auto: v5, falling back to 3.1.1 when the broker has no v5"
    )
    devices: list[DeviceConfig] = Field(default_factory=list)
    discover_services: bool = Field(
        default=False, description="also serve any device advertising GLS/CGMS/IDS"
    )
    allow: list[str] = Field(
        default_factory=list,
        description="addresses or DIS serials a device found by name or service must have",
    )
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    status_interval_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _unknown_devices_never_served(self) -> EdgeSettings:
        if self.discover_services and not self.allow:
            raise ValueError(
                "discover_services needs an allow list of addresses or serials"
                " (a neighbour's device advertises the same services)"
            )
        return self

    signing_key: Path | None = Field(
        default=Path("var/edge/signing.key"),
        description="Ed25519 key that signs every batch (created at first start); none: unsigned",
    )
