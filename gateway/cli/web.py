"""``diatabase serve`` (the web views) and ``diatabase report agp``.

Registered in gateway/cli/app.py; heavy imports stay inside the commands so a hub with
only the ``edge`` extra can still load the CLI.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.cli.config import fail, load_settings, run_async
from gateway.contract.urls import StoreUrl, StoreUrlField

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file", show_default=False)
]

report_app = typer.Typer(help="Reports computed from the stored readings.", no_args_is_help=True)


def serve(
    config: ConfigOpt = None,
    store: Annotated[
        str | None, typer.Option(help="sqlite:///readings.db or influxdb://host:port/db")
    ] = None,
    registry: Annotated[
        str | None, typer.Option(help="sqlite:///registry.db or postgresql://...")
    ] = None,
    port: Annotated[int | None, typer.Option(help="listen port [default: 8080]")] = None,
    host: Annotated[str | None, typer.Option(help="listen address [default: 127.0.0.1]")] = None,
    mqtt: Annotated[
        str | None, typer.Option(help="watch hub status on mqtt://host:port or mqtts://")
    ] = None,
    units: Annotated[str | None, typer.Option(help="default glucose unit: mg/dL or mmol/L")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING")] = "INFO",
) -> None:
    """Serve the clinic, patient and ops views, /events (SSE) and /metrics."""
    from gateway.logs import setup_logging
    from gateway.web.app import ServeSettings, run_server

    settings = load_settings(
        ServeSettings,
        config,
        store=store,
        registry=registry,
        port=port,
        host=host,
        mqtt=mqtt,
        units=units,
    )
    setup_logging(log_level)
    with contextlib.suppress(KeyboardInterrupt):
        run_async(run_server(settings))


class ReportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIATABASE_", extra="ignore")

    store: StoreUrlField = Field(default=StoreUrl.parse("sqlite:///var/diatabase/readings.db"))


@report_app.command("agp")
def report_agp(
    patient: Annotated[str, typer.Option(help="pseudonymous patient id")],
    config: ConfigOpt = None,
    days: Annotated[float, typer.Option(min=0.01, max=366, help="period length")] = 14,
    end: Annotated[
        datetime | None, typer.Option(help="end of the period (UTC) [default: now]")
    ] = None,
    fmt: Annotated[Literal["json", "html"], typer.Option("--format", help="json or html")] = "json",
    units: Annotated[str, typer.Option(help="html only: mg/dL or mmol/L")] = "mg/dL",
    store: Annotated[
        str | None, typer.Option(help="sqlite:///readings.db or influxdb://host:port/db")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write to a file")] = None,
) -> None:
    """The AGP summary (time in ranges, mean, GMI, CV, CGM active %) of one patient."""
    from gateway.report import as_html, as_json, load_agp
    from gateway.store.base import StoreError, open_store

    settings = load_settings(ReportSettings, config, store=store)
    if settings.store.scheme not in {"sqlite", "influxdb"}:
        raise fail(f"reports read sqlite:/// or influxdb:// stores, got {settings.store.raw!r}")
    if units not in {"mg/dL", "mmol/L"}:
        raise fail(f"--units must be mg/dL or mmol/L, got {units!r}")
    if settings.store.scheme == "sqlite" and not (settings.store.path or Path()).is_file():
        raise fail(f"store {settings.store.path} does not exist")
    when = None if end is None else (end.replace(tzinfo=UTC) if end.tzinfo is None else end)

    async def compute() -> Any:
        s: Any = open_store(settings.store)
        await s.open()
        try:
            return await load_agp(s, patient, days=days, end=when)
        finally:
            await s.close()

    try:
        summary = run_async(compute())
    except StoreError as err:
        raise fail(str(err)) from None
    text = as_json(patient, summary) if fmt == "json" else as_html(patient, summary, units)  # type: ignore[arg-type]
    if out:
        out.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
