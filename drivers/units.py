"""Glucose units: one conversion constant, used everywhere.

GLS reports concentration in kg/L or mol/L (SFLOAT); CGMS in mg/dL. Glucose
(C6H12O6) has a molar mass of 180.1559 g/mol, so 1 mmol/L = 18.01559 mg/dL;
1 kg/L = 100,000 mg/dL (1 kg/L = 1,000,000 mg / 10 dL); 1 mol/L = 1,000 mmol/L.

Conversions go through the exact decimal of the float's shortest repr, so the SFLOAT
112e-5 kg/L is 112 mg/dL, not 111.99999999999999.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Final, Literal

GlucoseUnit = Literal["mg/dL", "mmol/L", "kg/L", "mol/L"]

MG_DL_PER_MMOL_L: Final = 18.01559  # molar mass of glucose 180.1559 g/mol / 10
MG_DL_PER_KG_L: Final = 100_000.0  # 1 kg/L = 10**6 mg / 10 dL
MMOL_L_PER_MOL_L: Final = 1_000.0

_FACTORS: Final[dict[str, Decimal]] = {
    "mg/dL": Decimal(1),
    "mmol/L": Decimal(repr(MG_DL_PER_MMOL_L)),
    "kg/L": Decimal(100_000),
    "mol/L": Decimal(1_000) * Decimal(repr(MG_DL_PER_MMOL_L)),
}


def _factor(unit: str) -> Decimal:
    try:
        return _FACTORS[unit]
    except KeyError:
        raise ValueError(f"not a glucose concentration unit: {unit!r}") from None


def to_mg_dl(value: float, unit: str) -> float:
    """Convert a glucose concentration to mg/dL; ValueError for a unit that is not one."""
    factor = _factor(unit)
    if not math.isfinite(value):
        return value * float(factor)
    return float(Decimal(repr(float(value))) * factor)


def to_mmol_l(value: float, unit: str) -> float:
    """Convert a glucose concentration to mmol/L; ValueError for a unit that is not one."""
    factor = _factor(unit) / _FACTORS["mmol/L"]
    if not math.isfinite(value):
        return value * float(factor)
    return float(Decimal(repr(float(value))) * factor)
