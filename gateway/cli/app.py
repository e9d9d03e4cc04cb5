"""``diatabase``: every process of the project behind one command.

Imports of heavy modules happen inside the commands, so ``diatabase edge run`` works on
a hub that installed only the ``edge`` extra.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gateway import __version__
from gateway.cli.admin import quarantine_app, registry_app
from gateway.cli.config import fail, load_settings, run_async
from gateway.cli.export import export_app
from gateway.cli.loadgen import loadgen
from gateway.cli.pki import pki_app
from gateway.cli.web import report_app, serve

app = typer.Typer(
    name="diatabase",
    help="Diatabase gateway: BLE diabetes devices -> hub -> MQTT -> validated, linked, stored.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
edge_app = typer.Typer(help="The home-hub agent.", no_args_is_help=True)
app.add_typer(edge_app, name="edge")
app.add_typer(registry_app, name="registry")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(pki_app, name="pki")
app.add_typer(report_app, name="report")
app.add_typer(export_app, name="export")
app.command()(serve)
app.command()(loadgen)
console = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file", show_default=False)
]
LogOpt = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR")]


def _version(value: bool) -> None:
    if value:
        console.print(f"diatabase {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    pass


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", help="write to a file")] = None,
) -> None:
    """Print the JSON Schema of wire contract v1 (readings, status, events)."""
    from gateway.contract.v1 import json_schemas

    text = json.dumps(json_schemas(), indent=2, sort_keys=True)
    if out:
        out.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")


@app.command()
def decode(
    characteristic: Annotated[
        str, typer.Argument(help="e.g. glucose-measurement, cgm-measurement")
    ],
    hex_bytes: Annotated[str, typer.Argument(metavar="HEX", help="the characteristic value")],
) -> None:
    """Decode a Bluetooth SIG characteristic value and print it as JSON."""
    from drivers.codec_registry import CODECS
    from drivers.errors import DecodeError

    codec = CODECS.get(characteristic)
    if codec is None:
        raise fail(
            f"unknown characteristic {characteristic!r}; one of: {', '.join(sorted(CODECS))}"
        )
    try:
        data = bytes.fromhex(hex_bytes.replace(" ", "").replace(":", ""))
    except ValueError:
        raise fail(f"{hex_bytes!r} is not hexadecimal") from None
    try:
        value = codec(data)
    except DecodeError as e:
        raise fail(str(e)) from None
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@app.command()
def ingest(
    config: ConfigOpt = None,
    mqtt: Annotated[
        str | None, typer.Option(help="mqtt://[user:pass@]host:port or mqtts://")
    ] = None,
    store: Annotated[str | None, typer.Option(help="sqlite:///path.db")] = None,
    registry: Annotated[
        str | None, typer.Option(help="sqlite:///path.db or postgresql://...")
    ] = None,
    client_id: Annotated[str | None, typer.Option(help="stable MQTT client id")] = None,
    shared_group: Annotated[
        str | None, typer.Option(help="MQTT v5 shared subscription group")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="serve Prometheus /metrics here")] = None,
    log_level: LogOpt = "INFO",
) -> None:
    """Run the ingester: MQTT -> validate -> normalise -> link -> store, ack after write."""
    from gateway.logs import setup_logging
    from gateway.settings import IngestSettings

    settings = load_settings(
        IngestSettings,
        config,
        mqtt=mqtt,
        store=store,
        registry=registry,
        client_id=client_id,
        shared_group=shared_group,
        metrics_port=metrics_port,
    )
    setup_logging(log_level)
    from gateway.ingest.run import run_ingester

    run_async(run_ingester(settings))


@edge_app.command("run")
def edgerun_async(
    config: ConfigOpt = None,
    hub_id: Annotated[str | None, typer.Option(help="this hub's id")] = None,
    mqtt: Annotated[
        str | None, typer.Option(help="mqtt://[user:pass@]host:port or mqtts://")
    ] = None,
    log_level: LogOpt = "INFO",
) -> None:
    """Run the hub agent: read devices, keep records in the outbox, publish them."""
    from edge.run import run_edge
    from edge.settings import EdgeSettings
    from gateway.logs import setup_logging

    settings = load_settings(EdgeSettings, config, hub_id=hub_id, mqtt=mqtt)
    setup_logging(log_level)
    run_async(run_edge(settings))


@edge_app.command("pubkey")
def edge_pubkey(
    config: ConfigOpt = None,
    key: Annotated[Path | None, typer.Option(help="key file (default: from config)")] = None,
) -> None:
    """Print this hub's Ed25519 public key (creating the key on first use), for
    `diatabase registry hub add HUB --public-key ...`."""
    from gateway.contract.signing import Signer

    path = key
    if path is None:
        from edge.settings import EdgeSettings

        if config is None:
            raise fail("give --config hub.toml or --key PATH")
        path = load_settings(EdgeSettings, config).signing_key
        if path is None:
            raise fail("signing is off in this config (signing_key is empty)")
    signer = Signer.load_or_create(path)
    sys.stdout.write(f"{signer.public_key_b64}\n")


@edge_app.command("status")
def edge_status(
    config: ConfigOpt = None,
    outbox: Annotated[Path | None, typer.Option(help="outbox file (default: from config)")] = None,
) -> None:
    """Outbox depth, oldest unsent reading, and each device's cursor and last contact."""
    from edge.status import print_status

    path = outbox
    if path is None:
        if config is None:
            raise fail("give --config hub.toml or --outbox PATH")
        from edge.settings import EdgeSettings

        path = load_settings(EdgeSettings, config).outbox.path
    if not path.is_file():
        raise fail(f"outbox {path} does not exist (has the agent run yet?)")
    run_async(print_status(path, console))


@app.command()
def demo(
    config: ConfigOpt = None,
    port: Annotated[int | None, typer.Option(help="web page port [default: 8080]")] = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after SECONDS and print a summary")
    ] = None,
    speed: Annotated[
        float | None, typer.Option(help="simulated time runs N times faster [default: 60]")
    ] = None,
    patients: Annotated[int | None, typer.Option(help="virtual patients [default: 2]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="keep the databases here")] = None,
) -> None:
    """Everything on embedded defaults: virtual devices, hub, broker, ingester, live view."""
    from gateway.settings import DemoSettings

    settings = load_settings(
        DemoSettings,
        config,
        port=port,
        duration=duration,
        speed=speed,
        patients=patients,
        data_dir=data_dir,
    )
    from gateway.demo.run import run_demo

    summary = run_async(run_demo(settings, console=console))
    raise typer.Exit(0 if summary.lost == 0 else 1)


def main() -> None:
    # Ctrl-C: asyncio.Runner turns SIGINT into cancellation of the main task. SIGPIPE keeps
    # Python's default (ignored -> BrokenPipeError): a long-running ingester must survive a
    # peer resetting a socket; a closed stdout (`diatabase schema | head`) just ends quietly.
    try:
        app()
    except BrokenPipeError:
        sys.stderr.close()
