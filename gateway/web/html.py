"""Small helpers for the server-rendered pages: escaping, units, the page layout."""

from __future__ import annotations

from datetime import datetime
from html import escape
from importlib.resources import files
from string import Template
from typing import Literal

from starlette.requests import Request

from gateway.derived import mmol_l

Units = Literal["mg/dL", "mmol/L"]
UNITS_COOKIE = "units"
DASH = "\u2013"  # shown for a missing value

_LAYOUT = Template(files("gateway.web").joinpath("templates/layout.html").read_text())


def e(value: object) -> str:
    return escape(str(value), quote=True)


def units_of(request: Request, default: Units = "mg/dL") -> Units:
    """``?units=mmol`` or ``?units=mg`` wins (and is remembered in a cookie), then the cookie."""
    for raw in (request.query_params.get("units"), request.cookies.get(UNITS_COOKIE)):
        if raw in {"mmol", "mmol/L"}:
            return "mmol/L"
        if raw in {"mg", "mg/dL"}:
            return "mg/dL"
    return default


def fmt_glucose(mg_dl: float | None, units: Units) -> str:
    if mg_dl is None:
        return DASH
    return f"{mmol_l(mg_dl):.1f}" if units == "mmol/L" else f"{mg_dl:.0f}"


def glucose_class(mg_dl: float | None) -> str:
    if mg_dl is None:
        return ""
    if mg_dl < 54:
        return "very-low"
    if mg_dl < 70:
        return "low"
    if mg_dl <= 180:
        return "in-range"
    if mg_dl <= 250:
        return "high"
    return "very-high"


def fmt_time(dt: datetime | None) -> str:
    return DASH if dt is None else dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def unit_toggle(request: Request, units: Units) -> str:
    other, label = ("mg", "mg/dL") if units == "mmol/L" else ("mmol", "mmol/L")
    return (
        f'<a class="units" href="{e(request.url.path)}?units={other}" '
        f'title="show glucose in {label}">show {label}</a>'
    )


def page(title: str, body: str, *, nav: str = "", extra_head: str = "") -> str:
    return _LAYOUT.substitute(title=e(title), body=body, nav=nav, extra_head=extra_head)


def nav_links(active: str, extra: str = "") -> str:
    items = [("clinic", "/", "Clinic"), ("ops", "/ops", "Ops")]
    links = "".join(
        f'<a href="{href}"{" aria-current=page" if key == active else ""}>{label}</a>'
        for key, href, label in items
    )
    return links + extra
