"""Input checking and dtype conversion shared by every module.

Conventions (scikit-image habits): float32 is kept, the kernels' native types
are kept, other real dtypes become float32; complex, object and string arrays
are refused. Inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .exceptions import DTypeError, NonFiniteError, NumericalError, ParameterError, ShapeError

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


def max_threads() -> int:
    """The largest ``n_threads`` accepted anywhere: 64 per core this process
    may run on (the Rust kernels' own bound, ``_core.max_threads()``)."""
    from . import _core

    return int(_core.max_threads())


def n_threads_arg(n_threads) -> int | None:
    """Validate ``n_threads`` (None: all cores). One rule for every kernel,
    the pipeline and the CLI: an integer in [1, :func:`max_threads`]; more is
    a ParameterError (starting 10^6 threads took 97 s before this bound)."""
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ParameterError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    bound = max_threads()
    if n_threads > bound:
        raise ParameterError(
            f"n_threads must be at most {bound} (64 per core on this machine), got {n_threads}"
        )
    return int(n_threads)


def check_memory(nbytes: float, what: str) -> None:
    """Raise :class:`~scintomo.exceptions.MemoryLimitError` when a call
    needing about ``nbytes`` would not fit in the memory available now
    (MemAvailable on Linux, which overcommits: a too-large allocation would
    otherwise be killed later or abort the process). ``what`` names the
    parameter that sets the size. The same rule as the Rust kernels'."""
    from . import _core

    _core.check_memory(float(nbytes), what)


def center_arg(center, n_det: int, name: str = "center") -> np.ndarray:
    """``center`` (a column index or an array of them) as float64, refused
    unless finite and on the detector: in [0, n_det - 1], pixel centres at
    integers. An axis off the detector leaves part of every slice without
    data; the reconstruction would be garbage, not an error."""
    c = np.asarray(center, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        raise ParameterError(f"{name} must be finite, got {center!r}")
    bad = (c < 0) | (c > n_det - 1)
    if np.any(bad):
        first = float(np.ravel(c)[np.flatnonzero(np.ravel(bad))[0]])
        raise ParameterError(
            f"{name} {first:g} is outside the detector: it must be a column index in "
            f"[0, {n_det - 1}] for {n_det} columns"
        )
    return c


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


def length_um(value, name: str = "pixel_size") -> float | None:
    """A length in micrometres from a number (micrometres) or a string with a
    unit (``"0.185um"``, ``"650 nm"``, :func:`scintomo.units.parse_length_um`);
    None stays None. ParameterError, naming ``name``, when it is not > 0 and finite."""
    if value is None:
        return None
    if isinstance(value, str):
        from .units import parse_length_um

        return parse_length_um(value)
    return positive(value, name)


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


def scale_down(arr: np.ndarray, limit: float) -> tuple[np.ndarray, float]:
    """(arr, 1.0), or, when a float array holds values beyond ``limit`` in
    magnitude, (a float32 copy divided by a power of two that brings its
    maximum to about 1, that power of two). For kernels linear in the data
    (reconstruction, Wiener) or normalised by it (NNPS): finite input near
    the float32 maximum would otherwise overflow inside the float32 FFTs and
    come back as inf/NaN. Powers of two scale exactly, so the caller
    multiplies the result back and gets what an unbounded float would give
    (or refuses with :func:`check_result` when that is not a float32)."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return arr, 1.0
    amax = float(np.max(np.abs(arr)))
    if not np.isfinite(amax) or amax <= limit:
        return arr, 1.0
    scale = 2.0 ** int(np.ceil(np.log2(amax)))
    # in float64: 2^128 itself is not a float32
    return (arr.astype(np.float64) / scale).astype(np.float32), scale


def check_result(result: np.ndarray, what: str, *, scale: float = 1.0) -> np.ndarray:
    """Multiply ``result`` (in place) by ``scale`` and refuse with
    :class:`~scintomo.exceptions.NumericalError` when it is not finite: a
    float32 result that overflows is an error, never inf/NaN returned
    silently."""
    r = np.asarray(result)
    if scale != 1.0:
        with np.errstate(over="ignore"):
            big = float(np.max(np.abs(r))) * scale if r.size else 0.0
        if big > float(np.finfo(r.dtype).max):
            raise NumericalError(
                f"{what}: the result overflows {r.dtype} (values up to {big:.3g}); "
                "scale the input down"
            )
        # in float64: 2^128 is no float32
        np.multiply(r, np.float64(scale), out=r, casting="unsafe")
    if r.dtype.kind == "f" and not np.all(np.isfinite(r)):
        raise NumericalError(
            f"{what}: the result has non-finite values (it overflows {r.dtype}); "
            "scale the input down"
        )
    return result
