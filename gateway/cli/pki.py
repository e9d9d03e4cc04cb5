"""``diatabase pki ...``: the CA and the per-identity certificates of the MQTT links.

Run it on an admin machine that keeps ``ca.key``; copy only what each host needs
(docs/security.md, "Operations"). Errors end with one line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gateway.cli.config import fail

console = Console(highlight=False, soft_wrap=True)

pki_app = typer.Typer(
    help="Certificates for the MQTT links: CA, hubs, services, the broker.",
    no_args_is_help=True,
)

DirOpt = Annotated[
    Path, typer.Option("--dir", help="PKI directory (ca.crt, ca.key, crl.pem, hubs/, ...)")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="replace what is already there")]
DaysOpt = Annotated[
    int | None, typer.Option("--days", min=1, help="validity in days", show_default=False)
]


def _report(what: str, cert: Path, key: Path, not_after: object) -> None:
    console.print(f"{what}: {cert} (key {key}, valid until {not_after:%Y-%m-%d})")


@pki_app.command("init")
def init(
    pki_dir: DirOpt = Path("var/pki"),
    name: Annotated[str, typer.Option("--name", help="CA common name")] = "Diatabase MQTT CA",
    days: Annotated[int, typer.Option("--days", min=1, help="CA validity in days")] = 3650,
    force: ForceOpt = False,
) -> None:
    """Create the CA (EC P-256) and an empty revocation list."""
    from gateway.pki import PkiError, crl_path, init_ca

    try:
        issued = init_ca(pki_dir, common_name=name, days=days, force=force)
    except (PkiError, OSError) as err:
        raise fail(str(err)) from None
    _report("CA", issued.cert, issued.key, issued.not_after)
    console.print(f"CRL: {crl_path(pki_dir)}")


def _issue(
    kind: str,
    name: str,
    pki_dir: Path,
    days: int | None,
    force: bool,
    dns: list[str] | None = None,
    ips: list[str] | None = None,
) -> None:
    from gateway.pki import PkiError, issue

    try:
        issued = issue(
            pki_dir,
            kind,  # type: ignore[arg-type]
            name,
            dns=dns or (),
            ips=ips or (),
            days=days,
            force=force,
        )
    except (PkiError, OSError) as err:
        raise fail(str(err)) from None
    _report(f"{kind} {name}", issued.cert, issued.key, issued.not_after)


@pki_app.command("issue-hub")
def issue_hub(
    hub_id: Annotated[str, typer.Argument(metavar="HUB_ID", help="the hub's id (certificate CN)")],
    pki_dir: DirOpt = Path("var/pki"),
    days: DaysOpt = None,
    force: ForceOpt = False,
) -> None:
    """Client certificate for one hub: it may publish only under diatabase/v1/hubs/HUB_ID/."""
    _issue("hub", hub_id, pki_dir, days, force)


@pki_app.command("issue-service")
def issue_service(
    name: Annotated[str, typer.Argument(metavar="NAME", help="svc-... (certificate CN)")],
    pki_dir: DirOpt = Path("var/pki"),
    days: DaysOpt = None,
    force: ForceOpt = False,
) -> None:
    """Client certificate for a data-centre service, e.g. svc-ingest."""
    _issue("service", name, pki_dir, days, force)


@pki_app.command("issue-server")
def issue_server(
    name: Annotated[str, typer.Argument(metavar="NAME", help="the broker's DNS name")],
    dns: Annotated[
        list[str] | None, typer.Option("--dns", help="more DNS names (repeatable)")
    ] = None,
    ip: Annotated[list[str] | None, typer.Option("--ip", help="IP addresses (repeatable)")] = None,
    pki_dir: DirOpt = Path("var/pki"),
    days: DaysOpt = None,
    force: ForceOpt = False,
) -> None:
    """Server certificate for the broker (NAME and every --dns/--ip in its SAN)."""
    _issue("server", name, pki_dir, days, force, dns=dns, ips=ip)


@pki_app.command("revoke")
def revoke(
    kind: Annotated[str, typer.Argument(metavar="KIND", help="hub, service or server")],
    name: Annotated[str, typer.Argument(metavar="NAME")],
    pki_dir: DirOpt = Path("var/pki"),
) -> None:
    """Put a certificate on the CRL (then copy crl.pem to the broker and restart it)."""
    from gateway.pki import PkiError, crl_path
    from gateway.pki import revoke as do_revoke

    if kind not in {"hub", "service", "server"}:
        raise fail(f"KIND must be hub, service or server, not {kind!r}")
    try:
        serial = do_revoke(pki_dir, kind, name)  # type: ignore[arg-type]
    except (PkiError, OSError, ValueError) as err:
        raise fail(str(err)) from None
    console.print(f"revoked {kind} {name} (serial {serial:x}); CRL {crl_path(pki_dir)}")


@pki_app.command("refresh-crl")
def refresh_crl(pki_dir: DirOpt = Path("var/pki")) -> None:
    """Re-sign the CRL with a new expiry (an expired CRL locks every client out)."""
    from gateway.pki import PkiError
    from gateway.pki import refresh_crl as do_refresh

    try:
        path = do_refresh(pki_dir)
    except (PkiError, OSError, ValueError) as err:
        raise fail(str(err)) from None
    console.print(f"CRL: {path}")
