"""InfluxDB line protocol, built by hand on the hot path.

influxdb-client's ``Point`` serialises about 70k points/s here, too slow for one ingester
replica; these functions build the same text several times faster. Escaping follows the
line-protocol reference: measurement escapes comma and space; tag keys/values and field
keys escape comma, equals and space; string field values escape backslash and quote.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from gateway.store.base import StoredReading

_MEAS = str.maketrans({",": r"\,", " ": r"\ "})
_TAG = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " "})
_STR = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": " "})

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
GLUCOSE = "glucose"
INSULIN = "insulin"


def measurement_of(kind: str) -> str:
    return INSULIN if kind.startswith("insulin") else GLUCOSE


def tag(value: str) -> str:
    return value.translate(_TAG) or "_"


def string_field(value: str) -> str:
    # str.translate looks every character up in a dict: skip it for the common case
    # (reading keys, hex, ISO times), checked by three scans in C.
    if "\\" in value or '"' in value or "\n" in value:
        return '"' + value.translate(_STR) + '"'
    return '"' + value + '"'


def float_field(value: float) -> str:
    # repr keeps full precision and always writes a float (never an integer literal).
    return repr(float(value))


# Escaped forms of repetitive parts: escaping and formatting are the hot spot of a write,
# and most of these repeat within a batch (a series: device, kind, patient; a batch's
# hub, device kind and batch id). Bounded: cleared when full.
_SERIES_CACHE: dict[tuple[str, str, str], str] = {}
_STR_CACHE: dict[str, str] = {}
_CACHE_MAX = 100_000


def _series(serial: str, kind: str, patient_id: str) -> str:
    """Measurement and tag set, then the space before the fields."""
    k = (serial, kind, patient_id)
    try:
        return _SERIES_CACHE[k]
    except KeyError:
        if len(_SERIES_CACHE) >= _CACHE_MAX:
            _SERIES_CACHE.clear()
        out = _SERIES_CACHE[k] = (
            f"{measurement_of(kind)},device={tag(serial)},kind={tag(kind)},"
            f"patient={tag(patient_id)} "
        )
        return out


def _cstr(value: str) -> str:
    try:
        return _STR_CACHE[value]
    except KeyError:
        if len(_STR_CACHE) >= _CACHE_MAX:
            _STR_CACHE.clear()
        out = _STR_CACHE[value] = string_field(value)
        return out


def line(r: StoredReading) -> str:
    """One point: tags patient/device/kind (bounded cardinality), time in ns."""
    # pump events carry no value: the point keeps its other fields
    value = "" if r.value is None else f"value={float(r.value)!r},"
    out = (
        f"{_series(r.serial, r.kind, r.patient_id)}{value}unit={_cstr(r.unit)},"
        f"key={string_field(r.key)},hub={_cstr(r.hub_id)},"
        f"device_kind={_cstr(r.device_kind)},"
        f'device_time="{r.device_time.isoformat()}",clock_offset_s={float(r.clock_offset_s)!r}'
    )
    if r.mg_dl is not None:
        out += f",mg_dl={float(r.mg_dl)!r}"
    if r.flags:
        out += f",flags={string_field(','.join(r.flags))}"
    if r.status:
        out += f",status={string_field(','.join(r.status))}"
    if r.details:
        out += f",details={string_field(json.dumps(r.details, sort_keys=True))}"
    if r.raw:
        out += f",raw={string_field(r.raw)}"
    if r.batch_id:
        out += f",batch={_cstr(r.batch_id)}"
    if r.signed_by:
        out += f",signed_by={_cstr(r.signed_by)}"
    return f"{out} {(r.time - EPOCH) // MICROSECOND * 1000}"


def lines(readings: Iterable[StoredReading]) -> bytes:
    return "\n".join([line(r) for r in readings]).encode()
