"""Input checking and dtype conversion shared by every module.

Conventions (scikit-image habits): float32 is kept, the kernels' native types
are kept, other real dtypes become float32; complex, object and string arrays
are refused. Inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .exceptions import DTypeError, NonFiniteError, ParameterError, ShapeError

#: dtypes the Rust kernels take without conversion
NATIVE = (np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))


def as_array(a, name: str, *, native=NATIVE) -> np.ndarray:
    """``a`` as an ndarray of a dtype the kernels take (no copy if it is one)."""
    arr = np.asarray(a)
    dt = arr.dtype
    if dt in native:
        return arr
    if dt.kind in "biuf":
        return arr.astype(np.float32)
    raise DTypeError(
        f"{name} has dtype {dt}; expected a real-valued image array (uint16, float32, ...)"
    )


def as_float32(a, name: str) -> np.ndarray:
    """``a`` as float32 (a copy only when needed)."""
    arr = as_array(a, name, native=(np.dtype(np.float32),))
    return arr


def as_stack(a, name: str, *, native=NATIVE) -> tuple[np.ndarray, bool]:
    """``a`` as a 3-D stack; returns (stack, was_2d)."""
    arr = as_array(a, name, native=native)
    if arr.ndim == 2:
        return arr[np.newaxis], True
    if arr.ndim != 3:
        raise ShapeError(f"{name} must be a 2-D image or a 3-D stack, got shape {arr.shape}")
    return arr, False


def as_sinogram_stack(projections, name: str = "projections", *, finite: bool = True):
    """``projections`` as a float32 (angle, row, column) stack; one sinogram
    (angle, column) becomes a stack of one row. Returns (stack, was_single)."""
    arr = as_float32(projections, name)
    single = arr.ndim == 2
    if single:
        arr = arr[:, np.newaxis, :]
    if arr.ndim != 3:
        raise ShapeError(f"{name} must be (angle, row, column) or (angle, column), got {arr.shape}")
    check_nonempty(arr, name)
    if finite:
        check_finite(arr, name)
    return arr, single


def check_nonempty(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        raise ShapeError(f"{name} is empty (shape {arr.shape})")


def check_finite(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind == "f":
        bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise NonFiniteError(f"{name} contain {bad} non-finite value(s) (NaN or inf)")


def n_threads_arg(n_threads) -> int | None:
    """Validate ``n_threads`` (None: all cores)."""
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ParameterError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return int(n_threads)


def choice(value: str, name: str, options: Iterable[str]) -> str:
    opts = tuple(options)
    if value not in opts:
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, opts))}; got {value!r}")
    return value


def positive(value, name: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ParameterError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def check_theta_radians(theta: np.ndarray, name: str = "theta") -> None:
    """Refuse angles that cannot be radians: a span beyond one turn (2 pi, plus
    one step and rounding), which is what degrees passed as radians look like
    (0..180 spans 180). Several turns in radians are refused too; reconstruct
    one turn at a time."""
    th = np.asarray(theta, dtype=np.float64).ravel()
    if th.size < 2:
        return
    span = float(np.max(th) - np.min(th))
    # one step past a full turn (an end angle repeated), but never much: with
    # two or three angles a "step" would excuse anything
    step = min(span / (th.size - 1), np.pi / 4)
    if span > 2 * np.pi + step + 1e-6:
        raise ParameterError(
            f"{name} spans {span:.4g} (from {th.min():.4g} to {th.max():.4g}), more than one "
            f"turn (2 pi = 6.283) in radians: {name} is in radians; convert degrees with "
            "np.deg2rad"
        )
