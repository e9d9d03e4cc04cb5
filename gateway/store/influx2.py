"""InfluxDB 2.x / 3.x / Cloud sink through influxdb-client's async write API.

The URL carries host, port, org and bucket (``influxdb2://host:port?org=O&bucket=B``,
``&tls=1`` for https); the token comes only from ``DIATABASE_INFLUX_TOKEN``, never from a
URL or a file that might be shared. Line protocol is built by ``lineprotocol`` (the
client's Point objects are too slow); the async API does no batching or back-pressure of
its own, so the ingester's batch is one request. Reads for the web views use InfluxDB 1.x
or SQLite; this sink is write-only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime

from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from gateway.contract.urls import StoreUrl
from gateway.store.base import StoredReading, StoreError, WriteResult
from gateway.store.lineprotocol import lines

TOKEN_ENV = "DIATABASE_INFLUX_TOKEN"


class Influx2Store:
    def __init__(self, url: StoreUrl, *, timeout_ms: int = 30_000) -> None:
        assert url.host and url.query is not None
        scheme = "https" if url.query.get("tls") in {"1", "true", "yes"} else "http"
        self.url = f"{scheme}://{url.host}:{url.port or 8086}"
        self.org = url.query["org"]
        self.bucket = url.query["bucket"]
        token = os.environ.get(TOKEN_ENV)
        if not token:
            raise StoreError(f"{TOKEN_ENV} must hold the InfluxDB token for {url.raw}")
        self.token = token
        self.timeout_ms = timeout_ms
        self._client: InfluxDBClientAsync | None = None

    async def open(self) -> Influx2Store:
        self._client = InfluxDBClientAsync(
            url=self.url, token=self.token, org=self.org, timeout=self.timeout_ms
        )
        return self

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]
            self._client = None

    async def write(self, readings: Sequence[StoredReading]) -> WriteResult:
        if not readings:
            return WriteResult(0, 0)
        if self._client is None:
            raise StoreError("store is not open")
        try:
            await self._client.write_api().write(
                bucket=self.bucket,
                org=self.org,
                record=lines(readings),
                # its annotation says WritePrecision, whose members are plain strings
                write_precision="ns",  # type: ignore[arg-type]
            )
        except (InfluxDBError, OSError, TimeoutError) as err:
            raise StoreError(f"influxdb2 write failed: {err}") from err
        except Exception as err:  # aiohttp client errors surface as their own types
            raise StoreError(f"influxdb2 write failed: {err!r}") from err
        return WriteResult(written=len(readings), duplicates=0)

    async def glucose_series(
        self, patient_id: str, since: datetime, until: datetime | None = None
    ) -> list[StoredReading]:
        raise StoreError("the influxdb2 sink is write-only; views read InfluxDB 1.x or SQLite")

    async def count(self) -> int:
        raise StoreError("the influxdb2 sink is write-only; count through the database itself")
