"""reconstruct(): built-in (Rust) FBP and gridding, or TomoPy on request."""

from __future__ import annotations

import functools
import importlib.util
import logging

import numpy as np

from .. import _core
from .._validate import (
    as_sinogram_stack,
    center_arg,
    check_memory,
    check_result,
    check_theta_radians,
    choice,
    n_threads_arg,
    scale_down,
)
from ..exceptions import ParameterError, ShapeError

log = logging.getLogger("scintomo.recon")

FILTERS = ("ramp", "shepp", "cosine", "hamming", "hann", "parzen")
BUILTIN_ALGORITHMS = ("gridrec", "fbp")
_TOMOPY_FILTER = {"ramp": "ramlak"}


class Reconstruction(np.ndarray):
    """The reconstructed slices: a plain float32 ndarray, (row, y, x), with a
    ``meta`` dict saying how it was made (``backend``, ``algorithm``,
    ``filter``, ``center``, ``pad_len``, ``axis_pixel`` (row, column) of the
    rotation axis in the slice, ...). ``np.asarray(rec)`` drops it."""

    meta: dict

    def __new__(cls, array: np.ndarray, meta: dict):
        obj = np.asarray(array).view(cls)
        obj.meta = dict(meta)
        return obj

    def __array_finalize__(self, obj):
        self.meta = dict(getattr(obj, "meta", {}) or {})

    @property
    def backend(self) -> str:
        return str(self.meta.get("backend", ""))


@functools.cache
def tomopy_available() -> bool:
    """True when TomoPy imports (an installed package whose compiled libtomo
    cannot be loaded counts as absent). Checked once per process."""
    if importlib.util.find_spec("tomopy") is None:
        return False
    try:
        import tomopy  # noqa: F401
    except Exception:  # ImportError, or OSError / ModuleNotFoundError from libtomo
        return False
    return True


