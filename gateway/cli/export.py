"""``diatabase export fhir``: one patient's readings in a window as a FHIR R4 Bundle.

Registered in gateway/cli/app.py. Reads the store and registry named by the same settings
as the operator commands (``--store``, ``--registry``, ``DIATABASE_*``, ``--config``).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli.admin import AdminSettings, ConfigOpt, RegistryOpt, StoreOpt, _when
from gateway.cli.config import err_console, fail, load_settings, run_async
from gateway.contract.urls import StoreUrl

export_app = typer.Typer(help="Stored readings in standard forms.", no_args_is_help=True)

# Stores with a read side (the influxdb2 sink is write-only).
READABLE_STORES = frozenset({"sqlite", "influxdb"})


def _must_exist(url: StoreUrl, what: str) -> None:
    # Opening a missing SQLite file would create an empty one and export nothing.
    if url.scheme == "sqlite" and not (url.path or Path()).is_file():
        raise fail(f"{what} {url.path} does not exist")


@export_app.command("fhir")
def export_fhir(
    patient: Annotated[str, typer.Option(help="pseudonymous patient id")],
    start: Annotated[
        str,
        typer.Option("--from", help="window start, ISO 8601 (no zone: UTC)", show_default=False),
    ],
    end: Annotated[
        str, typer.Option("--to", help="window end (exclusive), ISO 8601", show_default=False)
    ],
    summary: Annotated[
        bool, typer.Option("--summary", help="add the CGM summary observations (HL7 CGM IG)")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to FILE [default: stdout]")
    ] = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """A FHIR R4 Bundle (collection) of glucose Observations: meters (LOINC 41653-7 /
    14743-9), CGM (99504-3 / 105272-9), with --summary the CGM summary (docs/fhir.md)."""
    t0, t1 = parse_time(start, "--from"), parse_time(end, "--to")
    if t0 >= t1:
        raise fail(f"--from {t0.isoformat()} is not before --to {t1.isoformat()}")
    settings = load_settings(AdminSettings, config, store=store, registry=registry)
    if settings.store.scheme not in READABLE_STORES:
        raise fail(f"export reads sqlite:/// or influxdb:// stores, got {settings.store.raw!r}")
    _must_exist(settings.store, "store")
    _must_exist(settings.registry, "registry")

    from gateway.interop.fhir import ExportError, bundle
    from gateway.registry.service import Registry, RegistryError
    from gateway.store.base import StoreError, open_store

    async def load() -> tuple[bool, dict[str, str], list[Any]]:
        async with Registry(settings.registry, actor="cli") as reg:
            known = patient in {p.id for p in await reg.list_patients()}
            models = {d.serial: d.model for d in await reg.list_devices() if d.model}
        if not known:
            return False, models, []
        s: Any = open_store(settings.store)
        await s.open()
        try:
            return True, models, await s.glucose_series(patient, t0, t1)
        finally:
            await s.close()

    try:
        known, models, readings = run_async(load())
    except (StoreError, RegistryError) as err:
        raise fail(str(err)) from None
    if not known:
        raise fail(f"unknown patient {patient!r} (not in the registry)")
    try:
        doc = bundle(patient, t0, t1, readings, models=models, summary=summary)
    except ExportError as err:
        raise fail(str(err)) from None
    observations = sum(
        1 for e in doc.get("entry", ()) if e["resource"]["resourceType"] == "Observation"
    )
    if not observations:
        err_console.print(
            f"note: no glucose readings for {patient} in [{t0.isoformat()}, {t1.isoformat()}):"
            " the bundle is empty"
        )
    elif summary and not any(r.kind == "cgm" for r in readings):
        err_console.print("note: no CGM readings in the window: no CGM summary")
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output:
        output.write_text(text)
    else:
        sys.stdout.write(text)


def parse_time(text: str, name: str) -> datetime:
    """ISO 8601, a time without a zone taken as UTC; exit 2 with one line otherwise."""
    when = _when(text, name)
    assert when is not None
    return when
