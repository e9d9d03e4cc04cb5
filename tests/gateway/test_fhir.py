"""FHIR R4 export (issue 9 point 1): LOINC/UCUM mapping per kind and unit, flags and
special values carried, determinism, CGM summary equal to the AGP, every resource
validated by two FHIR model libraries, and ``diatabase export fhir`` end to end on a
SQLite store and registry (and an InfluxDB 1.x store) filled through the real pipeline."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fhirclient.models.bundle as r4_bundle
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle as R4BBundle
from fhirclient.models.fhirabstractbase import FHIRValidationError
from pydantic import ValidationError
from typer.testing import CliRunner

from gateway.agp import summarise
from gateway.cli.app import app
from gateway.contract.urls import StoreUrl
from gateway.contract.v1 import topic_readings
from gateway.ingest.pipeline import process
from gateway.interop import fhir
from gateway.registry.service import Registry
from gateway.store.base import StoredReading
from gateway.store.influx1 import Influx1Store
from gateway.store.sqlite import SqliteStore
from tests.factories import batch, bg_reading, cgm_reading

PATIENT = "P-FHIR"
HUB = "hub-1"
# tests/factories.py: a CGM reading at offset m is at BASE + m min - 1 h (device clock one
# hour ahead), i.e. 2026-11-01 07:00Z + m min; a meter reading n at 08:00Z + n min.
T0 = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
# One day of 5-minute CGM values: 288 readings cover [T0, T1) completely. 15 and 650 are
# outside 20-600 mg/dL: stored, flagged, counted by the AGP like any other value.
DAY = [15] + [45] * 5 + [62] * 12 + [130] * 190 + [220] * 48 + [280] * 31 + [650]
assert len(DAY) == 288


def stored(payload: bytes, link: dict[str, str]) -> list[StoredReading]:
    """Readings as the ingester stores them: the real validation and normalisation."""
    out = process(
        topic_readings(HUB),
        payload,
        link=lambda serial, _at: link.get(serial),
        hub_of=lambda serial: HUB if serial in link else False,
    )
    assert out.quarantined == [] and out.parked == []
    return out.stored


def day_payloads() -> list[bytes]:
    cgm = [cgm_reading("CGM1", 5 * i, float(v)) for i, v in enumerate(DAY)]
    meters = [
        bg_reading("BG1", 60, 0.00112),  # kg/L: 112 mg/dL
        bg_reading("BG1", 61, 0.0065),  # 650 mg/dL: flagged
        bg_reading("BG2", 62, 0.0056, "mol/L"),  # 5.6 mmol/L
    ]
    return [batch(HUB, cgm[:200]), batch(HUB, cgm[200:] + meters)]


def day_readings() -> list[StoredReading]:
    link = {"CGM1": PATIENT, "BG1": PATIENT, "BG2": PATIENT}
    return [r for p in day_payloads() for r in stored(p, link)]


def resources(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in doc.get("entry", [])]


def observations(doc: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [
        r
        for r in resources(doc)
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == code
    ]


def validate(doc: dict[str, Any]) -> None:
    """The bundle and each resource in it through fhir.resources (R4B, pydantic, strict
    on element names, types and required elements) and fhirclient (FHIR 4.0.1 models)."""
    R4BBundle.model_validate(doc)
    for res in resources(doc):
        get_fhir_model_class(res["resourceType"]).model_validate(res)
    r4_bundle.Bundle(doc, strict=True)


def one(values: Sequence[Any]) -> Any:
    assert len(values) == 1, values
    return values[0]


# -- mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reading", "loinc", "ucum", "value"),
    [
        (cgm_reading("CGM1", 0, 112.0), "99504-3", "mg/dL", 112.0),
        (bg_reading("BG1", 1, 0.00112), "41653-7", "mg/dL", 112.0),
        (bg_reading("BG1", 2, 0.0056, "mol/L"), "14743-9", "mmol/L", 5.6),
        (bg_reading("BG1", 3, 112.0, "mg/dL"), "41653-7", "mg/dL", 112.0),
    ],
)
def test_loinc_and_ucum_per_kind_and_reported_unit(
    reading: dict[str, Any], loinc: str, ucum: str, value: float
) -> None:
    (r,) = stored(batch(HUB, [reading]), {"CGM1": PATIENT, "BG1": PATIENT})
    doc = fhir.bundle(PATIENT, T0 - timedelta(days=1), T1, [r])
    validate(doc)
    obs = one(observations(doc, loinc))
    assert obs["code"]["coding"] == [
        fhir.READING_CODES[(r.kind, fhir.UNIT_FAMILY[r.unit])].code.coding()
    ]
    assert obs["valueQuantity"]["code"] == ucum
    assert obs["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    assert obs["valueQuantity"]["value"] == value
    assert obs["identifier"] == [{"system": fhir.READING_KEY_SYSTEM, "value": reading["key"]}]
    assert obs["effectiveDateTime"] == reading["time"].replace("+00:00", "Z")
    assert obs["subject"]["reference"] == f"Patient/{PATIENT}"
    assert obs["status"] == "final"
    device = one([d for d in resources(doc) if d["resourceType"] == "Device"])
    assert obs["device"] == {"reference": f"urn:uuid:{device['id']}"}
    assert device["identifier"] == [
        {"system": fhir.DEVICE_SERIAL_SYSTEM, "value": reading["device"]["serial"]}
    ]


def test_cgm_in_molar_units_uses_the_molar_code() -> None:
    (r,) = stored(batch(HUB, [cgm_reading("CGM1", 0, 100.0)]), {"CGM1": PATIENT})
    molar = r._replace(value=0.0056, unit="mol/L")
    obs = fhir.reading_observation(molar, fhir.device_resource("CGM1", "cgm"))
    assert obs["code"]["coding"][0]["code"] == "105272-9"
    assert obs["valueQuantity"] == {
        "value": 5.6,
        "unit": "mmol/l",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }
    assert obs["meta"]["profile"] == [fhir.CGM_IG + "cgm-sensor-reading-moles-per-volume"]


def test_insulin_has_no_glucose_code() -> None:
    (r,) = stored(batch(HUB, [cgm_reading("CGM1", 0, 100.0)]), {"CGM1": PATIENT})
    with pytest.raises(fhir.UnsupportedReadingError, match="insulin_bolus"):
        fhir.reading_observation(r._replace(kind="insulin_bolus", unit="IU"), {"id": "x"})


def test_out_of_range_is_kept_with_its_flag_and_a_note() -> None:
    (r,) = stored(batch(HUB, [bg_reading("BG1", 1, 0.0065)]), {"BG1": PATIENT})
    assert r.flags == ("out_of_range",)
    obs = fhir.reading_observation(r._replace(status=("strip_insufficient",)), {"id": "d"})
    assert obs["valueQuantity"]["value"] == 650.0
    assert obs["meta"]["tag"] == [{"system": fhir.FLAG_SYSTEM, "code": "out_of_range"}]
    assert [n["text"] for n in obs["note"]] == [
        "Outside the plausible range 20-600 mg/dL: stored as the device reported it and "
        "flagged for review.",
        "Device status: strip_insufficient.",
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (math.nan, "not-a-number"),
        (math.inf, "positive-infinity"),
        (-math.inf, "negative-infinity"),
        (None, "unknown"),
    ],
)
def test_special_values_become_a_data_absent_reason(value: float | None, reason: str) -> None:
    (r,) = stored(batch(HUB, [cgm_reading("CGM1", 0, 100.0)]), {"CGM1": PATIENT})
    special = r._replace(value=value, mg_dl=value)
    doc = fhir.bundle(PATIENT, T0, T1, [special])
    validate(doc)
    obs = one(observations(doc, "99504-3"))
    assert "valueQuantity" not in obs
    assert obs["dataAbsentReason"] == {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": reason}
        ]
    }


def test_the_validators_reject_what_fhir_rejects() -> None:
    """Control: the two validators used above do fail on non-FHIR content."""
    doc = fhir.bundle(PATIENT, T0, T1, day_readings()[:1])
    obs = resources(doc)[1]
    obs["valueQuantity"]["value"] = "a lot"
    with pytest.raises(ValidationError):
        get_fhir_model_class("Observation").model_validate(obs)
    with pytest.raises(FHIRValidationError):
        r4_bundle.Bundle(doc, strict=True)
    del obs["valueQuantity"]
    obs["status"] = None
    obs["valueGlucose"] = 5
    with pytest.raises(ValidationError):
        get_fhir_model_class("Observation").model_validate(obs)
    with pytest.raises(FHIRValidationError):
        r4_bundle.Bundle(doc, strict=True)


# -- the bundle and the summary --------------------------------------------------------


def test_whole_day_bundle_validates_and_is_deterministic() -> None:
    readings = day_readings()
    doc = fhir.bundle(PATIENT, T0, T1, readings, models={"CGM1": "VirtualCGM"}, summary=True)
    validate(doc)
    again = fhir.bundle(
        PATIENT, T0, T1, list(reversed(readings)), models={"CGM1": "VirtualCGM"}, summary=True
    )
    assert json.dumps(doc) == json.dumps(again)
    assert doc["type"] == "collection"
    kinds = [r["resourceType"] for r in resources(doc)]
    # 3 devices, 288 CGM + 3 meter readings, the panel and its 6 members
    assert kinds == ["Device"] * 3 + ["Observation"] * (288 + 3 + 7)
    ids = [r["id"] for r in resources(doc)]
    assert len(set(ids)) == len(ids)
    keys = {
        o["identifier"][0]["value"]
        for o in resources(doc)
        if "identifier" in o and o["resourceType"] == "Observation"
    }
    assert keys == {r.key for r in readings}
    cgm_device = one([d for d in resources(doc) if d.get("serialNumber") == "CGM1"])
    assert cgm_device["modelNumber"] == "VirtualCGM"
    assert len(observations(doc, "99504-3")) == 288
    flagged = [o for o in resources(doc) if "tag" in o.get("meta", {})]
    assert len(flagged) == 3  # 15 and 650 mg/dL CGM, 650 mg/dL meter


def summary_figures(doc: dict[str, Any]) -> dict[str, Any]:
    """The summary's numbers, keyed like gateway.agp.AgpSummary."""
    tir = one(observations(doc, "106793-3"))
    by_code = {
        c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in tir["component"]
    }
    gmi = one(observations(doc, "97506-0"))
    return {
        "mean_mg_dl": one(observations(doc, "97507-8"))["valueQuantity"]["value"],
        "gmi_pct": gmi["valueQuantity"]["value"] if "valueQuantity" in gmi else None,
        "cv_pct": one(observations(doc, "104638-2"))["valueQuantity"]["value"],
        "active_pct": one(observations(doc, "104637-4"))["valueQuantity"]["value"],
        "days": one(observations(doc, "104636-6"))["valueQuantity"]["value"],
        "time_in_ranges_pct": {key: by_code[code.code] for key, code in fhir.RANGE_CODES.items()},
    }


