"""The Nightscout API v1 subset, end to end: the web app on uvicorn publishes to a real
Mosquitto, the real ingester stores into SQLite, links to patients and raises alerts.

The fixture bodies have the shapes the apps send (values synthetic), from their sources:

* xDrip+: NightscoutFoundation/xDrip, app/src/main/java/com/eveningoutpost/dexdrip/
  utilitymodels/NightscoutUploader.java (``populateV1APIBGEntry``, ``...MeterReadingEntry``,
  ``...CalibrationEntry``; POST ``entries`` with ``api-secret`` = SHA-1 of the secret):
  a JSON array; ``date`` long ms, ``dateString``/``sysTime`` as ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``
  in the phone's zone (``+0100``), ``sgv`` int, ``delta`` 3 decimals, ``filtered`` and
  ``unfiltered`` doubles, ``rssi`` 100, ``noise`` int; ``mbg`` and ``cal`` entries too.
* AndroidAPS NSClient (v1): nightscout/AndroidAPS, core/objects/src/main/kotlin/app/aaps/
  core/objects/extensions/GlucoseValueExtension.kt (``GV.toJson``, sent with ``dbAdd`` to the
  ``entries`` collection): ``device`` (SourceSensor text), ``date``, ``dateString`` ISO UTC,
  ``isValid``, ``sgv`` a double, ``direction``, ``type``.
* AndroidAPS NSClientV3: nightscout/AndroidAPS, core/nssdk/.../remotemodel/RemoteEntry.kt
  (what it posts to /api/v3/entries; accepted here on v1): adds ``identifier``, ``app``,
  ``utcOffset``, ``isReadOnly``, ``units`` "mg/dl" and double ``noise``/``filtered``.
* Loop: LoopKit/NightscoutKit, Sources/NightscoutKit/Models/GlucoseEntry.swift
  (``dictionaryRepresentation``) and NightscoutClient.swift (POST /api/v1/entries,
  ``api-secret`` = SHA-1; a 200 must carry an array as long as what was sent):
  ``date`` a double (seconds x 1000, so a fraction of a millisecond), ``dateString``
  ISO 8601 without fraction, ``sgv`` double, ``trend`` int, ``direction``, ``trendRate``,
  ``isCalibration``; ``device`` "loop://<phone>" (LoopKit/NightscoutService
  StoredGlucoseSample.swift).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from gateway.contract.urls import MqttUrl
from gateway.ingest.ingester import IngestConfig, Ingester
from gateway.ingest.mqtt_session import ReceiverConfig
from gateway.registry.models import Uploader
from gateway.registry.service import Registry
from gateway.registry.uploaders import api_secret_header, secret_digest
from gateway.store.sqlite import SqliteStore
from tests.asyncutil import until
from tests.harness import MosquittoServer
from tests.web.conftest import Web

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
T0 = NOW - timedelta(minutes=30)
CET = timezone(timedelta(hours=1))


def ms(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def java_local(at: datetime) -> str:
    """xDrip+'s SimpleDateFormat "yyyy-MM-dd'T'HH:mm:ss.SSSZ" in a +01:00 zone."""
    return at.astimezone(CET).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0100"


def xdrip_body() -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = []
    for i, mg in enumerate((120, 118, 115)):
        at = T0 + timedelta(minutes=5 * i, seconds=12, milliseconds=345)
        body.append(
            {
                "device": "xDrip-DexcomG5",
                "date": ms(at),
                "dateString": java_local(at),
                "sgv": mg,
                "delta": -2.512,
                "direction": "Flat",
                "type": "sgv",
                "filtered": 121000.0,
                "unfiltered": 119500.0,
                "rssi": 100,
                "noise": 1,
                "sysTime": java_local(at),
            }
        )
    cal_at = T0 + timedelta(minutes=12)
    body.append(
        {
            "device": "xDrip-DexcomG5",
            "type": "mbg",
            "date": ms(cal_at),
            "dateString": java_local(cal_at),
            "mbg": 117.0,
            "sysTime": java_local(cal_at),
        }
    )
    body.append(
        {
            "device": "xDrip-DexcomG5",
            "type": "cal",
            "date": ms(cal_at),
            "dateString": java_local(cal_at),
            "slope": 1000.0,
            "intercept": -2500.0,
            "scale": 1,
            "sysTime": java_local(cal_at),
        }
    )
    return body


