"""``diatabase registry ...`` and ``diatabase quarantine ...``: the operator's tools."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from gateway.cli.config import fail, load_settings
from gateway.contract.urls import StoreUrl, StoreUrlField

T = TypeVar("T")
console = Console()

registry_app = typer.Typer(help="Patients, hubs, devices and assignments.", no_args_is_help=True)
patient_app = typer.Typer(help="Pseudonymous patients.", no_args_is_help=True)
device_app = typer.Typer(help="Devices (by serial number).", no_args_is_help=True)
hub_app = typer.Typer(help="Hubs.", no_args_is_help=True)
registry_app.add_typer(patient_app, name="patient")
registry_app.add_typer(device_app, name="device")
uploader_app = typer.Typer(
    help="Nightscout uploaders (xDrip+, AndroidAPS, Loop) and their secrets.",
    no_args_is_help=True,
)
registry_app.add_typer(hub_app, name="hub")
registry_app.add_typer(uploader_app, name="uploader")
quarantine_app = typer.Typer(help="Rejected input, kept with its reason.", no_args_is_help=True)


class AdminSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIATABASE_", extra="ignore")
    registry: StoreUrlField = Field(default=StoreUrl.parse("sqlite:///var/diatabase/registry.db"))
    store: StoreUrlField = Field(default=StoreUrl.parse("sqlite:///var/diatabase/readings.db"))


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file")]
RegistryOpt = Annotated[str | None, typer.Option("--registry", help="sqlite:/// or postgresql://")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="sqlite:/// or influxdb://")]


def _with_registry(
    config: Path | None, registry: str | None, fn: Callable[[Any], Awaitable[T]]
) -> T:
    from gateway.registry.service import Registry, RegistryError

    settings = load_settings(AdminSettings, config, registry=registry)

    async def go() -> T:
        async with Registry(settings.registry, actor="cli") as reg:
            return await fn(reg)

    try:
        return asyncio.run(go())
    except RegistryError as err:
        raise fail(str(err)) from None


def _when(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{name}: {text!r} is not an ISO 8601 date-time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@patient_app.command("add")
def patient_add(
    patient_id: Annotated[str, typer.Argument(help="pseudonymous id, never a name")],
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Add a patient."""
    _with_registry(config, registry, lambda r: r.add_patient(patient_id))
    console.print(f"patient {patient_id} added")


@patient_app.command("list")
def patient_list(config: ConfigOpt = None, registry: RegistryOpt = None) -> None:
    """List patients."""
    rows = _with_registry(config, registry, lambda r: r.list_patients())
    table = Table("patient", "created")
    for p in rows:
        table.add_row(p.id, p.created_at.isoformat(timespec="seconds"))
    console.print(table)