def test_summary_numbers_are_the_agp_numbers() -> None:
    readings = day_readings()
    doc = fhir.bundle(PATIENT, T0, T1, readings, summary=True)
    agp = summarise([(r.time, r.mg_dl) for r in readings if r.kind == "cgm"], T0, T1)
    figures = summary_figures(doc)
    assert figures == {
        "mean_mg_dl": agp.mean_mg_dl,
        "gmi_pct": agp.gmi_pct,
        "cv_pct": agp.cv_pct,
        "active_pct": agp.active_pct,
        "days": 1,
        "time_in_ranges_pct": agp.time_in_ranges_pct,
    }
    # and the AGP's figures for this day, by hand: very low 6/288 = 2.1 %, low 12/288 =
    # 4.2 %, in range 190/288 = 66.0 %, high 48/288 = 16.7 %, very high 32/288 = 11.1 %
    assert agp.time_in_ranges_pct == {
        "very_low": 2.1,
        "low": 4.2,
        "in_range": 66.0,
        "high": 16.7,
        "very_high": 11.1,
    }
    assert agp.active_pct == 100.0
    panel = one(observations(doc, "107931-8"))
    assert panel["meta"]["profile"] == [fhir.CGM_IG + "cgm-summary"]
    assert panel["effectivePeriod"] == {
        "start": "2026-11-01T07:00:00Z",
        "end": "2026-11-02T07:00:00Z",
    }
    members = {m["reference"] for m in panel["hasMember"]}
    assert members == {
        f"urn:uuid:{r['id']}"
        for r in resources(doc)
        if r["resourceType"] == "Observation" and "effectivePeriod" in r and r is not panel
    }
    assert len(members) == 6
    # the meter readings do not count in the AGP
    assert summarise([(r.time, r.mg_dl) for r in readings], T0, T1) != agp