def aaps_v1_body() -> list[dict[str, Any]]:
    out = []
    for i, mg in enumerate((140.0, 150.0, 162.0)):
        at = T0 + timedelta(minutes=5 * i, seconds=3)
        out.append(
            {
                "device": "AAPS-DexcomG6",
                "date": ms(at),
                "dateString": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "isValid": True,
                "sgv": mg,
                "direction": "FortyFiveUp",
                "type": "sgv",
            }
        )
    return out


def aaps_v3_body() -> list[dict[str, Any]]:
    """The same three readings as aaps_v1_body, in NSClientV3's shape."""
    return [
        {
            "type": "sgv",
            "sgv": e["sgv"],
            "date": e["date"],
            "device": "AAPS-DexcomG6",
            "direction": "FortyFiveUp",
            "identifier": f"6a4d1a52-4f0e-4c53-9d2e-0000000000{i:02d}",
            "app": "AAPS",
            "utcOffset": 60,
            "isValid": True,
            "isReadOnly": False,
            "noise": 1.0,
            "filtered": 140500.5,
            "unfiltered": 139800.25,
            "units": "mg/dl",
        }
        for i, e in enumerate(aaps_v1_body())
    ]


def loop_body() -> list[dict[str, Any]]:
    out = []
    for i, mg in enumerate((80.0, 66.0, 50.0)):
        # the newest is recent and urgent-low: the alert engine must open an episode
        at = NOW - timedelta(minutes=10 - 5 * i) + timedelta(milliseconds=123)
        out.append(
            {
                "date": at.timestamp() * 1000 + 0.456,
                "dateString": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "device": "loop://Synthetic iPhone",
                "type": "sgv",
                "sgv": mg,
                "trend": 7,
                "direction": "DoubleDown",
                "trendRate": -3.2,
                "isCalibration": False,
            }
        )
    return out


@dataclass
class Site:
    web: Web
    store: SqliteStore
    registry: Registry
    ingester: Ingester
    secrets: dict[str, str]

    def headers(self, name: str) -> dict[str, str]:
        return {"api-secret": api_secret_header(self.secrets[name])}

    async def post(self, name: str, body: Any, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.web.url, timeout=30) as c:
            if "content" in kw:
                return await c.post("/api/v1/entries", headers=kw.pop("headers"), **kw)
            return await c.post("/api/v1/entries", json=body, headers=self.headers(name), **kw)

    async def get(self, path: str, name: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.web.url, timeout=30) as c:
            return await c.get(path, headers=self.headers(name))


@pytest.fixture
async def site(
    mosquitto: MosquittoServer,
    writer: tuple[SqliteStore, Registry],
    make_web: Callable[..., Any],
) -> AsyncIterator[Site]:
    store, registry = writer
    secrets = {}
    for name, patient in [("xdrip", "P-X"), ("aaps", "P-A"), ("loop", "P-L"), ("other", "P-O")]:
        await registry.add_patient(patient)
        secrets[name] = await registry.add_uploader(
            name, hub_id=f"ns-{name}", serial=f"NS-{name.upper()}"
        )
        await registry.assign(f"NS-{name.upper()}", patient, NOW - timedelta(days=2))
    ingester = Ingester(
        ReceiverConfig(
            mqtt=MqttUrl.parse(mosquitto.url),
            client_id="ingest-ns-test",
            topics=Ingester.default_topics(),
        ),
        store,
        registry,
        IngestConfig(relink_interval_s=0.2),
    )
    task = asyncio.create_task(ingester.run())
    await until(lambda: ingester.receiver.connected, what="ingester connected")
    web = await make_web(mqtt=mosquitto.url)
    yield Site(web, store, registry, ingester, secrets)
    ingester.stop()
    await asyncio.wait_for(task, 10)


async def stored_of(store: SqliteStore, serial: str) -> list[Any]:
    return [r for r in await store.all_readings() if r.serial == serial]


