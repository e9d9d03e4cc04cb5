"""Render the live snapshot: a rich table on a terminal, plain lines otherwise."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

COUNTERS = ("read", "published", "stored", "duplicates", "quarantined", "parked", "outbox")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _style(mg: float | None) -> str:
    if mg is None:
        return ""
    return "bold red" if mg < 70 else "bold yellow" if mg > 180 else "bold green"


def render(snapshot: dict[str, Any]) -> Group:
    table = Table(title="Diatabase demo · live glucose", title_justify="left", expand=False)
    for col in ("patient", "mg/dL", "mmol/L", "trend", "last reading", "readings 24 h", "devices"):
        table.add_column(
            col, justify="right" if col in {"mg/dL", "mmol/L", "readings 24 h"} else "left"
        )
    for p in snapshot["patients"]:
        mg = p["mg_dl"]
        table.add_row(
            p["patient_id"],
            Text("-" if mg is None else f"{mg:.0f}", style=_style(mg)),
            "-" if p["mmol_l"] is None else f"{p['mmol_l']:.1f}",
            f"{p['arrow']} {p['direction']}",
            _age(p["age_s"]),
            str(p["readings"]),
            ", ".join(p["devices"]),
        )
    c = snapshot["counters"]
    counters = Text("  ".join(f"{k} [{c[k]}]" for k in COUNTERS))
    footer = Text(
        f"simulated time x{snapshot['speed']:g} · up {snapshot['uptime_s']:.0f} s · "
        f"page {snapshot['url']} · Ctrl-C to stop",
        style="dim",
    )
    return Group(table, counters, footer)


def _mg(mg: float | None) -> str:
    return "-" if mg is None else f"{mg:.0f}"


def plain_line(snapshot: dict[str, Any]) -> str:
    c = snapshot["counters"]
    patients = " ".join(
        f"{p['patient_id']}={_mg(p['mg_dl'])}{p['arrow']}" for p in snapshot["patients"]
    )
    counts = " ".join(f"{k}={c[k]}" for k in COUNTERS)
    return f"t={snapshot['uptime_s']:.0f}s {counts} {patients}"