def test_gmi_below_70_percent_activity_is_absent_with_the_reason() -> None:
    # 8 hours of a 24 h window: 33.33 % active, GMI withheld as on the patient page
    readings = [r for r in day_readings() if r.kind == "cgm"][:96]
    doc = fhir.bundle(PATIENT, T0, T1, readings, summary=True)
    validate(doc)
    gmi = one(observations(doc, "97506-0"))
    assert "valueQuantity" not in gmi and "meta" not in gmi
    assert gmi["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert gmi["note"] == [
        {
            "text": "GMI not computed: CGM active 33.3 % of the period, below the 70 % needed for GMI."
        }
    ]
    assert "meta" not in one(observations(doc, "107931-8"))  # no longer the IG's panel
    assert summary_figures(doc)["active_pct"] == 33.33


def test_empty_window_is_a_valid_empty_bundle() -> None:
    doc = fhir.bundle(PATIENT, T0, T1, [], summary=True)
    validate(doc)
    assert "entry" not in doc and doc["type"] == "collection"


# -- the command ------------------------------------------------------------------------


@dataclass
class World:
    store: str
    registry: str


async def fill(store: Any, registry_url: str) -> None:
    async with Registry(StoreUrl.parse(registry_url)) as reg:
        await reg.add_patient(PATIENT)
        await reg.add_patient("P-EMPTY")
        await reg.add_hub(HUB)
        await reg.add_device("CGM1", "cgm", hub_id=HUB, model="VirtualCGM")
        await reg.add_device("BG1", "glucose_meter", hub_id=HUB)
        await reg.add_device("BG2", "glucose_meter", hub_id=HUB)
        for serial in ("CGM1", "BG1", "BG2"):
            await reg.assign(serial, PATIENT, T0 - timedelta(days=30))
        for payload in day_payloads():
            out = process(topic_readings(HUB), payload, link=reg.link, hub_of=reg.hub_of)
            assert out.quarantined == [] and out.parked == []
            assert (await store.write(out.stored)).written == len(out.stored)


