"""Physical units at the edges of the API.

Inside scintomo lengths are micrometres (``pixel_size`` in um), spatial
frequencies cycles/pixel or line pairs per millimetre (lp/mm), energies keV,
angles radians. These helpers parse what users type ("0.185um", "650 nm",
"1.3 mm") and convert between the frequency units.

One grammar for lengths everywhere (every ``--pixel-size``, every
``pixel_size=`` string): a number, optional spaces, an optional unit (nm,
um, µm, micron, mm, cm, m). **A bare number is micrometres**, the unit the
API uses inside. The value must be finite and > 0.
"""

from __future__ import annotations

import argparse
import math
import re
import warnings

from .exceptions import ParameterError, ScintomoWarning

_LENGTH_UM = {
    "nm": 1e-3,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometre": 1.0,
    "micrometer": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_length_um(text, *, default_unit: str = "um") -> float:
    """A length such as ``"0.185um"``, ``"650 nm"`` or ``1.3`` (in
    ``default_unit``, micrometres unless said) in micrometres.

    Raises
    ------
    ParameterError
        Not a number with a known unit, or not finite and > 0 (``"1e400um"``
        overflows to infinity and is refused).
    """
    if isinstance(text, bool):
        raise ParameterError(f"cannot read a length from {text!r}")
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
    if not math.isfinite(um):
        raise ParameterError(f"a length must be finite, got {text!r}")
    if not um > 0:
        raise ParameterError(f"a length must be > 0, got {text!r}")
    return um


#: what every command's ``--pixel-size`` help says
PIXEL_SIZE_HELP = "number with a unit (0.185um, 0.392 mm, 650nm); a bare number is micrometres"


#: what every other length option's help says
LENGTH_HELP = "micrometres, or a number with a unit (30um, 0.5 mm)"


def length_arg(text: str) -> float:
    """argparse ``type=`` for a length option: micrometres, or a clear usage error."""
    try:
        return parse_length_um(text)
    except ParameterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


#: argparse ``type=`` for ``--pixel-size`` (the same grammar)
pixel_size_arg = length_arg


def resolve_pixel_size(given, found, *, tolerance: float = 0.01) -> tuple[float | None, str]:
    """The pixel size to use, micrometres, and where it came from.

    Parameters
    ----------
    given : float, str or None
        The user's (``--pixel-size``); it wins.
    found : (float, str) or None
        ``(um, description)`` read from the file
        (:func:`scintomo.io.pixel_size_from_file`).
    tolerance : float
        Relative difference above which a given size that disagrees with the
        file's warns (1 %).

    Returns
    -------
    (pixel_size_um or None, source) with source 'given', the file's
    description, or 'none'.
    """
    if given is not None:
        um = parse_length_um(given)
        if found is not None and abs(um - found[0]) > tolerance * found[0]:
            warnings.warn(
                f"the given pixel size {um:.6g} um differs from the file's {found[0]:.6g} um "
                f"({found[1]}) by {100 * abs(um / found[0] - 1):.3g} %; using the given one",
                ScintomoWarning,
                stacklevel=2,
            )
        return um, "given"
    if found is not None:
        return found[0], found[1]
    return None, "none"


def cycles_per_pixel_to_lp_per_mm(f, pixel_size_um: float):
    """cycles/pixel -> line pairs per millimetre for a pixel of ``pixel_size_um``."""
    return f * 1e3 / pixel_size_um


def lp_per_mm_to_cycles_per_pixel(f, pixel_size_um: float):
    return f * pixel_size_um / 1e3


def lp_per_mm_to_resolution_nm(f):
    """Resolution as the papers state it: half the period, 1e6 / (2 f) nm
    (580 lp/mm -> 862 nm)."""
    return 1e6 / (2.0 * f)