@patient_app.command("thresholds")
def patient_thresholds(
    patient_id: str,
    low: Annotated[
        float | None, typer.Option(min=40, max=150, help="low alert below this, mg/dL")
    ] = None,
    high: Annotated[
        float | None, typer.Option(min=120, max=500, help="high alert above this, mg/dL")
    ] = None,
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Set a patient's low and high alert thresholds (omitted: the defaults, 70 and 250)."""
    if low is not None and high is not None and low >= high:
        raise fail(f"--low {low:g} must be below --high {high:g}")
    _with_registry(
        config, registry, lambda r: r.set_thresholds(patient_id, low_mg_dl=low, high_mg_dl=high)
    )
    shown = [
        f"{n} {v:g} mg/dL" if v is not None else f"{n} default"
        for n, v in (("low", low), ("high", high))
    ]
    console.print(f"patient {patient_id}: {', '.join(shown)}")


@hub_app.command("add")
def hub_add(
    hub_id: str,
    public_key: Annotated[
        str | None, typer.Option(help="the hub's Ed25519 public key (diatabase edge pubkey)")
    ] = None,
    require_signature: Annotated[
        bool, typer.Option(help="quarantine unsigned or wrongly signed batches")
    ] = False,
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Add a hub (with its signing key)."""
    if require_signature and not public_key:
        raise fail("--require-signature needs --public-key")
    if public_key:
        from gateway.contract.signing import verify

        if (
            "registered public key is not Ed25519"
            in verify(
                b'{},"signature":{"alg":"ed25519","key_id":"0000000000000000","value":"AA=="}}',
                public_key,
            ).reason
        ):
            raise fail("--public-key is not a base64 Ed25519 public key")
    _with_registry(
        config,
        registry,
        lambda r: r.add_hub(hub_id, public_key=public_key, require_signature=require_signature),
    )
    console.print(f"hub {hub_id} added" + (" (signatures required)" if require_signature else ""))


@device_app.command("add")
def device_add(
    serial: str,
    kind: Annotated[str, typer.Option(help="glucose_meter, cgm or insulin_pump")],
    hub: Annotated[str | None, typer.Option(help="the hub that reads it")] = None,
    model: str = "",
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Add a device."""
    if kind not in {"glucose_meter", "cgm", "insulin_pump"}:
        raise fail(f"--kind must be glucose_meter, cgm or insulin_pump, got {kind!r}")
    _with_registry(config, registry, lambda r: r.add_device(serial, kind, hub_id=hub, model=model))
    console.print(f"device {serial} added")


@device_app.command("list")
def device_list(config: ConfigOpt = None, registry: RegistryOpt = None) -> None:
    """List devices with their current patient."""

    async def go(r: Any) -> list[tuple[Any, str | None]]:
        now = datetime.now(UTC)
        return [(d, r.link(d.serial, now)) for d in await r.list_devices()]

    table = Table("serial", "kind", "hub", "model", "patient now")
    for d, patient in _with_registry(config, registry, go):
        table.add_row(d.serial, d.kind, d.hub_id or "-", d.model, patient or "-")
    console.print(table)


@uploader_app.command("add")
def uploader_add(
    name: Annotated[str, typer.Argument(help="a label for the phone/app, never a patient name")],
    hub: Annotated[str, typer.Option(help="hub id its readings are published under")],
    serial: Annotated[str, typer.Option(help="device serial its readings are stored under")],
    patient: Annotated[
        str | None, typer.Option(help="assign the device to this patient (see --from)")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="with --patient: ISO date-time [default: now]")
    ] = None,
    model: Annotated[str, typer.Option(help="device model, for the device list")] = "",
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Register a Nightscout uploader; prints its secret once (it is stored only hashed)."""
    if len(name) > 64 or not name.strip():
        raise fail("NAME must be 1 to 64 characters")
    start = _when(from_, "--from") or datetime.now(UTC)

    async def go(r: Any) -> str:
        if patient is not None and patient not in {p.id for p in await r.list_patients()}:
            from gateway.registry.service import UnknownEntityError

            raise UnknownEntityError("patient", patient)
        secret: str = await r.add_uploader(name, hub_id=hub, serial=serial, model=model)
        if patient is not None:
            await r.assign(serial, patient, start)
        return secret

    secret = _with_registry(config, registry, go)
    console.print(f"uploader {name} added: hub {hub}, device {serial}")
    if patient is not None:
        console.print(f"{serial} -> {patient} from {start.isoformat()}")
    console.print("API secret (shown once; the app hashes it into its api-secret header):")
    typer.echo(secret)


@uploader_app.command("list")
def uploader_list(config: ConfigOpt = None, registry: RegistryOpt = None) -> None:
    """List uploaders with their hub, device and current patient."""

    async def go(r: Any) -> list[tuple[Any, str | None]]:
        now = datetime.now(UTC)
        return [(u, r.link(u.serial, now)) for u in await r.list_uploaders()]

    table = Table("uploader", "hub", "serial", "patient now", "created", "revoked")
    for u, patient in _with_registry(config, registry, go):
        table.add_row(
            u.name,
            u.hub_id,
            u.serial,
            patient or "-",
            u.created_at.isoformat(timespec="seconds"),
            u.revoked_at.isoformat(timespec="seconds") if u.revoked_at else "-",
        )
    console.print(table)


@uploader_app.command("revoke")
def uploader_revoke(name: str, config: ConfigOpt = None, registry: RegistryOpt = None) -> None:
    """Revoke an uploader's secret: its uploads get 401 from now on."""
    if not _with_registry(config, registry, lambda r: r.revoke_uploader(name)):
        raise fail(f"no active uploader {name!r}", code=1)
    console.print(f"uploader {name} revoked")


@registry_app.command("assign")
def assign(
    serial: str,
    patient: str,
    from_: Annotated[str, typer.Option("--from", help="ISO date-time the device was put on")],
    to: Annotated[str | None, typer.Option("--to", help="ISO date-time it came off")] = None,
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Assign a device to a patient for a time interval (no overlaps per device)."""
    start, end = _when(from_, "--from"), _when(to, "--to")
    assert start is not None
    a = _with_registry(config, registry, lambda r: r.assign(serial, patient, start, end))
    console.print(f"{a.serial} -> {a.patient_id} from {a.valid_from.isoformat()}")


@registry_app.command("unassign")
def unassign(
    serial: str,
    at: Annotated[str | None, typer.Option("--at", help="ISO date-time (default: now)")] = None,
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """End the device's open assignment."""
    when = _when(at, "--at") or datetime.now(UTC)
    closed = _with_registry(config, registry, lambda r: r.unassign(serial, when))
    if not closed:
        raise fail(f"device {serial} has no open assignment", code=1)
    console.print(f"{serial} unassigned at {when.isoformat()}")


@registry_app.command("relink")
def relink(config: ConfigOpt = None, registry: RegistryOpt = None, store: StoreOpt = None) -> None:
    """Write parked readings whose device now has an assignment."""
    from gateway.ingest.relink import relink_parked
    from gateway.registry.service import Registry
    from gateway.store import open_store

    settings = load_settings(AdminSettings, config, registry=registry, store=store)

    async def go() -> tuple[int, int]:
        s = open_store(settings.store)
        await s.open()
        try:
            async with Registry(settings.registry, actor="cli") as reg:
                return await relink_parked(reg, s)
        finally:
            await s.close()

    linked, left = asyncio.run(go())
    console.print(f"relinked {linked} parked readings; {left} still without an assignment")


@quarantine_app.command("list")
def quarantine_list(
    reason: Annotated[str | None, typer.Option(help="only this reason")] = None,
    limit: int = 50,
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Newest quarantined messages and readings, and counts by reason."""

    async def go(r: Any) -> tuple[Any, Any]:
        return await r.quarantine_list(reason=reason, limit=limit), await r.quarantine_counts()

    rows, counts = _with_registry(config, registry, go)
    console.print(
        "by reason: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    )
    table = Table("id", "received", "reason", "hub", "size", "detail")
    for q in rows:
        table.add_row(
            str(q.id),
            q.received_at.isoformat(timespec="seconds"),
            q.reason,
            q.hub_id or "-",
            str(q.payload_size),
            q.detail[:80],
        )
    console.print(table)


@quarantine_app.command("show")
def quarantine_show(qid: int, config: ConfigOpt = None, registry: RegistryOpt = None) -> None:
    """One quarantined item with its payload."""
    q = _with_registry(config, registry, lambda r: r.quarantine_get(qid))
    if q is None:
        raise fail(f"no quarantined item {qid}", code=1)
    doc = {
        "id": q.id,
        "received_at": q.received_at.isoformat(),
        "reason": q.reason,
        "detail": q.detail,
        "topic": q.topic,
        "hub_id": q.hub_id,
        "reading_key": q.reading_key,
        "payload_size": q.payload_size,
        "payload": q.payload.decode("utf-8", "replace"),
        "replayed_at": q.replayed_at.isoformat() if q.replayed_at else None,
    }
    typer.echo(json.dumps(doc, indent=2))


@quarantine_app.command("replay")
def quarantine_replay(
    qid: int, config: ConfigOpt = None, registry: RegistryOpt = None, store: StoreOpt = None
) -> None:
    """Run one quarantined message through the pipeline again (after a fix)."""
    from gateway.ingest.relink import replay_quarantined
    from gateway.registry.service import Registry
    from gateway.store import open_store

    settings = load_settings(AdminSettings, config, registry=registry, store=store)

    async def go() -> Any:
        s = open_store(settings.store)
        await s.open()
        try:
            async with Registry(settings.registry, actor="cli") as reg:
                return await replay_quarantined(reg, s, qid)
        finally:
            await s.close()

    result = asyncio.run(go())
    if result is None:
        raise fail(f"no quarantined item {qid}", code=1)
    console.print(
        f"replayed {qid}: {result.stored} stored, {result.parked} parked, "
        f"{result.quarantined} quarantined again"
    )
