"""Iterative reconstruction (SIRT, CGLS, TV) with the film's PSF in the
forward model, for parallel and cone beam, on the Rust projector pairs."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from .._progress import progress
from .._validate import as_float32, as_sinogram_stack, check_theta_radians, choice, n_threads_arg
from ..exceptions import NonFiniteError, ParameterError, ShapeError
from ._geometry import ConeGeometry, ParallelGeometry

log = logging.getLogger("scintomo.recon")

ITERATIVE_ALGORITHMS = ("sirt", "cgls", "tv")


@dataclass(frozen=True)
class IterativeResult:
    """An iterative reconstruction and how it went.

    Attributes
    ----------
    volume : (R, n, n) or (nz, ny, nx) ndarray of float32
        Attenuation per pixel (voxel), as :func:`reconstruct` returns it.
    algorithm : str
    residuals : (k + 1,) ndarray
        ||A x_i - b||_w of the start (entry 0) and of each iterate (with
        ordered subsets: accumulated over each sweep), dimensionless.
    changes : (k,) ndarray
        ||x_i - x_(i-1)|| / ||x_i|| of each iteration.
    stop : str
        ``iterations``, ``tolerance``, ``discrepancy``, ``callback`` or
        ``converged`` (CGLS reached a zero gradient).
    meta : dict
        The options (geometry, psf shape, weights, tv_weight, ...).
    """

    volume: np.ndarray
    algorithm: str
    residuals: np.ndarray
    changes: np.ndarray
    stop: str
    meta: dict = field(default_factory=dict)

    @property
    def iterations(self) -> int:
        return int(self.changes.size)

    def to_dict(self) -> dict:
        return {
            "algorithm": self.algorithm,
            "iterations": self.iterations,
            "stop": self.stop,
            "residuals": [float(v) for v in self.residuals],
            "changes": [float(v) for v in self.changes],
            **self.meta,
        }

    def plot(self, ax=None):
        """Residual history (log scale)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        ax.semilogy(np.arange(self.residuals.size), self.residuals, marker=".")
        ax.set_xlabel("iteration")
        ax.set_ylabel("||A x - b||")
        ax.set_title(f"{self.algorithm}: stopped by {self.stop}")
        return ax