def angle_weights(theta: np.ndarray) -> np.ndarray:
    """Quadrature weight of each angle, radians: half the distance between its
    neighbours on the half-turn circle (angles folded modulo pi, so 360-degree
    scans and duplicated end points are counted once). pi / n for a uniform
    half turn; arbitrary, non-uniform angle sets are handled the same way."""
    t = np.mod(np.asarray(theta, dtype=np.float64), np.pi)
    if t.size == 1:
        return np.array([np.pi])
    order = np.argsort(t, kind="stable")
    ts = t[order]
    prev = np.roll(ts, 1)
    prev[0] -= np.pi
    nxt = np.roll(ts, -1)
    nxt[-1] += np.pi
    w = np.empty_like(ts)
    w[order] = 0.5 * (nxt - prev)
    return w


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast FFT lengths)."""
    best = 1 << max(0, int(np.ceil(np.log2(max(n, 1)))))
    p5 = 1
    while p5 < 2 * n:
        p35 = p5
        while p35 < 2 * n:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def padded_length(n_det: int, pad) -> int:
    """Length the projections are padded to: ``pad=True`` gives the smallest
    fast FFT length >= 2 n_det (no wrap-around of the ramp filter); ``False``
    none; an integer, that length."""
    if pad is True:
        return _fast_len(2 * n_det)
    if pad is False or pad is None:
        return n_det
    if isinstance(pad, (int, np.integer)) and pad >= n_det:
        return int(pad)
    raise ParameterError(f"pad must be True, False or an integer >= {n_det}, got {pad!r}")


def _centers(center, n_rows: int, n_det: int) -> np.ndarray:
    if center is None:
        return np.full(n_rows, (n_det - 1) / 2.0)
    c = np.asarray(center, dtype=np.float64)
    if c.ndim == 0:
        c = np.full(n_rows, float(c))
    if c.shape != (n_rows,):
        raise ShapeError(f"center must be a number or one per row ({n_rows}), got shape {c.shape}")
    return center_arg(c, n_det)


def reconstruct(
    projections,
    theta,
    *,
    center=None,
    geometry=None,
    algorithm: str | None = None,
    filter: str = "shepp",  # noqa: A002 - the field's (and TomoPy's) name
    backend: str = "auto",
    pad=True,
    mask=True,
    n_out: int | None = None,
    kernel_width: int = 5,
    shape=None,
    voxel_size=None,
    n_threads: int | None = None,
    half_acquisition: bool = False,
    iterations: int | None = None,
    psf=None,
    weights=None,
    nonnegative: bool | None = None,
    tv_weight: float = 0.0,
    x0=None,
    n_subsets: int = 1,
    tol: float | None = None,
    noise_sigma: float | None = None,
    callback=None,
    progress_bar: bool | None = None,
    **tomopy_kwargs,
) -> Reconstruction:
    """Reconstruct parallel-beam projections.

    Parameters
    ----------
    projections : (A, R, N) or (A, N) ndarray
        -log(transmission) projections (angle, row, column), or one sinogram.
        Converted to float32; not modified.
    theta : (A,) array_like, radians
        Projection angles; any set (non-uniform, 360 degrees) is fine: each
        angle is weighted by its share of the half turn.
    center : float or (R,) array_like, pixels, optional
        Column index of the rotation axis (pixel centres at integers), one for
        all rows or one per row. Default (N - 1) / 2, the detector's middle.
        Must lie on the detector, in [0, N - 1] (both backends; a
        ParameterError otherwise).
    geometry : ConeGeometry or ParallelGeometry, optional
        None or a :class:`ParallelGeometry`: parallel beam. A
        :class:`ConeGeometry`: circular cone beam (lab micro-CT), reconstructed
        by FDK into an (nz, ny, nx) volume (z along the rotation axis); then
        ``shape``, ``voxel_size``, ``filter``, ``pad`` and ``n_threads`` apply
        and ``center``, ``mask``, ``n_out`` and ``backend`` do not.
    algorithm : {"gridrec", "fbp", "fdk", "sirt", "cgls", "tv"} or a TomoPy algorithm name
        ``gridrec`` (the parallel-beam default): Fourier gridding
        (Kaiser-Bessel kernel); ``fbp``: filtered back-projection with linear
        interpolation; ``fdk`` (the cone-beam default and only choice):
        Feldkamp-Davis-Kress with Parker weights for short scans and Wang
        weights for a displaced detector, chosen from ``theta`` and the
        geometry. With the TomoPy backend any ``tomopy.recon`` algorithm
        ("sirt", "mlem", ...) and its keywords.
    filter : {"ramp", "shepp", "cosine", "hamming", "hann", "parzen"}
        Window of the ramp filter (band-limited ramp of Kak and Slaney).
    backend : {"auto", "builtin", "tomopy"}
        ``auto`` and ``builtin``: the built-in kernels, whatever is installed
        (so a result never depends on the environment). ``tomopy``: TomoPy's
        ``recon`` (when installed). Measured with TomoPy 1.15.2 at 1501 x
        2048, padded to 4096: its gridrec reads 1.16x high (least-squares
        scale against a Shepp-Logan phantom; built-in 1.00), with a gain
        rising from 1.01 at the centre to 1.13 at 0.8-0.9 of the radius on
        a uniform disc (``benches/test_bench_recon.py``).
    pad : bool or int
        Pad each projection (edge values) to >= 2 N before filtering (True),
        not at all (False), or to the given length.
    mask : bool or float
        Zero the pixels outside the circle of radius ``mask`` x n_out / 2
        (True: 1.0; False: no mask).
    n_out : int, optional
        Side of the output slices, pixels (default N). A call whose output
        and work buffers would not fit in the available memory raises
        :class:`~scintomo.exceptions.MemoryLimitError` before allocating.
    kernel_width : int
        Gridding kernel width, grid cells (gridrec only). Widths >= 5 grid
        onto a 1.25 x oversampled grid (the filtered projections are cut to
        it after filtering at the padded length), widths <= 4 onto a 2 x
        one: at 1501 x 2048 the default 5 is as accurate as 4 on 2 x (gain
        on a uniform disc within 1e-4 of 1) in 0.6 x the time.
    shape : (nz, ny, nx), optional
        Cone beam: the volume, centred on the axis and the central ray's
        plane. Default (R, N, N), what the detector sees.
    voxel_size : float or str, micrometres, optional
        Cone beam: default the detector pixel / magnification.
    n_threads : int, optional
        Threads (None: all cores), at most 64 per core. Passed to TomoPy as
        ``ncore``.
    half_acquisition : bool
        Parallel beam: an offset-axis 360-degree scan (synchrotron "half
        acquisition", double field of view). ``theta`` must cover a full
        turn; ``center`` (one number) is the axis column on the detector,
        near one edge (None: found by :func:`find_center_360`). Each
        projection is joined with its mirrored opposite into a 180-degree
        sinogram of about twice the width (:func:`sino_360_to_180`), which
        is reconstructed; ``n_out`` defaults to that width. ``.meta``
        records ``half_acquisition`` (centre, overlap, side, width).
    iterations, psf, weights, nonnegative, tv_weight, x0, n_subsets, tol, noise_sigma, callback :
        Options of the iterative algorithms (``algorithm="sirt"``, ``"cgls"``
        or ``"tv"``, built in, parallel and cone beam, the film's PSF in the
        model): see :func:`scintomo.recon.iterative`, which also returns the
        residual history; here it is in ``.meta["residuals"]``.
        ``iterations`` defaults to 50.
    progress_bar : bool, optional
        Iterative algorithms: a bar per iteration (default: on a terminal).

    Returns
    -------
    Reconstruction : (R, n_out, n_out) float32 ndarray ((n_out, n_out) for a
        sinogram), attenuation per pixel; ``.meta`` records the backend,
        algorithm, filter, centres and padding. Row 0 is the top of the slice
        (y pointing up), as TomoPy and scikit-image lay it out.

    Raises
    ------
    NumericalError
        When the result does not fit in float32 (input near the float32
        maximum is scaled by a power of two for the computation, so only a
        result that itself overflows is refused; never inf/NaN).
    """
    from ._geometry import ConeGeometry, ParallelGeometry
    from ._iterative import ITERATIVE_ALGORITHMS, iterative

    iter_opts = dict(
        iterations=iterations,
        psf=psf,
        weights=weights,
        nonnegative=nonnegative,
        tv_weight=tv_weight,
        x0=x0,
        n_subsets=n_subsets,
        tol=tol,
        noise_sigma=noise_sigma,
        callback=callback,
    )
    if algorithm in ITERATIVE_ALGORITHMS:
        if half_acquisition:
            raise ParameterError(
                f"half_acquisition with algorithm={algorithm!r}: stitch the 360-degree scan "
                "first with sino_360_to_180, then reconstruct the stitched sinogram"
            )
        if backend not in ("auto", "builtin") or tomopy_kwargs:
            raise ParameterError(
                f"{algorithm} is built in: backend='tomopy' and TomoPy options do not apply"
            )
        iter_opts["iterations"] = 50 if iterations is None else iterations
        res = iterative(
            projections,
            theta,
            geometry=geometry,
            center=center,
            algorithm=algorithm,
            shape=shape,
            voxel_size=voxel_size,
            n_out=n_out,
            n_threads=n_threads,
            progress_bar=progress_bar,
            **iter_opts,
        )
        meta = {**res.meta, "iterations": res.iterations, "stop": res.stop}
        meta["residuals"] = res.residuals.tolist()
        meta["changes"] = res.changes.tolist()
        return Reconstruction(res.volume, meta)
    given = [
        k
        for k, v in iter_opts.items()
        if v is not None
        and not (k == "tv_weight" and v == 0.0)
        and not (k == "n_subsets" and v == 1)
    ]
    if given:
        raise ParameterError(
            f"{', '.join(sorted(given))}: options of the iterative algorithms "
            "(algorithm='sirt', 'cgls' or 'tv')"
        )

    if isinstance(geometry, ConeGeometry):
        from ._cone import reconstruct_cone

        if half_acquisition:
            raise ParameterError(
                "half_acquisition is for parallel-beam scans; a cone-beam FDK weights a "
                "displaced detector (Wang) by itself: give center_column"
            )
        if center is not None or n_out is not None or backend not in ("auto", "builtin"):
            raise ParameterError(
                "center, n_out and backend are parallel-beam options; a ConeGeometry "
                "carries center_column / center_row and reconstructs with the built-in FDK"
            )
        vol, meta = reconstruct_cone(
            projections,
            theta,
            geometry,
            algorithm="fdk" if algorithm is None else algorithm,
            shape=shape,
            voxel_size=voxel_size,
            filter=filter,
            pad=pad,
            n_threads=n_threads,
        )
        return Reconstruction(vol, meta)
    if geometry is not None and not isinstance(geometry, ParallelGeometry):
        raise ParameterError(
            f"geometry must be None, a ParallelGeometry or a ConeGeometry, got {geometry!r}"
        )
    if shape is not None or voxel_size is not None:
        raise ParameterError("shape and voxel_size are cone-beam options; use n_out")
    if geometry is not None and center is None:
        center = geometry.center
    if half_acquisition:
        return _reconstruct_half(
            projections,
            theta,
            center=center,
            algorithm=algorithm,
            filter=filter,
            backend=backend,
            pad=pad,
            mask=mask,
            n_out=n_out,
            kernel_width=kernel_width,
            n_threads=n_threads,
            **tomopy_kwargs,
        )
    algorithm = "gridrec" if algorithm is None else algorithm
    arr, single = as_sinogram_stack(projections)
    n_ang, n_rows, n_det = arr.shape
    th = np.asarray(theta, dtype=np.float64).ravel()
    if th.size != n_ang:
        raise ShapeError(f"theta has {th.size} angles for {n_ang} projections")
    if not np.all(np.isfinite(th)):
        raise ParameterError("theta must be finite")
    check_theta_radians(th)
    if n_det < 2:
        raise ShapeError("projections need at least 2 columns")
    choice(backend, "backend", ("auto", "builtin", "tomopy"))
    choice(filter, "filter", FILTERS)
    n_threads = n_threads_arg(n_threads)
    centers = _centers(center, n_rows, n_det)
    pad_len = padded_length(n_det, pad)
    if n_out is not None and (
        isinstance(n_out, bool)
        or not isinstance(n_out, (int, np.integer, float, np.floating))
        or not float(n_out).is_integer()
        or n_out < 1
    ):
        raise ParameterError(f"n_out must be an integer >= 1, got {n_out!r}")
    n_out = n_det if n_out is None else int(n_out)
    check_memory(4.0 * n_rows * n_out * n_out, f"n_out = {n_out} for {n_rows} slice(s)")
    if mask is True:
        ratio = 1.0
    elif mask is False or mask is None:
        ratio = None
    else:
        ratio = float(mask)
        if not (np.isfinite(ratio) and ratio > 0):
            raise ParameterError(f"mask must be a bool or a ratio > 0, got {mask!r}")

    # "auto" is the built-in backend: installing TomoPy must not change the
    # answer (its gridrec scale and radial gain differ, issue #21).
    use = "tomopy" if backend == "tomopy" else "builtin"
    # Reconstruction is linear: data near the float32 maximum is scaled by
    # a power of two (exact) so the float32 FFTs cannot overflow.
    arr, scale = scale_down(arr, 2.0**64)
    if use == "builtin":
        axis_pixel = ((n_out - 1) / 2.0, (n_out - 1) / 2.0)
        choice(
            algorithm,
            "algorithm (built-in backend)",
            (*BUILTIN_ALGORITHMS, *ITERATIVE_ALGORITHMS),
        )
        if tomopy_kwargs:
            raise ParameterError(
                f"unknown options for the built-in backend: {sorted(tomopy_kwargs)}"
            )
        if algorithm == "gridrec":
            pad_len = max(pad_len, n_out + kernel_width)
        out = _core.recon_builtin(
            np.ascontiguousarray(arr),
            th.tolist(),
            angle_weights(th).tolist(),
            centers.tolist(),
            algorithm=algorithm,
            filter=filter,
            n_out=n_out,
            pad_len=pad_len,
            mask_radius=None if ratio is None else ratio * n_out / 2.0,
            kernel_width=int(kernel_width),
            n_threads=n_threads,
        )
    else:
        from ._tomopy import recon_tomopy

        if n_out != n_det:
            raise ParameterError("n_out is an option of the built-in backend only")
        out, axis_pixel = recon_tomopy(
            arr,
            th,
            centers,
            angle_weights(th),
            algorithm=algorithm,
            filter=_TOMOPY_FILTER.get(filter, filter),
            pad_len=pad_len,
            mask_ratio=ratio,
            n_threads=n_threads,
            **tomopy_kwargs,
        )
    out = check_result(out, "reconstruct", scale=scale)
    log.info("reconstructed %d slice(s) with %s %s", n_rows, use, algorithm)
    meta = {
        "backend": use,
        "algorithm": algorithm,
        "filter": filter,
        "center": centers.tolist(),
        "pad_len": pad_len,
        "mask_ratio": ratio,
        "n_angles": n_ang,
        "axis_pixel": axis_pixel,
    }
    res = out[0] if single else out
    return Reconstruction(res, meta)


def _reconstruct_half(projections, theta, *, center, n_out, **kwargs) -> Reconstruction:
    """:func:`reconstruct` of an offset-axis 360-degree scan: stitched, then as usual."""
    from ._halfacq import HalfAcquisition, _layout, find_center_360, sino_360_to_180

    if center is None:
        ha = find_center_360(projections, theta)
    else:
        c = np.asarray(center, dtype=np.float64)
        if c.ndim != 0 and not (c.size >= 1 and np.all(c == c.flat[0])):
            raise ParameterError(
                "half_acquisition takes one axis column (center a number), not one per row"
            )
        c = float(c.flat[0])
        n = np.shape(projections)[-1]
        center_arg(np.array([c]), n)
        _, _, overlap, side = _layout(n, c)
        ha = HalfAcquisition(center=c, overlap=float(overlap), side=side, n_columns=int(n))
    stitched, th, c_out = sino_360_to_180(projections, theta, ha.center)
    rec = reconstruct(stitched, th, center=c_out, n_out=n_out, **kwargs)
    return Reconstruction(rec, {**rec.meta, "half_acquisition": ha.to_dict()})