async def test_app_bodies_are_stored_once_even_when_sent_twice(site: Site) -> None:
    sent = [
        ("xdrip", xdrip_body()),
        ("aaps", aaps_v1_body()),
        ("aaps", aaps_v3_body()),  # the same readings again, in the other shape
        ("loop", loop_body()),
    ]
    ids: dict[str, list[str | None]] = {}
    for name, body in [*sent, *sent]:
        resp = await site.post(name, body)
        assert resp.status_code == 200, resp.text
        echoed = resp.json()
        # Loop counts the objects in the answer; everyone gets one per entry sent
        assert isinstance(echoed, list) and len(echoed) == len(body)
        assert ids.setdefault(name, [e.get("_id") for e in echoed]) == [
            e.get("_id") for e in echoed
        ]  # the same entry has the same id however often it comes
    # one MQTT message per request; the ingester has seen them all before we look
    await until(lambda: site.ingester.stats.messages == 8, what="8 messages ingested")

    xdrip = await stored_of(site.store, "NS-XDRIP")
    assert sorted((r.kind, r.mg_dl) for r in xdrip) == [
        ("bg", 117.0),
        ("cgm", 115.0),
        ("cgm", 118.0),
        ("cgm", 120.0),
    ]
    assert {r.patient_id for r in xdrip} == {"P-X"}  # linked through the assignment
    first = min((r for r in xdrip if r.kind == "cgm"), key=lambda r: r.time)
    assert first.time == T0 + timedelta(seconds=12, milliseconds=345)
    assert first.unit == "mg/dL" and first.details["ns_device"] == "xDrip-DexcomG5"
    assert first.details["noise"] == 1 and first.details["filtered"] == 121000

    aaps = await stored_of(site.store, "NS-AAPS")
    assert sorted(r.mg_dl for r in aaps) == [140.0, 150.0, 162.0]  # v1 and v3 shapes: one each

    loop = await stored_of(site.store, "NS-LOOP")
    assert len(loop) == 3
    # a float date is cut to whole milliseconds: the fraction cannot make a second key
    expected = {math.floor(e["date"]) for e in loop_body()}
    assert {ms(r.time) for r in loop} == expected
    assert await site.store.count() == 4 + 3 + 3
    # round one: the v3 shape repeats the v1 readings; round two repeats all 13
    assert site.ingester.stats.duplicates == 3 + 13
    assert dict(site.ingester.stats.quarantined) == {}

    # the same pipeline as a hub's readings: the urgent low opened an alert episode
    alerts = await site.registry.open_alerts("P-L")
    assert [(a.kind, a.value_mg_dl) for a in alerts] == [("urgent_low", 50.0)]

    # ... and the API reads back what was stored, newest first, with computed directions
    resp = await site.get("/api/v1/entries/sgv.json?count=2", "loop")
    assert resp.status_code == 200
    got = resp.json()
    assert [e["sgv"] for e in got] == [50, 66]
    assert [e["type"] for e in got] == ["sgv", "sgv"]
    assert got[0]["date"] == max(expected) and got[0]["dateString"].endswith("Z")
    assert got[0]["direction"] == "SingleDown"  # -3 mg/dL/min over 10 minutes (ours)
    assert got[0]["_id"] == ids["loop"][2] and len(got[0]["_id"]) == 24

    everything = (await site.get("/api/v1/entries.json?count=100", "xdrip")).json()
    assert sorted(e["type"] for e in everything) == ["mbg", "sgv", "sgv", "sgv"]
    # another uploader sees its own patient only
    assert [e["sgv"] for e in (await site.get("/api/v1/entries.json", "aaps")).json()] == [
        162,
        150,
        140,
    ]
    assert (await site.get("/api/v1/entries/sgv.json?count=5", "other")).json() == []