def _psf_arg(psf) -> np.ndarray | None:
    if psf is None:
        return None
    arr = psf.array if hasattr(psf, "array") and hasattr(psf, "pixel_size_um") else psf
    k = as_float32(arr, "psf")
    if k.ndim != 2 or k.size == 0:
        raise ShapeError(f"psf must be a non-empty 2-D array, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise NonFiniteError("psf contains NaN or inf")
    s = float(k.sum(dtype=np.float64))
    if not s > 0:
        raise ParameterError("psf must have a positive sum")
    return np.ascontiguousarray(k / s, dtype=np.float32)


def _int_arg(value, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def iterative(
    projections,
    theta,
    *,
    geometry=None,
    center=None,
    algorithm: str = "sirt",
    iterations: int = 50,
    psf=None,
    weights=None,
    nonnegative: bool | None = None,
    tv_weight: float = 0.0,
    x0=None,
    n_subsets: int = 1,
    tol: float | None = None,
    noise_sigma: float | None = None,
    callback=None,
    n_out: int | None = None,
    shape=None,
    voxel_size=None,
    progress_bar: bool | None = None,
    n_threads: int | None = None,
) -> IterativeResult:
    """Iterative reconstruction with the film in the model, A = B P.

    P is the matched projector pair of ``scintomo._core`` (parallel beam:
    ASTRA's ``linear`` kernel slice by slice; cone beam: Joseph's), B the
    PSF applied to each projection in the detector plane (rows x columns; for
    parallel beam the rows are the slices, so B couples them), B^T the
    correlation with it. Both computed on the fly, no stored matrix.

    Parameters
    ----------
    projections : (A, R, N) or (A, N) ndarray
        -log(transmission) line integrals. Not modified. NaN/inf refused.
    theta : (A,) array_like, radians
    geometry : None, ParallelGeometry or ConeGeometry
        As in :func:`reconstruct`.
    center : float or (R,) array_like, pixels, optional
        Parallel beam: the rotation axis' column (default (N - 1) / 2).
    algorithm : {"sirt", "cgls", "tv"}
        ``sirt``: x += C A^T R (b - A x), R = 1 / row sums, C = 1 / column
        sums (ASTRA's normalisation; with ``weights`` w: R = w / row sums,
        C = 1 / (A^T w)). ``cgls``: conjugate gradients on the (weighted)
        normal equations, unconstrained. ``tv``: min 1/2 ||A x - b||_w^2 +
        tv_weight TV(x), isotropic TV (within each slice for parallel beam,
        3-D for cone beam), by the preconditioned primal-dual method of
        Chambolle and Pock (2011).
    iterations : int
        Most iterations (>= 0).
    psf : scintomo.psf.PSF or (kh, kw) ndarray, optional
        The film's PSF on the detector's pixel grid, centred at ((kh - 1) /
        2, (kw - 1) / 2); normalised to sum 1. At most the detector's size.
    weights : ndarray shaped like the projections, optional
        Statistical weights w >= 0 of the least-squares data term (e.g. the
        counts: the inverse variance of -log I/I0 is about I).
    nonnegative : bool, optional
        Clamp x >= 0 (SIRT, TV; default True). CGLS is unconstrained
        (default False; True is refused).
    tv_weight : float
        lambda of the TV term (data units x pixels).
    x0 : ndarray or "fbp", optional
        Start: zeros (default), a volume, or the FBP reconstruction
        (parallel beam) / FDK (cone beam).
    n_subsets : int
        SIRT with ordered subsets of interleaved angles (1: plain SIRT).
    tol : float, optional
        Stop when ||x_k - x_(k-1)|| / ||x_k|| < tol.
    noise_sigma : float, optional
        Standard deviation of the noise of each projection value (of sqrt(w)
        times it, with weights): stop at the first iterate whose residual
        is below sqrt(number of values) x noise_sigma (the discrepancy
        principle).
    callback : callable, optional
        ``callback(iteration, x, residual)`` after each iteration (x a copy
        of the iterate, shaped as the volume); a true return value stops.
    n_out : int, optional
        Parallel beam: side of the slices, pixels (default N).
    shape, voxel_size :
        Cone beam: the volume (nz, ny, nx) and its voxel (micrometres).
    progress_bar : bool, optional
        A bar per iteration (default: on an interactive terminal).
    n_threads : int, optional

    Returns
    -------
    IterativeResult

    Notes
    -----
    Memory, V a volume and P a projection stack in float32: SIRT about
    4 V + 6 P (+ V per subset), CGLS 4 V + 5 P, TV (6 + d) V + 6 P with d =
    2 (parallel) or 3 (cone); the parallel projector adds 2 V (padded copies
    of the slices) and P (padded sinograms) while it runs, the cone
    back-projector one float64 volume per thread, the PSF one P.
    Time: one forward and one back projection per iteration (plus one of
    each at the start).
    """
    algorithm = choice(algorithm, "algorithm", ITERATIVE_ALGORITHMS)
    iterations = _int_arg(iterations, "iterations", minimum=0)
    n_subsets = _int_arg(n_subsets, "n_subsets", minimum=1)
    if nonnegative is None:
        nonnegative = algorithm != "cgls"
    if algorithm == "cgls" and nonnegative:
        raise ParameterError("CGLS is unconstrained: pass nonnegative=False or use sirt / tv")
    if algorithm != "sirt" and n_subsets != 1:
        raise ParameterError("ordered subsets (n_subsets > 1) are a SIRT option")
    tv_weight = float(tv_weight)
    if not (math.isfinite(tv_weight) and tv_weight >= 0):
        raise ParameterError(f"tv_weight must be >= 0, got {tv_weight!r}")
    if tol is not None and not (math.isfinite(tol) and tol > 0):
        raise ParameterError(f"tol must be > 0, got {tol!r}")
    if noise_sigma is not None and not (math.isfinite(noise_sigma) and noise_sigma >= 0):
        raise ParameterError(f"noise_sigma must be >= 0, got {noise_sigma!r}")
    arr, single = as_sinogram_stack(projections)
    n_ang, n_rows, n_det = arr.shape
    th = np.asarray(theta, dtype=np.float64).ravel()
    if th.size != n_ang:
        raise ShapeError(f"theta has {th.size} angles for {n_ang} projections")
    if not np.all(np.isfinite(th)):
        raise ParameterError("theta must be finite")
    check_theta_radians(th)
    k = _psf_arg(psf)
    w = None
    if weights is not None:
        w = as_float32(weights, "weights")
        if w.shape != arr.shape and not (single and w.shape == arr.shape[::2]):
            raise ShapeError(f"weights must have the projections' shape, got {w.shape}")
        w = np.ascontiguousarray(w.reshape(arr.shape))
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ParameterError("weights must be finite and >= 0")
    n_threads = n_threads_arg(n_threads)
    cone = isinstance(geometry, ConeGeometry)
    if geometry is not None and not cone and not isinstance(geometry, ParallelGeometry):
        raise ParameterError(
            f"geometry must be None, a ParallelGeometry or a ConeGeometry, got {geometry!r}"
        )
    if cone:
        from ._cone import _kernel_geometry, _shape_arg

        if single:
            raise ShapeError("cone-beam projections must be (angle, row, column)")
        if center is not None or n_out is not None:
            raise ParameterError(
                "center and n_out are parallel-beam options; ConeGeometry has its own"
            )
        vol_shape = _shape_arg(shape, (n_rows, n_det, n_det))
        kgeo = _kernel_geometry(geometry, voxel_size, n_rows, n_cols=n_det)
    else:
        from ._recon import _centers

        if shape is not None or voxel_size is not None:
            raise ParameterError("shape and voxel_size are cone-beam options")
        if geometry is not None and center is None:
            center = geometry.center
        centers = _centers(center, n_rows, n_det)
        n_out = n_det if n_out is None else _int_arg(n_out, "n_out", minimum=1)
        vol_shape = (n_rows, n_out, n_out)
    x_start = None
    start = "zeros"
    if isinstance(x0, str):
        choice(x0, "x0", ("fbp",))
        from ._recon import reconstruct

        start = "fbp"
        fbp = reconstruct(
            arr,
            th,
            geometry=geometry,
            center=None if cone else centers,
            algorithm="fdk" if cone else "fbp",
            filter="ramp" if not cone else "shepp",
            mask=None if cone else False,
            n_out=None if cone else n_out,
            shape=vol_shape if cone else None,
            voxel_size=voxel_size,
            n_threads=n_threads,
        )
        x_start = np.asarray(fbp, dtype=np.float32).reshape(vol_shape)
        if nonnegative:
            x_start = np.maximum(x_start, 0)
    elif x0 is not None:
        start = "x0"
        x_start = as_float32(x0, "x0")
        if x_start.size != int(np.prod(vol_shape)) or (
            x_start.shape != vol_shape and x_start.shape != vol_shape[1:]
        ):
            raise ShapeError(f"x0 must have the volume's shape {vol_shape}, got {x_start.shape}")
        if not np.all(np.isfinite(x_start)):
            raise NonFiniteError("x0 contains NaN or inf")
        x_start = np.ascontiguousarray(x_start.reshape(vol_shape))
    discrepancy = None
    if noise_sigma is not None:
        discrepancy = float(noise_sigma) * math.sqrt(arr.size)

    bar = progress(total=iterations, desc=algorithm.upper(), unit="it", enabled=progress_bar)
    want_x = callback is not None

    def monitor(it, residual, change, x):
        bar.update(1)
        bar.set_postfix(residual=f"{residual:.4g}", refresh=False)
        if callback is not None:
            return bool(callback(it, x.reshape(vol_shape), residual))
        return False

    common = dict(
        algorithm=algorithm,
        iterations=iterations,
        x0=x_start,
        psf=k,
        weights=w,
        nonnegative=bool(nonnegative),
        tol=tol,
        discrepancy=discrepancy,
        n_subsets=n_subsets,
        tv_weight=tv_weight,
        callback=monitor,
        callback_x=want_x,
        n_threads=n_threads,
    )
    try:
        if cone:
            vol, res, ch, stop = _core.cone_iterative(
                np.ascontiguousarray(arr), th.tolist(), shape=vol_shape, **kgeo, **common
            )
        else:
            vol, res, ch, stop = _core.parallel_iterative(
                np.ascontiguousarray(arr), th.tolist(), centers.tolist(), n=n_out, **common
            )
    finally:
        bar.close()
    log.info("%s: %d iteration(s), stopped by %s", algorithm, len(ch), stop)
    meta = {
        "backend": "builtin",
        "algorithm": algorithm,
        "geometry": (geometry or ParallelGeometry()).to_dict(),
        "n_angles": n_ang,
        "iterations_max": iterations,
        "psf_shape": None if k is None else list(k.shape),
        "weighted": w is not None,
        "nonnegative": bool(nonnegative),
        "tv_weight": tv_weight,
        "n_subsets": n_subsets,
        "x0": start,
        "tol": tol,
        "noise_sigma": noise_sigma,
    }
    if not cone:
        meta["center"] = centers.tolist()
        meta["axis_pixel"] = ((n_out - 1) / 2.0, (n_out - 1) / 2.0)
    if single:
        vol = vol[0]
    return IterativeResult(
        volume=vol,
        algorithm=algorithm,
        residuals=np.asarray(res, dtype=np.float64),
        changes=np.asarray(ch, dtype=np.float64),
        stop=stop,
        meta=meta,
    )
