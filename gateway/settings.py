"""Typed settings of the gateway processes (ingester, demo). One object per process."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, HttpUrl, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.contract.urls import MqttUrlField, StoreUrl, StoreUrlField


def check_registry_url(v: StoreUrl) -> StoreUrl:
    if v.scheme not in {"sqlite", "postgresql", "postgresql+asyncpg"}:
        raise ValueError(f"registry must be sqlite:/// or postgresql://, got {v.raw!r}")
    return v


_ENV = SettingsConfigDict(env_prefix="DIATABASE_", env_nested_delimiter="__", extra="forbid")


class IngestSettings(BaseSettings):
    model_config = _ENV

    mqtt: MqttUrlField
    store: StoreUrlField = Field(default=StoreUrl.parse("sqlite:///var/diatabase/readings.db"))
    registry: StoreUrlField = Field(default=StoreUrl.parse("sqlite:///var/diatabase/registry.db"))
    client_id: str = Field(default="diatabase-ingest-1", min_length=1, max_length=64)
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    receive_maximum: int = Field(default=2000, ge=1, le=65535)
    max_batch_messages: int = Field(default=5000, ge=1)
    linger_ms: int = Field(default=50, ge=0)
    max_payload_bytes: int = Field(default=1024 * 1024, ge=1024)
    hub_readings_per_s: float = Field(
        default=0.0, ge=0, description="0: no limit (production: e.g. 200)"
    )
    hub_burst_readings: float = Field(default=50_000.0, gt=0)
    alert_webhook_url: HttpUrl | None = Field(
        default=None, description="POST every alert change here as JSON (best effort)"
    )
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @field_validator("store")
    @classmethod
    def _store_kind(cls, v: StoreUrl) -> StoreUrl:
        if v.scheme not in {"sqlite", "influxdb", "influxdb2"}:
            raise ValueError(
                "store must be sqlite:///path.db, influxdb://host:port/db or "
                f"influxdb2://host:port?org=O&bucket=B, got {v.raw!r}"
            )
        return v

    @field_validator("registry")
    @classmethod
    def _registry_kind(cls, v: StoreUrl) -> StoreUrl:
        return check_registry_url(v)


class DemoSettings(BaseSettings):
    model_config = _ENV

    port: int = Field(default=8080, ge=0, le=65535, description="web page port (0: any free)")
    host: str = "127.0.0.1"
    duration: float | None = Field(default=None, gt=0, description="seconds; none = until Ctrl-C")
    speed: float = Field(default=60.0, gt=0, le=100_000, description="simulated time factor")
    patients: int = Field(default=2, ge=1, le=50)
    data_dir: Path | None = Field(default=None, description="keep databases here (default: temp)")
    history_hours: float = Field(default=6.0, ge=0, description="simulated history before now")
