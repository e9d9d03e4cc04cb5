"""Connection URLs shared by the hub and the gateway (``mqtt://``, ``sqlite:///``, ...).

Connections are configured as URLs everywhere; these types reject a bad one with a
message that names what is wrong.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BeforeValidator, PlainSerializer
from pydantic_settings import NoDecode

MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class MqttUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        parts = urlsplit(url)
        if parts.scheme not in MQTT_SCHEMES:
            raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        try:
            port = parts.port or MQTT_SCHEMES[parts.scheme]
        except ValueError as err:
            raise ValueError(f"bad port in {url!r}") from err
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        auth = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}{self.host}:{self.port}"

    def tls_context(
        self,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
    ) -> ssl.SSLContext | None:
        """The client TLS context for ``mqtts://`` (server checked against ``ca_file``, or
        the system CAs; a client certificate when given); None for ``mqtt://``."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if cert_file:
            ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        return ctx


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """``sqlite:///path``, ``influxdb://[user:pass@]host:port/db``, ``influxdb2://host:port?org=O&bucket=B``,
    ``postgresql://...``. Which schemes a setting accepts is checked where it is used."""

    scheme: str
    raw: str
    path: Path | None = None  # sqlite
    host: str | None = None
    port: int | None = None
    database: str | None = None
    username: str | None = None
    password: str | None = None
    query: dict[str, str] | None = None

    @classmethod
    def parse(cls, url: str) -> StoreUrl:
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme == "sqlite":
            if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
                raise ValueError(f"expected sqlite:///path/to/file.db, got {url!r}")
            return cls(scheme=scheme, raw=url, path=Path(url[len("sqlite:///") :]))
        if scheme in {"influxdb", "influxdb2", "postgresql", "postgresql+asyncpg"}:
            if not parts.hostname:
                raise ValueError(f"no host in {url!r}")
            try:
                port = parts.port
            except ValueError as err:
                raise ValueError(f"bad port in {url!r}") from err
            database = parts.path.lstrip("/") or None
            if scheme == "influxdb" and not database:
                raise ValueError(f"expected influxdb://host:port/DATABASE, got {url!r}")
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if scheme == "influxdb2" and not {"org", "bucket"} <= query.keys():
                raise ValueError(f"expected influxdb2://host:port?org=O&bucket=B, got {url!r}")
            return cls(
                scheme=scheme,
                raw=url,
                host=parts.hostname,
                port=port,
                database=database,
                username=unquote(parts.username) if parts.username else None,
                password=unquote(parts.password) if parts.password else None,
                query=query,
            )
        raise ValueError(
            f"unsupported URL scheme {scheme!r} in {url!r} "
            "(expected sqlite:///, influxdb://, influxdb2:// or postgresql://)"
        )

    def __str__(self) -> str:
        return self.raw


def _mqtt(value: object) -> object:
    return MqttUrl.parse(value) if isinstance(value, str) else value


def _store(value: object) -> object:
    return StoreUrl.parse(value) if isinstance(value, str) else value


# NoDecode: an environment variable holds the URL itself, not JSON.
MqttUrlField = Annotated[MqttUrl, NoDecode, BeforeValidator(_mqtt), PlainSerializer(str)]
StoreUrlField = Annotated[StoreUrl, NoDecode, BeforeValidator(_store), PlainSerializer(str)]
