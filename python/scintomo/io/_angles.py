"""Rotation angles as files store them -> radians, with the unit checked.

Files say their angle unit in many ways (a ``units`` attribute, a comment
line, a format convention) and often not at all, and a file in the wrong unit
reconstructs to garbage without any error: ``theta`` of a 0..pi scan read as
degrees covers 3.1 degrees. So the unit is decided from what the file says
*and* from the range the angles cover: a tomographic scan covers about half a
turn (180 degrees, or a short scan's 180 + fan angle) or a whole turn.

- The range fits one unit and nothing says otherwise: that unit.
- A unit stated by the file (attribute, comment) that the range contradicts
  (it fits only the other unit): an error naming both, since either may be
  wrong; ``angle_unit=`` given by the caller settles it.
- A unit given by the caller: used; a warning when the range fits neither.
- The range fits neither unit (a limited-angle scan, several turns, one
  projection): the stated unit or the format's convention, with a warning.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..exceptions import FileFormatError, ParameterError, ScintomoWarning

#: Angular coverage a scan may have, degrees: half a turn (less a little for
#: rounding and a missing end angle) up to a whole turn plus a few steps
#: (a short scan of a cone or fan beam, 180 + fan, lies in between).
COVERAGE_DEG = (170.0, 370.0)

_UNIT_NAMES = {
    "deg": "deg",
    "degree": "deg",
    "degrees": "deg",
    "°": "deg",
    "rad": "rad",
    "radian": "rad",
    "radians": "rad",
}


def unit_name(text, *, where: str = "angle_unit") -> str | None:
    """'deg' or 'rad' from a unit as users write it (None for none);
    ParameterError for anything else."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    t = str(text).strip().lower()
    if not t:
        return None
    if t not in _UNIT_NAMES:
        raise ParameterError(f"{where}: unknown angle unit {text!r} (use 'deg' or 'rad')")
    return _UNIT_NAMES[t]


def stated_unit(attr) -> str | None:
    """'deg' or 'rad' from a file's unit attribute; None when absent or not an
    angle unit (then the range decides)."""
    try:
        return unit_name(attr)
    except ParameterError:
        return None


def coverage(values) -> float:
    """Angular range a scan with these angles covers, in their unit: the span
    plus one mean step (0, 1, ... 179 degrees covers 180)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size < 2:
        return 0.0
    span = float(np.max(a) - np.min(a))
    return span * a.size / (a.size - 1)


def fitting_units(values) -> list[str]:
    """The units ('deg', 'rad') in which ``values`` cover a plausible scan."""
    c = coverage(values)
    lo, hi = COVERAGE_DEG
    out = []
    if lo <= c <= hi:
        out.append("deg")
    if np.deg2rad(lo) <= c <= np.deg2rad(hi):
        out.append("rad")
    return out


def to_radians(
    values,
    *,
    source: str,
    given: str | None = None,
    stated: str | None = None,
    default: str = "deg",
) -> tuple[np.ndarray, str, str]:
    """Angles ``values`` in radians, the unit decided as the module doc says.

    Parameters
    ----------
    values : array_like
        Angles as stored.
    source : str
        What to name in messages (file and dataset).
    given : {'deg', 'rad'}, optional
        The caller's unit (``angle_unit=``): wins.
    stated : {'deg', 'rad'}, optional
        The file's own unit (an attribute, a comment line).
    default : {'deg', 'rad'}
        The format's convention when nothing is stated and the range does not tell.

    Returns
    -------
    theta : (N,) float64 ndarray, radians
    unit : 'deg' or 'rad', the unit the values were read in
    how : 'given', 'stated', 'range' or 'assumed'

    Raises
    ------
    FileFormatError
        Non-finite angles, or a stated unit that the range contradicts.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(a)):
        raise FileFormatError(f"{source}: non-finite angles")
    fits = fitting_units(a)
    c = coverage(a)
    cover = f"the {a.size} angles cover {c:.4g} (from {a.min():.4g} to {a.max():.4g})"
    covers_unit = f"the {a.size} angles cover {c:.4g} {{}} (from {a.min():.4g} to {a.max():.4g})"
    scan_words = "about 180 or 360 degrees (pi or 2 pi radians)"
    if given is not None:
        unit, how = given, "given"
        if not fits:
            warnings.warn(
                f"{source}: {covers_unit.format(unit)}, not a usual scan ({scan_words}); "
                f"read as {unit} as asked",
                ScintomoWarning,
                stacklevel=3,
            )
    elif stated is not None:
        unit, how = stated, "stated"
        if fits and stated not in fits:
            other = fits[0]
            raise FileFormatError(
                f"{source}: the file says the angles are in {stated}, but {cover}, which is "
                f"a scan in {other} and not in {stated}; pass angle_unit='{other}' (or "
                f"'{stated}') to say which is right"
            )
        if not fits:
            warnings.warn(
                f"{source}: {covers_unit.format(unit)}, not a usual scan ({scan_words})",
                ScintomoWarning,
                stacklevel=3,
            )
    elif fits:
        unit, how = fits[0], "range"
    else:
        unit, how = default, "assumed"
        warnings.warn(
            f"{source}: no angle unit in the file and {cover}: neither {scan_words}; "
            f"read as {unit}; pass angle_unit= to say",
            ScintomoWarning,
            stacklevel=3,
        )
    theta = np.deg2rad(a) if unit == "deg" else a.copy()
    return theta, unit, how