@pytest.fixture
async def world(tmp_path: Path) -> World:
    w = World(f"sqlite:///{tmp_path / 'readings.db'}", f"sqlite:///{tmp_path / 'registry.db'}")
    store = await SqliteStore(StoreUrl.parse(w.store)).open()
    try:
        await fill(store, w.registry)
    finally:
        await store.close()
    return w


def run(*args: str) -> Any:
    # the command runs its own event loop: call from a thread in async tests
    return CliRunner().invoke(app, list(args))


def export_args(w: World, *more: str) -> list[str]:
    return ["export", "fhir", "--store", w.store, "--registry", w.registry, *more]


async def test_cli_exports_a_valid_bundle_equal_to_report_agp(world: World, tmp_path: Path) -> None:
    window = ["--patient", PATIENT, "--from", "2026-11-01T07:00:00Z", "--to", "2026-11-02T07:00"]
    result = await asyncio.to_thread(run, *export_args(world, *window, "--summary"))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    assert len(observations(doc, "99504-3")) == 288
    assert len(observations(doc, "41653-7")) == 2 and len(observations(doc, "14743-9")) == 1
    cgm_device = one([d for d in resources(doc) if d.get("serialNumber") == "CGM1"])
    assert cgm_device["modelNumber"] == "VirtualCGM"  # from the registry

    report = await asyncio.to_thread(
        run, "report", "agp", "--patient", PATIENT, "--days", "1",
        "--end", "2026-11-02T07:00:00", "--store", world.store,
    )  # fmt: skip
    assert report.exit_code == 0, report.output
    agp = json.loads(report.stdout)
    figures = summary_figures(doc)
    assert figures["time_in_ranges_pct"] == agp["time_in_ranges_pct"]
    for key in ("mean_mg_dl", "gmi_pct", "cv_pct", "active_pct"):
        assert figures[key] == agp[key], key

    out = tmp_path / "export.json"
    again = await asyncio.to_thread(
        run, *export_args(world, *window, "--summary", "--output", str(out))
    )
    assert again.exit_code == 0 and again.stdout == ""
    assert out.read_text() == result.stdout  # two exports, the same bytes


