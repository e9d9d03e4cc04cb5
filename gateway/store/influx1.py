"""InfluxDB 1.x sink over its HTTP API: ``/write`` (line protocol) and ``/query`` (InfluxQL).

Idempotency is InfluxDB's own: a point with the same measurement, tag set and timestamp
overwrites the earlier one, so a redelivered reading is one point (docs/storage.md).
A 4xx answer means some points are unacceptable (a field type conflict, say): the batch
is bisected so that only the offending readings are rejected (and quarantined by the
ingester) while the rest are written. 5xx and connection errors raise StoreError: the
ingester retries and holds its acknowledgements.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from gateway.contract.urls import StoreUrl
from gateway.store.base import IngestWindow, StoredReading, StoreError, WriteResult
from gateway.store.lineprotocol import GLUCOSE, INSULIN, line, lines

MAX_POINTS_PER_POST = 5000
MAX_POSTS_IN_FLIGHT = 2


class Influx1Store:
    def __init__(self, url: StoreUrl, *, timeout_s: float = 30.0) -> None:
        assert url.host and url.database
        self.database = url.database
        self.base = f"http://{url.host}:{url.port or 8086}"
        self.auth = (url.username, url.password or "") if url.username else None
        self.timeout_s = timeout_s
        self._http: httpx.AsyncClient | None = None

    async def open(self) -> Influx1Store:
        self._http = httpx.AsyncClient(base_url=self.base, auth=self.auth, timeout=self.timeout_s)
        return self

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise StoreError("store is not open")
        return self._http

    async def write(self, readings: Sequence[StoredReading]) -> WriteResult:
        rejected: list[tuple[StoredReading, str]] = []
        # InfluxDB answers 413 to a body over its max-body-size (25 MB by default) and
        # closes the connection mid-request; it also ingests batches of a few thousand
        # points best. Every chunk is written before this returns (the ack waits for all);
        # two POSTs in flight let the next chunk's lines be built, and InfluxDB use its
        # second core, while one is being written (docs/performance.md).
        slots = asyncio.Semaphore(MAX_POSTS_IN_FLIGHT)

        async def chunk(part: Sequence[StoredReading]) -> None:
            async with slots:
                await self._write(part, rejected)

        try:
            async with asyncio.TaskGroup() as group:
                for i in range(0, len(readings), MAX_POINTS_PER_POST):
                    group.create_task(chunk(readings[i : i + MAX_POINTS_PER_POST]))
        except* StoreError as failed:  # the first failure; the other POSTs are cancelled
            raise failed.exceptions[0] from None
        return WriteResult(
            written=len(readings) - len(rejected), duplicates=0, rejected=tuple(rejected)
        )

    async def _write(
        self, readings: Sequence[StoredReading], rejected: list[tuple[StoredReading, str]]
    ) -> None:
        if not readings:
            return
        try:
            resp = await self.http.post(
                "/write",
                params={"db": self.database, "precision": "ns"},
                content=lines(readings),
            )
        except httpx.HTTPError as err:
            raise StoreError(f"influxdb write failed: {err!r}") from err
        if resp.status_code == 204:
            return
        if 400 <= resp.status_code < 500 and resp.status_code not in (401, 403, 404, 429):
            if len(readings) == 1:
                rejected.append((readings[0], resp.text[:300]))
                return
            mid = len(readings) // 2
            await self._write(readings[:mid], rejected)
            await self._write(readings[mid:], rejected)
            return
        raise StoreError(f"influxdb write failed: HTTP {resp.status_code} {resp.text[:300]}")

    async def query(self, q: str) -> list[dict[str, Any]]:
        try:
            resp = await self.http.get(
                "/query", params={"db": self.database, "q": q, "epoch": "ns"}
            )
        except httpx.HTTPError as err:
            raise StoreError(f"influxdb query failed: {err!r}") from err
        if resp.status_code != 200:
            raise StoreError(f"influxdb query failed: HTTP {resp.status_code} {resp.text[:300]}")
        rows: list[dict[str, Any]] = []
        for result in resp.json().get("results", []):
            if "error" in result:
                raise StoreError(f"influxdb query failed: {result['error']}")
            for series in result.get("series", []):
                cols = series["columns"]
                tags = series.get("tags", {})
                rows.extend({**tags, **dict(zip(cols, v, strict=True))} for v in series["values"])
        return rows

    async def glucose_series(
        self, patient_id: str, since: datetime, until: datetime | None = None
    ) -> list[StoredReading]:
        where = f"patient = {_quote(patient_id)} AND time >= {_ns(since)}"
        if until is not None:
            where += f" AND time < {_ns(until)}"
        rows = await self.query(
            f"SELECT * FROM {GLUCOSE} WHERE {where} AND mg_dl > 0 ORDER BY time"
        )
        return [_reading(r) for r in rows]

    async def count(self) -> int:
        total = 0
        for meas in (GLUCOSE, INSULIN):
            # `key` is on every point; `value` is absent from pump events
            rows = await self.query(f'SELECT count("key") FROM {meas}')
            total += sum(int(r.get("count", 0)) for r in rows)
        return total

    # -- read side of the web views ------------------------------------------------------
    async def latest_per_patient(self) -> list[StoredReading]:
        rows = await self.query(
            f"SELECT * FROM {GLUCOSE} WHERE mg_dl > 0 GROUP BY patient ORDER BY time DESC LIMIT 1"
        )
        return [_reading(r) for r in rows]

    async def change_marker(self) -> object:
        # InfluxDB keeps no insertion time: the newest point's time plus the count of the
        # last hour move when a reading arrives (a write over an existing point does not).
        newest = await self.query(f"SELECT last(value) FROM {GLUCOSE}")
        recent = await self.query(f"SELECT count(value) FROM {GLUCOSE} WHERE time > now() - 1h")
        # (a count row's time is the query's own lower bound: leave it out)
        return (
            tuple(r.get("time") for r in newest),
            tuple(r.get("count") for r in recent),
        )

    async def ingest_window(
        self, window_s: float = 60.0, *, now: datetime | None = None
    ) -> IngestWindow:
        """Approximated by reading time (InfluxDB keeps no stored_at): points whose time is
        in the window, and their distinct batches; lags are unknown here (the ingester's
        diatabase_lag_seconds has them)."""
        until = now or datetime.now(UTC)
        since = until.timestamp() - window_s
        where = f"time > {_ns(datetime.fromtimestamp(since, UTC))} AND time <= {_ns(until)}"
        readings = messages = 0
        for meas in (GLUCOSE, INSULIN):
            rows = await self.query(
                f'SELECT count("key") AS n FROM {meas} WHERE {where}; '
                f"SELECT count(distinct(batch)) AS b FROM {meas} WHERE {where}"
            )
            readings += sum(int(r.get("n") or 0) for r in rows)
            messages += sum(int(r.get("b") or 0) for r in rows)
        return IngestWindow(
            window_s=window_s,
            readings=readings,
            messages=messages,
            lags_s=None,
            by_stored_time=False,
        )


def _ns(dt: datetime) -> str:
    return str(int(dt.astimezone(UTC).timestamp() * 1_000_000) * 1000)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _reading(row: dict[str, Any]) -> StoredReading:
    ns = int(row["time"])
    return StoredReading(
        key=row.get("key") or "",
        patient_id=row["patient"],
        hub_id=row.get("hub") or "",
        serial=row["device"],
        device_kind=row.get("device_kind") or "",
        kind=row["kind"],
        time=datetime.fromtimestamp(ns // 1000 / 1_000_000, UTC),
        device_time=datetime.fromisoformat(row["device_time"]),
        clock_offset_s=float(row.get("clock_offset_s") or 0.0),
        value=float(row["value"]) if row.get("value") is not None else None,
        unit=row.get("unit") or "",
        mg_dl=float(row["mg_dl"]) if row.get("mg_dl") is not None else None,
        flags=tuple(f for f in (row.get("flags") or "").split(",") if f),
        status=tuple(s for s in (row.get("status") or "").split(",") if s),
        details=json.loads(row["details"]) if row.get("details") else {},
        raw=row.get("raw") or "",
        batch_id=row.get("batch") or "",
        signed_by=row.get("signed_by") or "",
    )


__all__ = ["Influx1Store", "line"]
