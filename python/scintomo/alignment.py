"""Sample drift and jitter: align projections by re-projection.

The stage wobbles and the sample creeps during a lab scan, so each view is
displaced on the detector by its own (row, column) shift. The shifts are
found as in Gürsoy et al., "Rapid alignment of nanotomography data using
joint iterative reconstruction and reprojection", Sci. Rep. 7, 11818 (2017):

1. reconstruct with the current shifts undone,
2. re-project the reconstruction at the scan's angles,
3. register each measured view against its re-projection (whole pixels by
   FFT cross-correlation, the fraction by a Gauss-Newton step on the
   interior) and add the residual to the view's shift,
4. repeat until the largest update is below ``tol`` pixels.

The projector follows :mod:`scintomo.recon`'s convention (s = x cos theta +
y sin theta, column j at s = j - center), parallel beam; for a cone-beam scan
of small cone angle it is the usual approximation. A shift common to all
views is the rotation axis's position (horizontal) or the slice numbering
(vertical), which re-projection cannot tell from a drift: the mean shift is
removed (the centre is :func:`scintomo.recon.find_center`'s job).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._progress import progress
from ._validate import as_float32, check_finite, check_nonempty, n_threads_arg
from .exceptions import ParameterError, ShapeError

__all__ = ["Alignment", "align_projections", "load", "reproject", "shift_projections"]


@dataclass(frozen=True)
class Alignment:
    """Per-view shifts found by :func:`align_projections`.

    Attributes
    ----------
    shifts : (N, 2) ndarray of float64, pixels
        (row, column) displacement of each view's content from where an
        aligned scan has it; :func:`shift_projections` undoes them. Mean zero.
    iterations : int
    converged : bool
        The last update was below ``tol``.
    updates : tuple of float
        Largest shift update (pixels) of each iteration.
    """

    shifts: np.ndarray
    iterations: int
    converged: bool
    updates: tuple[float, ...]

    def to_dict(self) -> dict:
        return {
            "shifts_px": self.shifts.tolist(),
            "iterations": self.iterations,
            "converged": self.converged,
            "max_shift_px": float(np.abs(self.shifts).max()) if self.shifts.size else 0.0,
            "updates_px": [float(u) for u in self.updates],
        }

    def save(self, path, *, extra: dict | None = None) -> None:
        """Write the shifts as JSON (atomically), for :func:`load` and the pipeline's
        ``[alignment] shifts``; ``extra`` adds keys (the pipeline's pre-pass records how
        the shifts were found)."""
        from ._json import write_json

        write_json(path, {**self.to_dict(), **(extra or {})}, indent=1)

    def plot(self, fig=None, *, theta=None):
        """The (row, column) shift of each view against the view index (or ``theta``,
        radians, shown in degrees), and the largest update of each iteration; returns the
        figure (a person checks that the shifts look like a drift, not noise)."""
        import matplotlib

        if fig is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(10, 3.6))
        a1, a2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
        n = self.shifts.shape[0]
        x = np.arange(n) if theta is None else np.degrees(np.asarray(theta, float))
        a1.plot(x, self.shifts[:, 0], ".-", ms=2, lw=0.7, label="row (vertical)")
        a1.plot(x, self.shifts[:, 1], ".-", ms=2, lw=0.7, label="column (horizontal)")
        a1.axhline(0, color="0.7", lw=0.5)
        a1.set(
            xlabel="view" if theta is None else "angle (degrees)",
            ylabel="shift (px)",
            title=f"per-view drift, {n} views",
        )
        a1.legend(fontsize=8)
        if self.updates:
            a2.semilogy(np.arange(1, len(self.updates) + 1), self.updates, "o-", ms=3)
        a2.set(
            xlabel="iteration",
            ylabel="largest update (px)",
            title="converged" if self.converged else "not converged",
        )
        fig.tight_layout()
        return fig


def load(path) -> Alignment:
    """An :class:`Alignment` saved by :meth:`Alignment.save`."""
    import json
    from pathlib import Path

    from .exceptions import FileFormatError

    path = Path(path)
    try:
        d = json.loads(path.read_text())
        shifts = np.asarray(d["shifts_px"], dtype=np.float64).reshape(-1, 2)
        if not np.all(np.isfinite(shifts)):
            raise ValueError("shifts that are not finite")
        updates = tuple(float(u) for u in d.get("updates_px", ()))
        return Alignment(shifts, int(d["iterations"]), bool(d["converged"]), updates)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such alignment file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise FileFormatError(f"{path}: not a scintomo alignment file ({e!r})") from None


def shift_projections(
    projections, shifts, *, order: int = 3, n_threads: int | None = None
) -> np.ndarray:
    """Undo per-view shifts: view i is moved by ``-shifts[i]`` (rows, columns).

    Parameters
    ----------
    projections : (N, H, W) array_like
    shifts : (N, 2) array_like, pixels
        (row, column) displacement of each view, as :class:`Alignment` gives.
    order : int
        Spline order of the interpolation (scipy.ndimage.shift), edges
        continued with the nearest value. ``order=1`` (bilinear, the pipeline's)
        runs in the Rust kernel, views in parallel.
    n_threads : int, optional
        Threads of the ``order=1`` kernel (None: all cores).

    Returns
    -------
    (N, H, W) ndarray of float32
    """
    p = as_float32(projections, "projections")
    if p.ndim != 3:
        raise ShapeError(f"projections must be (N, H, W), got {p.shape}")
    s = np.asarray(shifts, dtype=np.float64)
    if s.shape != (p.shape[0], 2):
        raise ShapeError(f"shifts must be ({p.shape[0]}, 2), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ParameterError("shifts must be finite")
    if isinstance(order, bool) or order not in (0, 1, 2, 3, 4, 5):
        raise ParameterError(f"order must be a spline order 0..5, got {order!r}")
    nt = n_threads_arg(n_threads)
    out = np.empty(p.shape, np.float32)
    if order == 1:
        from . import _core

        _core.lab_shift(p, out, np.ascontiguousarray(s), n_threads=nt)
        return out
    from scipy import ndimage

    for i in range(p.shape[0]):
        out[i] = ndimage.shift(p[i], -s[i], order=order, mode="nearest")
    return out


def reproject(
    slices, theta, n_det: int, *, center: float | None = None, n_threads: int | None = None
) -> np.ndarray:
    """Parallel-beam projections of (R, n, n) slices at ``theta`` (radians),
    (A, R, n_det) float32, in :mod:`scintomo.recon`'s convention.

    The projector is the one the iterative methods use (``recon/project`` in
    the Rust core: ASTRA's ``linear`` kernel, line integrals in pixel units),
    so alignment, SIRT/CGLS/TV and the adjoint tests share one discretisation.
    """
    from . import _core

    vol = as_float32(slices, "slices")
    if vol.ndim == 2:
        vol = vol[None]
    if vol.ndim != 3 or vol.shape[1] != vol.shape[2]:
        raise ShapeError(f"slices must be (R, n, n) or (n, n), got {vol.shape}")
    r = vol.shape[0]
    c = (n_det - 1) / 2.0 if center is None else float(center)
    th = [float(t) for t in np.asarray(theta, dtype=np.float64).ravel()]
    return _core.parallel_project(
        np.ascontiguousarray(vol),
        th,
        [c] * r,
        n_det=int(n_det),
        n_threads=n_threads_arg(n_threads),
    )


def register(image: np.ndarray, reference: np.ndarray, *, max_shift: float) -> np.ndarray:
    """(row, column) displacement of ``image`` relative to ``reference``, pixels.

    The whole pixels come from the peak of the FFT cross-correlation (within
    ``max_shift``); the fraction from one Gauss-Newton step of
    sum (image - reference(x - d))^2 over the interior (Lucas and Kanade
    1981). The interior only: a correlation over the whole frame is pulled
    toward zero shift by what enters and leaves at the edges (a sample taller
    than the detector)."""
    a = image - image.mean()
    b = reference - reference.mean()
    xc = np.fft.irfft2(np.fft.rfft2(a) * np.conj(np.fft.rfft2(b)), s=a.shape)
    h, w = a.shape
    dy = np.fft.fftfreq(h, 1 / h)
    dx = np.fft.fftfreq(w, 1 / w)
    allowed = (np.abs(dy)[:, None] <= max_shift) & (np.abs(dx)[None, :] <= max_shift)
    i, j = np.unravel_index(int(np.argmax(np.where(allowed, xc, -np.inf))), xc.shape)
    whole = np.array([dy[i], dx[j]])
    m_r, m_c = int(abs(whole[0])) + 2, int(abs(whole[1])) + 2
    if h <= 2 * m_r + 2 or w <= 2 * m_c + 2:
        return whole
    ref = np.roll(reference.astype(np.float64), (int(whole[0]), int(whole[1])), axis=(0, 1))
    gy, gx = np.gradient(ref)
    inner = (slice(m_r, h - m_r), slice(m_c, w - m_c))
    jy, jx = gy[inner].ravel(), gx[inner].ravel()
    r = (image.astype(np.float64) - ref)[inner].ravel()
    jtj = np.array([[jy @ jy, jy @ jx], [jx @ jy, jx @ jx]])
    jtr = np.array([jy @ r, jx @ r])
    try:
        frac = -np.linalg.solve(jtj, jtr)
    except np.linalg.LinAlgError:  # a featureless view: no information on the fraction
        return whole
    return whole + np.clip(frac, -1.0, 1.0)


def align_projections(
    projections,
    theta,
    *,
    center: float | None = None,
    iterations: int = 20,
    tol: float = 0.01,
    max_shift: float | None = None,
    algorithm: str = "fbp",
    progress_bar: bool | None = None,
) -> Alignment:
    """Per-view (row, column) shifts of a scan, by iterated reconstruction and
    re-projection (Gürsoy et al. 2017).

    Parameters
    ----------
    projections : (N, H, W) array_like
        -ln(I/I0) projections (flat-fielded; the background near zero), parallel beam.
    theta : (N,) array_like, radians
    center : float, pixels, optional
        Column of the rotation axis (default the detector's middle).
    iterations : int
        At most this many reconstruct / re-project / register rounds.
    tol : float, pixels
        Stop when no shift changes by more than this.
    max_shift : float, pixels, optional
        Largest shift looked for (default a quarter of the smaller detector side).
    algorithm : str
        Of :func:`scintomo.recon.reconstruct` for the intermediate reconstructions.
    progress_bar : bool, optional

    Returns
    -------
    Alignment
        Apply with ``shift_projections(projections, alignment.shifts)``.
    """
    from .recon import reconstruct

    p = as_float32(projections, "projections")
    if p.ndim != 3:
        raise ShapeError(f"projections must be (N, H, W), got {p.shape}")
    check_nonempty(p, "projections")
    check_finite(p, "projections")
    th = np.asarray(theta, dtype=np.float64).ravel()
    if th.size != p.shape[0]:
        raise ShapeError(f"{th.size} angles for {p.shape[0]} projections")
    if isinstance(iterations, bool) or int(iterations) < 1:
        raise ParameterError(f"iterations must be >= 1, got {iterations!r}")
    n, h, w = p.shape
    limit = min(h, w) / 4.0 if max_shift is None else float(max_shift)
    if not limit > 0:
        raise ParameterError(f"max_shift must be > 0, got {max_shift!r}")
    shifts = np.zeros((n, 2))
    updates: list[float] = []
    converged = False
    for _ in progress(range(int(iterations)), desc="align", unit="it", enabled=progress_bar):
        aligned = shift_projections(p, shifts, order=3) if np.any(shifts) else p
        rec = np.asarray(
            reconstruct(aligned, th, center=center, algorithm=algorithm), dtype=np.float32
        )
        rep = reproject(rec, th, w, center=center)
        residual = np.array([register(aligned[i], rep[i], max_shift=limit) for i in range(n)])
        residual -= residual.mean(axis=0)
        shifts += residual
        shifts -= shifts.mean(axis=0)
        updates.append(float(np.abs(residual).max()))
        if updates[-1] < tol:
            converged = True
            break
    return Alignment(shifts, len(updates), converged, tuple(updates))
