"""Rotation-axis finding: Vo's Fourier metric and 0/180-degree registration."""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from .._validate import as_sinogram_stack, check_finite, choice
from ..exceptions import NumericalError, ParameterError, ShapeError


def _half_turn(theta: np.ndarray) -> np.ndarray:
    """Indices of the projections in [theta0, theta0 + pi) (uniform step assumed by Vo's method)."""
    t = theta - theta[0]
    step = np.median(np.abs(np.diff(theta))) if theta.size > 1 else 0.0
    keep = np.flatnonzero(t < np.pi - 0.5 * step)
    if keep.size < 8:
        raise ParameterError("find_center needs at least 8 projections within the first half turn")
    return keep


def _bin_columns(s: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return s
    n = (s.shape[1] // f) * f
    return s[:, :n].reshape(s.shape[0], -1, f).mean(axis=2)


class _VoMetric:
    """Vo et al., Opt. Express 22, 19078 (2014): join the sinogram with its
    mirrored copy (the second half turn) for a trial axis and measure the
    Fourier magnitude outside the double wedge where a real 360-degree
    sinogram has its energy; the right axis minimises it.

    The 2-D FFT of the joined sinogram [A; shift_t(B)] is, by linearity,
    A2 + (-1)^l exp(-2 pi i k t / n) B2 with A2, B2 the FFTs of the halves
    zero-padded to twice the rows, so each trial costs one pass over the
    masked coefficients instead of a 2-D FFT (TomoPy's find_center_vo does
    an FFT per trial)."""

    def __init__(self, sino: np.ndarray, ratio: float, drop: int):
        na, n = sino.shape
        s = sino - sino.mean()
        s = s.astype(np.float32)  # single precision FFTs: half the time
        a2 = sfft.fft(sfft.fft(s, axis=1, workers=-1), n=2 * na, axis=0, workers=-1)
        b2 = sfft.fft(sfft.fft(s[:, ::-1], axis=1, workers=-1), n=2 * na, axis=0, workers=-1)
        l_idx = np.fft.fftfreq(2 * na, 1.0 / (2 * na))
        k_idx = np.fft.fftfreq(n, 1.0 / n)
        la, ka = np.abs(l_idx)[:, None], np.abs(k_idx)[None, :]
        drop = min(drop, int(np.ceil(0.05 * 2 * na)))
        mask = (ka <= la / (np.pi * ratio)) & (la > drop) & (ka > 1)
        sign = np.where(l_idx.astype(int) % 2 == 0, 1.0, -1.0)[:, None]
        self.a = a2[mask].astype(np.complex64)
        self.b = (b2 * sign)[mask].astype(np.complex64)
        self.k = np.broadcast_to(k_idx[None, :], mask.shape)[mask].astype(np.float32)
        self.n = n

    def __call__(self, t: float) -> float:
        # The mirrored copy moved by t columns: axis at (n - 1) / 2 + t / 2.
        ph = np.exp((-2j * np.pi * t / self.n) * self.k.astype(np.float64)).astype(np.complex64)
        return float(np.abs(self.a + self.b * ph).sum(dtype=np.float64))


def _parabola_min(x: np.ndarray, y: np.ndarray) -> float:
    i = int(np.argmin(y))
    if 0 < i < len(y) - 1:
        y0, y1, y2 = y[i - 1], y[i], y[i + 1]
        den = y0 - 2 * y1 + y2
        if den > 0:
            return float(x[i] + 0.5 * (x[1] - x[0]) * (y0 - y2) / den)
    return float(x[i])


def _vo(
    sino: np.ndarray, theta: np.ndarray, search: tuple[float, float], ratio: float, drop: int
) -> float:
    keep = _half_turn(theta)
    sino = sino[keep]
    na, n = sino.shape
    # Coarse to fine: columns binned by f (about 128 binned columns first,
    # then f / 4, ... 1), each level searching around the previous estimate;
    # angles cut to <= 4 per binned column pair; the last level steps 0.25 px
    # of centre and refines with a parabola. Binning by f moves the axis: in
    # binned columns it sits at (c - (f - 1) / 2) / f. Angles: at most 1024
    # (every 2nd of 1501), which changes the result by < 0.05 px in tests.
    f = max(1, n // 128)
    lo_c, hi_c = search
    c_est = None
    while True:
        astep = max(1, int(np.ceil(na / max(64, min(1024, 2 * (n // f))))))
        metric = _VoMetric(_bin_columns(sino[::astep], f), ratio, drop)
        mid_b = (metric.n - 1) / 2.0

        def to_t(c, f=f, mid_b=mid_b):
            return 2.0 * ((c - (f - 1) / 2.0) / f - mid_b)

        if c_est is None:
            ts = np.arange(np.floor(to_t(lo_c)), np.ceil(to_t(hi_c)) + 1)
        else:
            t0 = to_t(c_est)
            span = 2 * (4 + 1) if f > 1 else 3
            ts = t0 + np.arange(-span, span + 1, 1.0 if f > 1 else 0.5)
        vals = np.array([metric(t) for t in ts])
        t_best = _parabola_min(ts, vals) if f == 1 else float(ts[int(np.argmin(vals))])
        c_est = (mid_b + t_best / 2.0) * f + (f - 1) / 2.0
        if f == 1:
            return float(c_est)
        f = max(1, f // 4)


def _registration(proj: np.ndarray, theta: np.ndarray) -> float:
    """Register the projection at theta0 with the mirrored one at theta0 + pi
    (cross-correlation over all rows, Fourier-interpolated sub-pixel peak;
    not whitened, which would let the noise at high frequencies pick it)."""
    target = theta[0] + np.pi
    j = int(np.argmin(np.abs(theta - target)))
    step = np.median(np.abs(np.diff(theta))) if theta.size > 1 else np.inf
    if abs(theta[j] - target) > 0.5 * step + 1e-6:
        raise ParameterError("method='pc' needs a projection 180 degrees after the first one")
    a = proj[0] - proj[0].mean()
    b = proj[j][:, ::-1] - proj[j].mean()
    n = a.shape[1]
    m = 2 * n
    fa = np.fft.rfft(a, n=m, axis=1)
    fb = np.fft.rfft(b, n=m, axis=1)
    cross = (fa * np.conj(fb)).sum(axis=0)
    cc = np.fft.fftshift(np.fft.irfft(cross, n=m))
    lags = np.arange(m) - m // 2
    i = int(np.argmax(cc))
    # Sub-pixel: the band-limited (Fourier-interpolated) correlation around
    # the integer peak, maximised on a 0.01 px grid.
    k = np.arange(cross.size)
    w = np.where((k == 0) | (k == m // 2), 1.0, 2.0)
    dt = np.arange(-1.0, 1.0 + 1e-9, 0.01)
    ph = np.exp(2j * np.pi * np.outer(lags[i] + dt, k) / m)
    lowpass = np.cos(np.pi * k / m) ** 2  # tames the aliasing of sharp edges
    fine = (ph * (w * lowpass * cross)).real.sum(axis=1)
    sub = float(dt[int(np.argmax(fine))])
    t = lags[i] + sub  # a(x) ~ b(x - t): mirrored copy displaced by t
    return (n - 1) / 2.0 + t / 2.0


def _on_detector(c: float, n: int) -> float:
    """``c`` when it is a column of the detector; else a NumericalError (a
    centre off the detector is not an answer, and reconstruct refuses it)."""
    if not (np.isfinite(c) and 0.0 <= c <= n - 1):
        raise NumericalError(
            f"the best axis match ({c:g}) lies outside the detector's columns [0, {n - 1}]: "
            "the data show no rotation axis"
        )
    return float(c)


def find_center(
    projections,
    theta,
    *,
    method: str = "vo",
    rows=None,
    search_range: tuple[float, float] | None = None,
    ratio: float = 0.5,
    drop: int = 20,
):
    """Find the rotation axis (column index, pixel centres at integers).

    Parameters
    ----------
    projections : (A, R, N) or (A, N) ndarray
        -log projections (angle, row, column) or one sinogram. Not modified.
    theta : (A,) array_like, radians
        Angles; Vo's method uses the first half turn (uniform steps), ``pc``
        needs a projection at theta[0] + pi.
    method : {"vo", "pc"}
        ``vo``: Fourier double-wedge metric (Vo et al., Opt. Express 22,
        19078, 2014), coarse on binned data then 0.25 px steps with a
        parabolic refinement. ``pc``: cross-correlation of the 0 and 180
        degree projections (all rows at once), Fourier-interpolated peak.
    rows : int or sequence of int, optional
        Detector rows to analyse (``vo``); default the middle row.
    search_range : (float, float), pixels, optional
        Columns the axis may lie between (``vo``); default the middle half
        of the detector. A range that does not overlap the detector's
        columns [0, N - 1] is refused; one that sticks out is cut to them.
    ratio : float
        Object size over the field of view (Vo's mask parameter; 0.5 is
        TomoPy's default and works for most data).
    drop : int
        Lowest angular frequencies left out of the metric.

    Returns
    -------
    float, or (len(rows),) float64 ndarray when ``rows`` is a sequence:
    the axis column index (the ``center`` of :func:`reconstruct`), always
    on the detector, in [0, N - 1].

    Raises
    ------
    NumericalError
        When the best match lies off the detector (no axis in the data).
    """
    choice(method, "method", ("vo", "pc"))
    arr, _ = as_sinogram_stack(projections, finite=False)
    th = np.asarray(theta, dtype=np.float64).ravel()
    if th.size != arr.shape[0]:
        raise ShapeError(f"theta has {th.size} angles for {arr.shape[0]} projections")
    if not np.all(np.isfinite(th)):
        raise ParameterError("theta must be finite")
    if not (np.isfinite(ratio) and 0 < ratio <= 1):
        raise ParameterError(f"ratio must be in (0, 1], got {ratio!r}")
    n_ang, n_rows, n = arr.shape
    if n < 16:
        raise ShapeError("find_center needs at least 16 columns")
    if method == "pc":
        check_finite(arr, "projections")
        return _on_detector(_registration(arr.astype(np.float64), th), n)
    scalar = rows is None or np.isscalar(rows)
    rr = [n_rows // 2] if rows is None else list(np.atleast_1d(rows).astype(int))
    for r in rr:
        if not 0 <= r < n_rows:
            raise ParameterError(f"row {r} outside 0..{n_rows - 1}")
    if search_range is None:
        search_range = ((n - 1) / 2.0 - n / 4.0, (n - 1) / 2.0 + n / 4.0)
    lo, hi = (float(v) for v in search_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ParameterError(f"search_range must be (low, high) columns, got {search_range!r}")
    if hi < 0 or lo > n - 1:
        raise ParameterError(
            f"search_range {search_range!r} does not overlap the detector's columns [0, {n - 1}]"
        )
    lo, hi = max(lo, 0.0), min(hi, n - 1.0)
    out = []
    for r in rr:
        sino = arr[:, r, :].astype(np.float64)
        check_finite(sino, "projections")
        out.append(_on_detector(_vo(sino, th, (lo, hi), ratio, int(drop)), n))
    return float(out[0]) if scalar else np.array(out)
