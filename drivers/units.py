"""Glucose units: one conversion constant, used everywhere.

GLS reports concentration in kg/L or mol/L (SFLOAT); CGMS in mg/dL. Glucose has a molar
mass of 180.1559 g/mol, so 1 mmol/L = 18.01559 mg/dL; 1 kg/L = 100,000 mg/dL;
1 mol/L = 1,000 mmol/L.
"""

from __future__ import annotations

from typing import Final

MG_DL_PER_MMOL_L: Final = 18.01559
MG_DL_PER_KG_L: Final = 100_000.0
MMOL_L_PER_MOL_L: Final = 1_000.0

_FACTORS: Final = {
    "mg/dL": 1.0,
    "mmol/L": MG_DL_PER_MMOL_L,
    "kg/L": MG_DL_PER_KG_L,
    "mol/L": MMOL_L_PER_MOL_L * MG_DL_PER_MMOL_L,
}


def to_mg_dl(value: float, unit: str) -> float:
    """Convert a glucose concentration to mg/dL; ValueError for a unit that is not one."""
    try:
        return value * _FACTORS[unit]
    except KeyError:
        raise ValueError(f"not a glucose concentration unit: {unit!r}") from None


def to_mmol_l(value: float, unit: str) -> float:
    return to_mg_dl(value, unit) / MG_DL_PER_MMOL_L