async def test_cli_empty_window_is_an_empty_bundle_and_a_note(world: World) -> None:
    window = ["--from", "2026-11-01T07:00:00Z", "--to", "2026-11-02T07:00:00Z"]
    result = await asyncio.to_thread(run, *export_args(world, "--patient", "P-EMPTY", *window))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate(doc)
    assert "entry" not in doc
    assert "no glucose readings for P-EMPTY" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--patient", "P-NOBODY", "--from", "2026-11-01", "--to", "2026-11-02"], "unknown patient 'P-NOBODY'"),
        (["--patient", PATIENT, "--from", "yesterday", "--to", "2026-11-02"], "--from: 'yesterday' is not an ISO 8601"),
        (["--patient", PATIENT, "--from", "2026-11-01", "--to", "2026-13-02"], "--to: '2026-13-02' is not an ISO 8601"),
        (["--patient", PATIENT, "--from", "2026-11-02", "--to", "2026-11-01"], "is not before --to"),
        (["--patient", PATIENT, "--from", "2026-11-02T00:00Z", "--to", "2026-11-02T01:00+01:00"], "is not before --to"),
    ],
)  # fmt: skip
async def test_cli_errors_are_one_line_and_exit_2(
    world: World, args: list[str], message: str
) -> None:
    result = await asyncio.to_thread(run, *export_args(world, *args))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


async def test_cli_missing_store_is_exit_2(world: World, tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    window = ["--patient", PATIENT, "--from", "2026-11-01", "--to", "2026-11-02"]
    result = await asyncio.to_thread(
        run, "export", "fhir", "--store", missing, "--registry", world.registry, *window
    )
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "nope.db").exists()


async def test_cli_reads_influxdb1_the_same_as_sqlite(
    world: World, influx_db: str, tmp_path: Path
) -> None:
    influx = await Influx1Store(StoreUrl.parse(influx_db)).open()
    try:
        sqlite = await SqliteStore(StoreUrl.parse(world.store)).open()
        try:
            assert (await influx.write(await sqlite.all_readings())).written == 291
        finally:
            await sqlite.close()
    finally:
        await influx.close()
    window = ["--patient", PATIENT, "--from", "2026-11-01T07:00Z", "--to", "2026-11-02T07:00Z"]
    from_sqlite = await asyncio.to_thread(run, *export_args(world, *window, "--summary"))
    from_influx = await asyncio.to_thread(
        run, "export", "fhir", "--store", influx_db, "--registry", world.registry, *window, "--summary"
    )  # fmt: skip
    assert from_influx.exit_code == 0, from_influx.output
    assert from_influx.stdout == from_sqlite.stdout


def test_days_of_wear_count_the_period_days_with_data() -> None:
    from gateway.agp import days_with_data

    # a 3-day period from 07:00: data in day 1 (twice, across midnight) and day 3 only
    times = [T0 + timedelta(hours=h) for h in (1, 20, 50)]
    assert days_with_data(times, T0, T0 + timedelta(days=3)) == 2
    assert days_with_data(times, T0, T0 + timedelta(days=2)) == 1  # 50 h is outside
    assert days_with_data([], T0, T1) == 0


# -- docs/fhir.md ---------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "fhir.md"
BEGIN, END = "<!-- example: begin -->\n```json\n", "```\n<!-- example: end -->"


def docs_example() -> str:
    """The excerpt docs/fhir.md shows: chosen entries of the whole-day export, verbatim
    (print it with ``python -c 'from tests.gateway.test_fhir import docs_example as d;
    print(d(), end="")'``)."""
    doc = fhir.bundle(PATIENT, T0, T1, day_readings(), models={"CGM1": "VirtualCGM"}, summary=True)

    def pick(entry: dict[str, Any]) -> bool:
        res = entry["resource"]
        if res["resourceType"] == "Device":
            return bool(res["serialNumber"] == "CGM1")
        code = res["code"]["coding"][0]["code"]
        value = res.get("valueQuantity", {}).get("value")
        return (
            (code == "99504-3" and value == 45.0 and res["effectiveDateTime"].endswith("05:00Z"))
            or code in {"14743-9", "107931-8", "106793-3", "97506-0"}
            or (code == "41653-7" and value == 650.0)
        )

    excerpt = {**doc, "entry": [e for e in doc["entry"] if pick(e)]}
    return json.dumps(excerpt, indent=2) + "\n"


def test_docs_example_is_what_the_code_writes() -> None:
    text = DOC.read_text()
    shown = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert shown == docs_example()
