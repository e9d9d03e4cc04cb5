"""``diatabase loadgen``: simulated hubs at a set rate; achieved rate and end-to-end
latency (docs/scaling.md). Registered in gateway/cli/app.py."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.config import err_console, fail, run_async


def loadgen(
    mqtt: Annotated[str, typer.Option(help="broker: mqtt://[user:pass@]host:port or mqtts://")],
    hubs: Annotated[int, typer.Option(help="simulated hubs")] = 10,
    rate: Annotated[float, typer.Option(help="readings/s, all hubs together")] = 100.0,
    duration: Annotated[float, typer.Option(help="seconds of publishing")] = 10.0,
    devices_per_hub: Annotated[int, typer.Option(help="CGMs per hub, one patient each")] = 1,
    backfill_fraction: Annotated[
        float, typer.Option(help="share of readings sent as backfill (older, full batches)")
    ] = 0.0,
    live_batch: Annotated[int, typer.Option(help="readings per live message")] = 1,
    backfill_batch: Annotated[int, typer.Option(help="readings per backfill message")] = 500,
    backlog_hours: Annotated[float, typer.Option(help="age of the oldest backfill")] = 12.0,
    window: Annotated[int, typer.Option(help="unacknowledged QoS 1 messages at most")] = 1000,
    connections: Annotated[int, typer.Option(help="MQTT connections the hubs share")] = 4,
    store: Annotated[
        str | None, typer.Option(help="read back from: sqlite:///path.db or influxdb://...")
    ] = None,
    verify: Annotated[
        str, typer.Option(help="keys (each reading, latency), count (row count) or none")
    ] = "keys",
    timeout: Annotated[float, typer.Option(help="read-back gives up after SECONDS")] = 60.0,
    register: Annotated[
        str | None,
        typer.Option(
            help="registry URL: first add the hubs, CGMs, patients and assignments (idempotent)"
        ),
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(help="Ed25519 key file (created if missing): sign every batch with it"),
    ] = None,
    prefix: Annotated[str, typer.Option(help="hub/device/patient id prefix")] = "lg",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the report as JSON ('-': stdout)")
    ] = None,
) -> None:
    """Simulated hubs publishing contract v1 batches at a set total rate (live and backfill
    mix); reports the achieved rate and end-to-end latency read back from the store."""
    from gateway.contract.urls import MqttUrl, StoreUrl
    from gateway.loadgen import LoadgenConfig, LoadgenError, run_loadgen
    from gateway.loadgen.publish import PublishError
    from gateway.registry.service import RegistryError

    if verify not in ("keys", "count", "none"):
        raise fail(f"--verify must be keys, count or none, got {verify!r}")
    try:
        cfg = LoadgenConfig(
            mqtt=MqttUrl.parse(mqtt),
            hubs=hubs,
            rate=rate,
            duration_s=duration,
            devices_per_hub=devices_per_hub,
            backfill_fraction=backfill_fraction,
            live_batch=live_batch,
            backfill_batch=backfill_batch,
            backlog=timedelta(hours=backlog_hours),
            window=window,
            connections=connections,
            store=StoreUrl.parse(store) if store else None,
            verify=verify,  # type: ignore[arg-type]
            timeout_s=timeout,
            registry=StoreUrl.parse(register) if register else None,
            sign_key=sign_key,
            prefix=prefix,
        )
        cfg.check()
    except (ValueError, LoadgenError) as err:
        raise fail(str(err)) from None
    try:
        report = run_async(run_loadgen(cfg, progress=_progress()))
    except (LoadgenError, PublishError, RegistryError, ValueError) as err:
        raise fail(str(err), code=1) from None
    _print(report, Console(stderr=json_out is not None and str(json_out) == "-"))
    if json_out is not None:
        text = json.dumps(report.to_json(), indent=2, default=_jsonable) + "\n"
        if str(json_out) == "-":
            sys.stdout.write(text)
        else:
            json_out.write_text(text)
    if report.missing or report.refused_messages or report.unacked_messages:
        raise typer.Exit(1)


def _jsonable(o: Any) -> Any:
    from dataclasses import asdict

    return asdict(o)


def _progress() -> Any:
    """One status line on stderr, rewritten in place on a terminal, every 5 s otherwise."""
    import time

    last = [0.0]
    tty = err_console.is_terminal

    def show(report: Any, total: int) -> None:
        now = time.monotonic()
        if not tty and now - last[0] < 5:
            return
        last[0] = now
        stored = "" if report.stored is None else f", stored {report.stored:,}"
        line = (
            f"published {report.readings:,}/{total:,} readings in {report.publish_s:.1f} s"
            f" ({report.achieved_rate:,.0f}/s acked){stored}"
        )
        if tty:
            err_console.file.write("\r" + line + "\x1b[K")
            err_console.file.flush()
        else:
            err_console.print(line)

    return show


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print(report: Any, console: Console) -> None:
    if console.is_terminal:
        console.file.write("\n")
    t = Table(title="diatabase loadgen", show_header=False)
    t.add_column("", style="bold")
    t.add_column("", justify="right")
    rows = [
        ("hubs / devices", f"{report.hubs:,} / {report.devices:,}"),
        ("target rate (readings/s)", f"{report.target_rate:,.1f}"),
        ("achieved rate (acked readings/s)", f"{report.achieved_rate:,.1f}"),
        ("publish time (s)", f"{report.publish_s:.2f}"),
        ("messages", f"{report.messages:,}"),
        (
            "readings (live + backfill)",
            f"{report.readings:,} ({report.live_readings:,} + {report.backfill_readings:,})",
        ),
        (
            "refused / unacked messages",
            f"{report.refused_messages:,} / {report.unacked_messages:,}",
        ),
        ("read back", report.verify),
        (
            "stored / missing",
            "-" if report.stored is None else f"{report.stored:,} / {report.missing:,}",
        ),
        ("read-back wait (s)", f"{report.wait_s:.2f}"),
    ]
    for name, p in report.latency_s.items():
        if p.n:
            rows.append(
                (
                    f"latency {name} (s) p50/p95/p99/max",
                    f"{_fmt(p.p50)} / {_fmt(p.p95)} / {_fmt(p.p99)} / {_fmt(p.max)}",
                )
            )
    if report.poll_resolution_s is not None:
        rows.append(("latency resolution (s)", f"{report.poll_resolution_s:.3f}"))
    for name, value in rows:
        t.add_row(name, value)
    console.print(t)
