"""Physical units at the edges of the API.

Inside scintomo lengths are micrometres (``pixel_size`` in um), spatial
frequencies cycles/pixel or line pairs per millimetre (lp/mm), energies keV,
angles radians. These helpers parse what users type ("0.185um", "650 nm",
"1.3 mm") and convert between the frequency units.
"""

from __future__ import annotations

import re

from .exceptions import ParameterError

_LENGTH_UM = {
    "nm": 1e-3,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "micron": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_length_um(text, *, default_unit: str = "um") -> float:
    """A length such as ``"0.185um"``, ``"650 nm"`` or ``1.3`` (in
    ``default_unit``) in micrometres."""
    if isinstance(text, (int, float)):
        value, unit = float(text), default_unit
    else:
        m = re.fullmatch(rf"\s*({_NUMBER})\s*([a-zA-Zµμ]*)\s*", str(text))
        if not m:
            raise ParameterError(f"cannot read a length from {text!r} (e.g. '0.185um', '650nm')")
        value, unit = float(m.group(1)), (m.group(2) or default_unit)
    if unit not in _LENGTH_UM:
        raise ParameterError(
            f"unknown length unit {unit!r} in {text!r}; use one of {', '.join(_LENGTH_UM)}"
        )
    um = value * _LENGTH_UM[unit]
    if not um > 0:
        raise ParameterError(f"a length must be > 0, got {text!r}")
    return um


def cycles_per_pixel_to_lp_per_mm(f, pixel_size_um: float):
    """cycles/pixel -> line pairs per millimetre for a pixel of ``pixel_size_um``."""
    return f * 1e3 / pixel_size_um


def lp_per_mm_to_cycles_per_pixel(f, pixel_size_um: float):
    return f * pixel_size_um / 1e3


def lp_per_mm_to_resolution_nm(f):
    """Resolution as the papers state it: half the period, 1e6 / (2 f) nm
    (580 lp/mm -> 862 nm)."""
    return 1e6 / (2.0 * f)