async def test_wrong_secret_gets_401_and_nothing_is_stored(site: Site) -> None:
    body = loop_body()
    wrong = {"api-secret": api_secret_header("not-the-secret-of-anyone")}
    async with httpx.AsyncClient(base_url=site.web.url) as c:
        for headers in (wrong, {}, {"api-secret": site.secrets["loop"]}):  # raw secret: no
            for path in ("/api/v1/entries", "/api/v1/entries.json"):
                resp = await c.post(path, json=body, headers=headers)
                assert resp.status_code == 401, (headers, path)
            for path in ("/api/v1/entries/sgv.json", "/api/v1/entries.json?find[type]=cal"):
                assert (await c.get(path, headers=headers)).status_code == 401
            assert (await c.get("/api/v1/status.json", headers=headers)).status_code == 401
    assert await site.registry.revoke_uploader("loop")
    assert (await site.post("loop", body)).status_code == 401

    # a valid upload from someone else goes through; only it is in the store afterwards
    assert (await site.post("other", aaps_v1_body())).status_code == 200
    await until(lambda: site.ingester.stats.messages == 1, what="one message ingested")
    assert {r.serial for r in await site.store.all_readings()} == {"NS-OTHER"}
    assert await site.registry.quarantine_list() == []


async def test_malformed_entries_get_400_with_the_reason_and_are_quarantined(site: Site) -> None:
    good = xdrip_body()[0]
    bad = [
        {**good, "sgv": "high"},
        {k: v for k, v in good.items() if k not in {"date", "dateString"}},
        {**good, "date": good["date"] // 1000},  # seconds, not milliseconds
        {**good, "units": "mmol/l", "sgv": 6.5},
    ]
    for attempt in (1, 2):  # apps re-send a refused batch whole: stored and kept once
        resp = await site.post("xdrip", [good, *bad])
        assert resp.status_code == 400
        doc = resp.json()
        assert doc["accepted"] == 1
        reasons = {e["index"]: e["reason"] for e in doc["errors"]}
        assert sorted(reasons) == [1, 2, 3, 4]
        assert reasons[1].startswith("sgv:")
        assert "neither date" in reasons[2]
        assert "seconds instead of milliseconds" in reasons[3]
        assert "mg/dL only" in reasons[4]
        await until(lambda n=attempt: site.ingester.stats.messages == n, what="ingested")

    assert [r.mg_dl for r in await stored_of(site.store, "NS-XDRIP")] == [120.0]
    kept = await site.registry.quarantine_list(reason="nightscout_invalid")
    assert len(kept) == 4
    assert {q.topic for q in kept} == {"nightscout/api/v1/entries"}
    assert {(q.hub_id, q.device_serial) for q in kept} == {("ns-xdrip", "NS-XDRIP")}
    assert {json.loads(q.payload)["sgv"] for q in kept} == {"high", 120, 6.5}

    # a body that is not JSON at all (gzipped, as xDrip+ may send): 400, kept as received
    headers = {**site.headers("xdrip"), "content-encoding": "gzip"}
    resp = await site.post("xdrip", None, content=gzip.compress(b"[{oops"), headers=headers)
    assert resp.status_code == 400 and "not JSON" in resp.json()["message"]
    kept = await site.registry.quarantine_list(reason="nightscout_invalid")
    assert len(kept) == 5 and kept[0].payload == b"[{oops"


async def test_status_and_auth_test(site: Site) -> None:
    status = await site.get("/api/v1/status.json", "xdrip")
    assert status.status_code == 200
    assert status.json()["apiEnabled"] is True
    assert not status.json()["version"].startswith(("0.6", "0.7", "0.8"))  # xDrip+'s gate
    assert (await site.get("/api/v1/experiments/test", "loop")).status_code == 200  # Loop's


async def test_without_mqtt_uploads_get_503(
    writer: tuple[SqliteStore, Registry], make_web: Callable[..., Any]
) -> None:
    store, registry = writer
    secret = await registry.add_uploader("phone", hub_id="ns-phone", serial="NS-PHONE")
    web = await make_web()
    headers = {"api-secret": api_secret_header(secret)}
    async with httpx.AsyncClient(base_url=web.url) as c:
        resp = await c.post("/api/v1/entries", json=loop_body(), headers=headers)
        assert resp.status_code == 503 and "MQTT" in resp.json()["message"]
        assert (await c.get("/api/v1/status.json", headers=headers)).status_code == 200
    assert await store.count() == 0


async def test_the_registry_keeps_neither_the_secret_nor_the_header_value(
    writer: tuple[SqliteStore, Registry],
) -> None:
    _, registry = writer
    secret = await registry.add_uploader("phone", hub_id="ns-phone", serial="NS-PHONE")
    header = api_secret_header(secret)
    async with registry.session() as s:
        row = await s.get(Uploader, "phone")
    assert row is not None
    assert row.secret_hash == secret_digest(header)
    assert secret not in row.secret_hash and header not in row.secret_hash
    found = await registry.uploader_for_secret(header.upper())  # hex case does not matter
    assert found is not None and found.name == "phone"
    assert await registry.uploader_for_secret(api_secret_header(secret + "x")) is None
    audit = json.dumps([a.detail for a in await _audit_rows(registry)])
    assert secret not in audit and header not in audit


async def _audit_rows(registry: Registry) -> list[Any]:
    from sqlalchemy import select

    from gateway.registry.models import AuditRow

    async with registry.session() as s:
        return list((await s.scalars(select(AuditRow))).all())


async def test_broker_down_gets_503_then_uploads_resume(
    site: Site, mosquitto: MosquittoServer
) -> None:
    assert (await site.post("xdrip", xdrip_body()[:1])).status_code == 200  # connected
    await until(lambda: site.ingester.stats.messages == 1, what="first message ingested")
    await asyncio.to_thread(mosquitto.stop)  # waits for the process: off the event loop
    resp = await site.post("xdrip", xdrip_body()[1:3])
    assert resp.status_code == 503 and resp.headers["retry-after"] == "60"
    await asyncio.to_thread(mosquitto.start)  # same port; the publisher reconnects on use
    await until(lambda: site.ingester.receiver.connected, what="ingester reconnected")
    assert (await site.post("xdrip", xdrip_body()[1:3])).status_code == 200
    await until(lambda: site.ingester.stats.messages == 2, what="retried message ingested")
    assert [r.mg_dl for r in await stored_of(site.store, "NS-XDRIP")] == [120.0, 118.0, 115.0]


async def test_a_publish_the_broker_acl_refuses_gets_503(
    make_mosquitto: Callable[..., MosquittoServer],
    writer: tuple[SqliteStore, Registry],
    make_web: Callable[..., Any],
) -> None:
    """MQTT v5 answers a denied publish with PUBACK 0x87; that is not a stored upload."""
    broker = make_mosquitto(start=False)
    acl = broker.write_file("acl", "topic read diatabase/#\n")  # anonymous: read only
    broker.extra_config = f"acl_file {acl}"
    broker.start()
    _, registry = writer
    secret = await registry.add_uploader("phone", hub_id="ns-phone", serial="NS-PHONE")
    web = await make_web(mqtt=broker.url)
    async with httpx.AsyncClient(base_url=web.url) as c:
        resp = await c.post(
            "/api/v1/entries",
            json=loop_body(),
            headers={"api-secret": api_secret_header(secret)},
        )
    assert resp.status_code == 503
    assert "0x87" in resp.json()["message"]


async def test_an_unassigned_uploader_is_parked_then_linked(site: Site) -> None:
    secret = await site.registry.add_uploader("late", hub_id="ns-late", serial="NS-LATE")
    site.secrets["late"] = secret
    assert (await site.post("late", loop_body())).status_code == 200
    await until(lambda: site.ingester.stats.parked == 3, what="3 readings parked")
    assert await site.registry.parked_count() == 3
    assert (await site.get("/api/v1/entries.json", "late")).json() == []  # no patient yet

    await site.registry.add_patient("P-LATE")
    await site.registry.assign("NS-LATE", "P-LATE", NOW - timedelta(hours=1))
    await until(lambda: site.ingester.stats.relinked == 3, what="3 readings relinked")
    assert {r.patient_id for r in await stored_of(site.store, "NS-LATE")} == {"P-LATE"}
    got = (await site.get("/api/v1/entries/sgv.json?count=10", "late")).json()
    assert [e["sgv"] for e in got] == [50, 66, 80]
