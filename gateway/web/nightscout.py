"""A Nightscout API v1 subset, so xDrip+, AndroidAPS and Loop upload into our pipeline.

``POST /api/v1/entries[.json]`` turns each valid ``sgv``/``mbg`` entry into a contract v1
reading and publishes them, as a batch of the uploader's hub, to the broker (QoS 1); it
answers 200 only after the broker's PUBACK, so the ingester validates, de-duplicates,
links, stores and raises alerts exactly as for a hub. Without MQTT the API answers 503.
``GET /api/v1/entries[.json]``, ``/api/v1/entries/sgv.json`` (also ``mbg``, ``current``)
read back the uploader's patient; ``GET /api/v1/status.json`` says who we are.
Every route wants ``api-secret`` = SHA-1 hex of a registered uploader's secret.
docs/nightscout.md describes the mapping and the decisions.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.contract.v1 import Reading, ReadingsBatch, topic_readings
from gateway.derived import TREND_WINDOW_MIN, direction, rate_mg_dl_per_min
from gateway.registry.models import QuarantineRow, Uploader
from gateway.registry.service import QuarantineEntry, Registry
from gateway.store.base import QueryStore, StoredReading
from gateway.web.nightscout_entries import EntryError, entry_id, parse_entry, to_reading
from gateway.web.publisher import PublishError, ReadingsPublisher

log = logging.getLogger(__name__)

QUARANTINE_TOPIC = "nightscout/api/v1/entries"
QUARANTINE_REASON = "nightscout_invalid"
QUARANTINE_CAP = 16 * 1024  # bytes of a refused entry or body kept
MAX_BODY = 8 * 1024 * 1024  # after gunzip
MAX_ENTRIES = 10_000
READINGS_PER_MESSAGE = 500  # well under the ingester's 1 MiB payload limit
OFF_LOOP_PARSE = 256 * 1024  # parse bigger bodies in a thread
MAX_COUNT = 10_000
# What status.json reports: clients gate features on it (xDrip+ wants more than 0.8).
NIGHTSCOUT_API_VERSION = "15.0.2"
RECENT = timedelta(days=1)
LOOKBACK = timedelta(days=30)


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": status, "message": message, **extra}, status_code=status)


def _unauthorized() -> JSONResponse:
    return _error(401, "Unauthorized", description="api-secret header missing or not registered")


async def _read_body(request: Request) -> bytes:
    """The request body, gunzipped when sent so (xDrip+ may), at most MAX_BODY bytes."""
    gzipped = request.headers.get("content-encoding", "").strip().lower() == "gzip"
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    out = bytearray()
    async for chunk in request.stream():
        try:
            out += inflate.decompress(chunk, MAX_BODY + 1 - len(out)) if inflate else chunk
        except zlib.error as err:
            raise _BodyError(
                400, f"Content-Encoding gzip but the body is not gzip: {err}"
            ) from None
        if len(out) > MAX_BODY:
            raise _BodyError(413, f"body larger than {MAX_BODY} bytes: send smaller batches")
    return bytes(out)


def _ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class _Window:
    since: datetime | None
    until: datetime | None
    count: int


def _query_window(request: Request) -> _Window:
    """``count`` and ``find[date|dateString][$gte|$gt|$lte|$lt]``; ValueError when bad."""
    q = request.query_params
    count = int(q.get("count", "10"))
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"count must be 1..{MAX_COUNT}")
    since: datetime | None = None
    until: datetime | None = None
    for field in ("date", "dateString"):
        for op in ("$gte", "$gt", "$lte", "$lt"):
            raw = q.get(f"find[{field}][{op}]")
            if raw is None:
                continue
            if field == "date":
                at = datetime.fromtimestamp(float(raw) / 1000, UTC)
            else:
                at = datetime.fromisoformat(raw.strip().replace(" ", "+"))
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
            if op == "$gt":
                at += timedelta(milliseconds=1)
            if op == "$lte":
                at += timedelta(milliseconds=1)
            if op in {"$gte", "$gt"}:
                since = at if since is None else max(since, at)
            else:
                until = at if until is None else min(until, at)
    return _Window(since, until, count)


def _with_directions(series: list[StoredReading]) -> dict[str, str]:
    """Trend direction of each CGM reading (by key) from the CGM readings before it."""
    cgm = [(r.time, r.mg_dl) for r in series if r.kind == "cgm" and r.mg_dl is not None]
    cgm.sort(key=lambda p: p[0])
    times = [t for t, _ in cgm]
    out: dict[str, str] = {}
    window = timedelta(minutes=TREND_WINDOW_MIN)
    for r in series:
        if r.kind != "cgm":
            continue
        lo = bisect.bisect_left(times, r.time - window)
        hi = bisect.bisect_right(times, r.time)
        out[r.key] = direction(rate_mg_dl_per_min(cgm[lo:hi])).value
    return out


def _as_entry(r: StoredReading, directions: dict[str, str]) -> dict[str, Any]:
    assert r.mg_dl is not None
    device = r.details.get("ns_device") if r.details else None
    doc: dict[str, Any] = {
        "_id": entry_id(r.key),
        "device": device if isinstance(device, str) and device else r.serial,
        "date": _ms(r.time),
        "dateString": _iso(r.time),
        "sysTime": _iso(r.time),
        "utcOffset": 0,
    }
    if r.kind == "cgm":
        doc |= {"type": "sgv", "sgv": round(r.mg_dl), "direction": directions.get(r.key, "NONE")}
    else:
        doc |= {"type": "mbg", "mbg": round(r.mg_dl)}
    return doc


class NightscoutApi:
    def __init__(
        self, store: QueryStore, registry: Registry, publisher: ReadingsPublisher | None
    ) -> None:
        self.store = store
        self.registry = registry
        self.publisher = publisher

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/entries", self.entries, methods=["GET", "POST"]),
            Route("/api/v1/entries.json", self.entries, methods=["GET", "POST"]),
            Route("/api/v1/entries/{spec}", self.entries_of, methods=["GET"]),
            Route("/api/v1/status.json", self.status, methods=["GET"]),
            Route("/api/v1/status", self.status, methods=["GET"]),
            Route("/api/v1/experiments/test", self.auth_test, methods=["GET"]),
        ]

    async def _uploader(self, request: Request) -> Uploader | None:
        return await self.registry.uploader_for_secret(request.headers.get("api-secret"))

    # -- read side ----------------------------------------------------------------------------
    async def status(self, request: Request) -> Response:
        if await self._uploader(request) is None:
            return _unauthorized()
        now = datetime.now(UTC)
        return JSONResponse(
            {
                "status": "ok",
                "name": "diatabase",
                "version": NIGHTSCOUT_API_VERSION,
                "serverTime": _iso(now),
                "serverTimeEpoch": _ms(now),
                "apiEnabled": True,
                "careportalEnabled": False,
                "boluscalcEnabled": False,
                "settings": {"units": "mg/dl", "enable": []},
                "extendedSettings": {},
                "authorized": None,
            }
        )

    async def auth_test(self, request: Request) -> Response:
        if await self._uploader(request) is None:
            return _unauthorized()
        return JSONResponse({"status": "ok"})

    async def entries_of(self, request: Request) -> Response:
        spec = request.path_params["spec"].removesuffix(".json")
        if spec not in {"sgv", "mbg", "current"}:
            return _error(404, f"entries/{spec} is not served here (sgv, mbg, current)")
        return await self._read(request, "mbg" if spec == "mbg" else "sgv", spec == "current")

    async def entries(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._upload(request)
        return await self._read(request, request.query_params.get("find[type]"), False)

    async def _read(self, request: Request, kind: str | None, current: bool) -> Response:
        uploader = await self._uploader(request)
        if uploader is None:
            return _unauthorized()
        try:
            window = _query_window(request)
        except (ValueError, OverflowError, OSError) as err:
            return _error(400, f"bad query: {err}")
        if kind not in {None, "sgv", "mbg"}:
            return JSONResponse([])  # cal and the rest are not stored
        count = 1 if current else window.count
        now = datetime.now(UTC)
        await self.registry.refresh()
        assignment = self.registry.assignment_at(uploader.serial, now)
        if assignment is None:  # no patient: nothing of anyone's is readable
            return JSONResponse([])
        floor = assignment.valid_from  # not the patient's data from before this device
        until = window.until or now + timedelta(minutes=10)
        if assignment.valid_to is not None:
            until = min(until, assignment.valid_to)
        wanted = {"cgm", "bg"} if kind is None else {"cgm" if kind == "sgv" else "bg"}
        spans = [window.since] if window.since else [now - RECENT, now - LOOKBACK]
        picked: list[StoredReading] = []
        directions: dict[str, str] = {}
        for since in spans:
            since = max(since, floor)
            series = await self.store.glucose_series(
                assignment.patient_id, since - timedelta(minutes=TREND_WINDOW_MIN), until
            )
            directions = _with_directions(series)
            picked = [r for r in series if r.time >= since and r.kind in wanted]
            if len(picked) >= count or since == floor:
                break
        picked.sort(key=lambda r: r.time, reverse=True)
        return JSONResponse([_as_entry(r, directions) for r in picked[:count]])

    # -- upload -------------------------------------------------------------------------------
    async def _upload(self, request: Request) -> Response:
        uploader = await self._uploader(request)
        if uploader is None:
            return _unauthorized()
        if self.publisher is None:
            return _error(503, "uploads need the web app's MQTT connection (serve --mqtt)")
        try:
            body = await _read_body(request)
        except _BodyError as err:
            return _error(err.status, str(err))
        try:
            doc = (
                await asyncio.to_thread(json.loads, body)
                if len(body) > OFF_LOOP_PARSE
                else json.loads(body)
            )
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            await self._quarantine(uploader, [(body, f"body is not JSON: {str(err)[:200]}")])
            return _error(400, f"body is not JSON: {str(err)[:200]}")
        items = doc if isinstance(doc, list) else [doc] if isinstance(doc, dict) else None
        if items is None:
            reason = f"body must be an entry or a list of entries, got {type(doc).__name__}"
            await self._quarantine(uploader, [(body, reason)])
            return _error(400, reason)
        if len(items) > MAX_ENTRIES:
            return _error(413, f"{len(items)} entries > {MAX_ENTRIES}: send smaller batches")

        readings: list[Reading] = []
        echo: list[dict[str, Any]] = []
        errors: list[tuple[int, Any, str]] = []
        ignored = 0
        for i, item in enumerate(items):
            try:
                entry = parse_entry(item)
            except EntryError as err:
                errors.append((i, item, str(err)))
                continue
            if entry.kind == "ignored":
                ignored += 1
                echo.append(dict(item))
                continue
            reading = to_reading(entry, serial=uploader.serial, uploader=uploader.name)
            readings.append(reading)
            echo.append({**item, "_id": entry_id(reading.key)})

        try:
            await self._publish(uploader, readings)
        except PublishError as err:
            resp = _error(503, f"not stored, try again later: {err}")
            resp.headers["Retry-After"] = "60"
            return resp
        if errors:
            await self._quarantine(
                uploader,
                [
                    (json.dumps(item, separators=(",", ":"), default=str).encode(), f"{why}")
                    for _, item, why in errors
                ],
            )
            return _error(
                400,
                f"{len(errors)} of {len(items)} entries refused (kept for review); "
                f"the other {len(readings)} accepted",
                accepted=len(readings),
                ignored=ignored,
                errors=[{"index": i, "reason": why} for i, _, why in errors],
            )
        resp = JSONResponse(echo)
        resp.headers["X-Diatabase-Accepted"] = str(len(readings))
        resp.headers["X-Diatabase-Ignored"] = str(ignored)
        return resp

    async def _publish(self, uploader: Uploader, readings: list[Reading]) -> None:
        assert self.publisher is not None
        topic = topic_readings(uploader.hub_id)
        for start in range(0, len(readings), READINGS_PER_MESSAGE):
            batch = ReadingsBatch(
                hub_id=uploader.hub_id,
                sent_at=datetime.now(UTC),
                batch_id=uuid4(),
                readings=readings[start : start + READINGS_PER_MESSAGE],
            )
            await self.publisher.publish(topic, batch.model_dump_json(by_alias=True).encode())

    async def _quarantine(self, uploader: Uploader, refused: list[tuple[bytes, str]]) -> None:
        """Quarantine refused entries once: an app re-sends a refused batch until it is
        accepted, and each retry must not add another copy."""
        fresh: list[QuarantineEntry] = []
        seen: set[bytes] = set()
        async with self.registry.session() as s:
            for payload, why in refused:
                if payload in seen:
                    continue
                seen.add(payload)
                kept = await s.scalars(
                    select(QuarantineRow.payload).where(
                        QuarantineRow.reason == QUARANTINE_REASON,
                        QuarantineRow.hub_id == uploader.hub_id,
                        QuarantineRow.payload_size == len(payload),
                        QuarantineRow.replayed_at.is_(None),
                    )
                )
                if payload[:QUARANTINE_CAP] in set(kept.all()):
                    continue
                fresh.append(
                    QuarantineEntry(
                        QUARANTINE_REASON,
                        f"uploader {uploader.name}: {why}",
                        QUARANTINE_TOPIC,
                        payload,
                        hub_id=uploader.hub_id,
                        device_serial=uploader.serial,
                    )
                )
        await self.registry.quarantine(fresh, max_payload=QUARANTINE_CAP)
