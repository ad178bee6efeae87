"""Flat-field correction of projection stacks.

One call does what TomoPy's ``normalize``, ``normalize_nf``, ``normalize_roi``
and ``minus_log`` do, and what nabu does with flats taken at several times:

    ratio = (P - D) / (F - D)              per projection
    ratio /= mean(ratio in the air region) optional beam normalisation
    ratio = clip(ratio, lo, hi)            optional, always before a log
    out = -ln(ratio)                       optional (``log=True``)

in one pass over memory, in Rust, on all cores, with the GIL released.

D is the mean (or median) of the darks, F that of the flats. With several
flat series (``flats=[before, after]`` and ``flat_positions=[0, n - 1]``) the
flat at projection i is interpolated linearly between the two nearest series
in the projection index (nabu), or the nearest one is used (TomoPy
``normalize_nf``).

Pixels where F - D <= eps (dead pixels, zero flats) follow the ``bad_flat``
policy and are always counted: a warning names how many, and
``return_report=True`` returns the counts.

:func:`dynamic` corrects each projection with its own flat, the mean flat plus
a weighted sum of the flats' principal components (eigen flat fields, Van
Nieuwenhove et al. 2015), for a beam or film that drifts during the scan.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from . import _core
from ._validate import as_array, as_stack, check_nonempty, choice, n_threads_arg
from .exceptions import ParameterError, ScintomoWarning, ShapeError

__all__ = [
    "DynamicFlatField",
    "FlatFieldReport",
    "correct",
    "dynamic",
    "eigen_flats",
    "minus_log",
    "reduce_frames",
]

#: Lower clip bound used before -log when none is given (nabu's choice).
LOG_FLOOR = 1e-6


@dataclass(frozen=True)
class FlatFieldReport:
    """Counts from one flat-field correction.

    Attributes
    ----------
    bad_pixels : int
        Pixels (per image) where flat - dark <= eps in at least one flat series.
    bad_flat : str
        The policy applied to them.
    clipped_low, clipped_high : int
        Output values clipped at the lower / upper bound, over the whole stack.
    nonfinite : int
        Non-finite output values, each warned about: NaN from non-finite
        projections, and ratios beyond the float32 range left unclipped.
    n_projections : int
    """

    bad_pixels: int
    bad_flat: str
    clipped_low: int
    clipped_high: int
    nonfinite: int
    n_projections: int

    def to_dict(self) -> dict:
        return asdict(self)


def reduce_frames(
    frames, *, method: str = "mean", n_threads: int | None = None, what: str = "frames"
):
    """Reduce a series of frames to one image.

    Parameters
    ----------
    frames : (F, H, W) or (H, W) array_like
        Flat or dark frames (uint16, float32, float64 or any real dtype).
    method : {'mean', 'median'}
        Per-pixel reduction; accumulated in float64.
    n_threads : int, optional
        Threads to use (default: all cores).

    Returns
    -------
    (H, W) ndarray of float32

    Raises
    ------
    ShapeError
        Empty input or wrong number of dimensions.
    NonFiniteError
        NaN or inf among the frames (the count is given).
    """
    stack, _ = as_stack(frames, what)
    check_nonempty(stack, what)
    choice(method, "reduce", ("mean", "median"))
    return _core.reduce_frames(stack, method=method, what=what, n_threads=n_threads_arg(n_threads))


def _series(x, name: str, reduce: str, n_threads) -> list[np.ndarray]:
    """Reduce one array, or each array of a list (several series)."""
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    if not items:
        raise ShapeError(f"{name}: an empty list of series")
    return [reduce_frames(a, method=reduce, n_threads=n_threads, what=name) for a in items]


def _bounds(clip, cutoff, log: bool) -> tuple[float, float]:
    lo, hi = (None, None) if clip is None else tuple(clip)
    lo = (LOG_FLOOR if log else -np.inf) if lo is None else float(lo)
    hi = np.inf if hi is None else float(hi)
    if cutoff is not None:
        hi = min(hi, float(cutoff))
    if np.isnan(lo) or np.isnan(hi) or lo > hi:
        raise ParameterError(f"clip bounds must satisfy lo <= hi, got ({lo}, {hi})")
    if log and lo <= 0:
        raise ParameterError(f"-log needs a positive lower clip bound, got {lo}")
    return lo, hi


def _air_region(air, shape: tuple[int, int]) -> list[int] | None:
    if air is None:
        return None
    try:
        rows, cols = air
        r = rows.indices(shape[0])
        c = cols.indices(shape[1])
    except (TypeError, ValueError, AttributeError):
        raise ParameterError(
            "air must be a pair of slices (rows, columns), e.g. numpy.s_[:, :50]"
        ) from None
    if r[2] != 1 or c[2] != 1 or r[0] >= r[1] or c[0] >= c[1]:
        raise ParameterError(f"air region {air!r} is empty or has a step in a {shape} image")
    return [r[0], r[1], c[0], c[1]]


def correct(
    projections,
    flats,
    darks,
    *,
    reduce: str = "mean",
    flat_positions: Sequence[float] | None = None,
    interpolation: str = "linear",
    eps: float = 1e-6,
    bad_flat: str = "fill",
    fill_value: float = 1.0,
    air=None,
    cutoff: float | None = None,
    clip: tuple[float | None, float | None] | None = None,
    log: bool = False,
    first_index: int = 0,
    out: np.ndarray | None = None,
    n_threads: int | None = None,
    return_report: bool = False,
):
    """Flat-field correct projections: (P - D) / (F - D), optionally -log.

    Parameters
    ----------
    projections : (N, H, W) or (H, W) array_like
        Raw projections in counts, (angle, row, column). uint16, float32 and
        float64 are read directly; other real dtypes are converted to float32.
    flats : (F, H, W) or (H, W) array_like, or a list of them
        Open-beam frames. A list gives several flat series (e.g. taken
        before and after the scan); then ``flat_positions`` is required.
    darks : (D, H, W) or (H, W) array_like, or None
        Dark frames (no beam). ``None`` means a zero dark.
    reduce : {'mean', 'median'}
        How each series of flats and the darks are reduced to one image.
    flat_positions : sequence of float, optional
        For each flat series, the projection index at which it was taken
        (e.g. ``[-1, N]`` for before and after). Increasing.
    interpolation : {'linear', 'nearest'}
        Flat at projection i: linear in i between the two nearest series
        (nabu), or the nearest series (TomoPy ``normalize_nf``).
    eps : float
        Denominators flat - dark <= eps are invalid ("bad" pixels).
    bad_flat : {'fill', 'clamp', 'nan', 'raise'}
        Bad pixels get ``fill_value`` as their normalised value (default,
        1.0 means no attenuation), a denominator clamped to eps (TomoPy), NaN,
        or raise :class:`NumericalError`. A warning gives their count.
    fill_value : float
        Normalised value for bad pixels with ``bad_flat='fill'``.
    air : (slice, slice), optional
        Region (rows, columns) of air in every projection; each projection
        is divided by its mean normalised value there (beam-intensity
        normalisation, TomoPy ``normalize_roi``).
    cutoff : float, optional
        Upper limit of the normalised value (TomoPy's ``cutoff``).
    clip : (lo, hi), optional
        Clip the normalised value to [lo, hi] (``None`` for no bound on a
        side). With ``log=True`` the lower bound defaults to 1e-6 (nabu), as
        -ln of a value <= 0 is undefined.
    log : bool
        Return -ln of the clipped normalised value (fused, one pass).
    first_index : int
        Index of ``projections[0]`` in the whole scan, when correcting a scan
        block by block with several flat series.
    out : (N, H, W) or (H, W) ndarray of float32, optional
        Where to write the result. May be ``projections`` itself (a float32
        array) for in-place correction.
    n_threads : int, optional
        Threads to use (default: all cores).
    return_report : bool
        Also return a :class:`FlatFieldReport` with the counts.

    Returns
    -------
    out : ndarray of float32, the shape of ``projections``
    report : FlatFieldReport, only with ``return_report=True``

    Raises
    ------
    ShapeError
        Mismatched or empty inputs.
    NonFiniteError
        NaN or inf in flats or darks (the count is given).
    NumericalError
        Flat - dark <= eps everywhere (zero flats, or flats and darks
        swapped), at any pixel with ``bad_flat='raise'``, or an air region
        whose mean is <= 0.
    ParameterError
        Invalid options.

    Notes
    -----
    Projection values at or below the dark give ratios <= 0. Without a log
    they are returned as they are (they are noise, and averaging keeps them
    unbiased); with ``log=True`` they are clipped at the lower bound and
    counted in ``report.clipped_low``.

    Non-finite projection values are not clipped into plausible numbers:
    they stay NaN and are counted in the report (with a warning).
    """
    choice(reduce, "reduce", ("mean", "median"))
    choice(interpolation, "interpolation", ("linear", "nearest"))
    choice(bad_flat, "bad_flat", ("fill", "clamp", "nan", "raise"))
    nt = n_threads_arg(n_threads)
    lo, hi = _bounds(clip, cutoff, log)
    if not np.isfinite(eps) or eps < 0:
        raise ParameterError(f"eps must be a finite number >= 0, got {eps}")

    inplace = out is not None and out is projections
    proj = projections if inplace else as_array(projections, "projections")
    if proj.ndim not in (2, 3):
        raise ShapeError(f"projections must be (H, W) or (N, H, W), got shape {proj.shape}")
    check_nonempty(proj, "projections")
    was_2d = proj.ndim == 2
    stack = proj[np.newaxis] if was_2d else proj
    hw = stack.shape[1:]

    flat_list = _series(flats, "flats", reduce, nt)
    if darks is None:
        dark = np.zeros(hw, np.float32)
    else:
        dark = _series(
            np.concatenate([as_stack(d, "darks")[0] for d in darks])
            if isinstance(darks, (list, tuple))
            else darks,
            "darks",
            reduce,
            nt,
        )[0]
    for i, f in enumerate(flat_list):
        if f.shape != hw:
            raise ShapeError(
                f"projections are {hw[0]} x {hw[1]} but flat series {i} is {f.shape[0]} x {f.shape[1]}"
            )
    if dark.shape != hw:
        raise ShapeError(
            f"projections are {hw[0]} x {hw[1]} but darks are {dark.shape[0]} x {dark.shape[1]}"
        )

    if flat_positions is None:
        if len(flat_list) > 1:
            raise ParameterError(
                f"{len(flat_list)} flat series given: flat_positions must say where each was taken"
            )
        positions = [0.0]
    else:
        positions = [float(p) for p in flat_positions]
        if len(positions) != len(flat_list):
            raise ParameterError(
                f"{len(flat_list)} flat series but {len(positions)} flat_positions"
            )
    flat_stack = np.stack(flat_list)

    if inplace:
        if not (isinstance(out, np.ndarray) and out.dtype == np.float32):
            raise ParameterError("in-place correction (out=projections) needs a float32 ndarray")
        target = out[np.newaxis] if was_2d else out
        src = None
    else:
        if out is None:
            out = np.empty(proj.shape, np.float32)
        elif not isinstance(out, np.ndarray) or out.dtype != np.float32:
            raise ParameterError("out must be a float32 numpy array")
        elif out.shape != proj.shape:
            raise ShapeError(f"out has shape {out.shape} but projections have shape {proj.shape}")
        elif np.shares_memory(out, proj):
            raise ParameterError("out overlaps projections without being the same array")
        target = out[np.newaxis] if was_2d else out
        src = stack

    bad, low, high, nonfinite = _core.flatfield_correct(
        src,
        flat_stack,
        dark,
        target,
        positions=positions,
        interpolation=interpolation,
        eps=float(eps),
        bad_policy=bad_flat,
        fill_value=float(fill_value),
        air=_air_region(air, hw),
        lo=lo,
        hi=hi,
        log=bool(log),
        first_index=float(first_index),
        n_threads=nt,
    )
    report = FlatFieldReport(bad, bad_flat, low, high, nonfinite, stack.shape[0])
    if bad:
        action = {
            "fill": f"set to {fill_value}",
            "clamp": f"denominator clamped to {eps}",
            "nan": "set to NaN",
        }
        warnings.warn(
            f"{bad} pixel(s) have flat - dark <= {eps} (dead pixels or zero flats): {action[bad_flat]}",
            ScintomoWarning,
            stacklevel=2,
        )
    if nonfinite:
        warnings.warn(
            f"{nonfinite} non-finite output value(s): NaN in the projections (left as NaN) "
            "or ratios beyond the float32 range (give clip=(lo, hi) to bound them)",
            ScintomoWarning,
            stacklevel=2,
        )
    return (out, report) if return_report else out


def minus_log(
    data, *, clip: tuple[float | None, float | None] = (LOG_FLOOR, None), out=None, n_threads=None
):
    """-ln(data) after clipping to ``clip`` (TomoPy ``minus_log`` + nabu's clip).

    Parameters
    ----------
    data : ndarray
        Normalised transmission, any shape.
    clip : (lo, hi)
        Bounds applied before the log; ``lo`` must be > 0 (default 1e-6).
    out : ndarray of float32, optional
        Destination; may be ``data`` itself for in-place use.

    Returns
    -------
    ndarray of float32
    """
    lo, hi = _bounds(clip, None, True)
    nt = n_threads_arg(n_threads)
    if out is None:
        out = np.array(as_array(data, "data"), dtype=np.float32, copy=True)
    else:
        if not isinstance(out, np.ndarray) or out.dtype != np.float32:
            raise ParameterError("out must be a float32 numpy array")
        if out is not data:
            arr = np.asarray(data)
            if arr.shape != out.shape:
                raise ShapeError(f"out has shape {out.shape} but data has shape {arr.shape}")
            out[...] = arr
    check_nonempty(out, "data")
    _, _, _, nonfinite = _core.minus_log_inplace(out, lo=lo, hi=hi, n_threads=nt)
    if nonfinite:
        warnings.warn(f"{nonfinite} non-finite value(s) left as NaN", ScintomoWarning, stacklevel=2)
    return out


from ._eigenflats import DynamicFlatField, dynamic, eigen_flats  # noqa: E402 - after the core API
