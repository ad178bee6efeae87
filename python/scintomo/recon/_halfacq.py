"""Offset-axis ("half acquisition") 360-degree parallel-beam scans: the
rotation axis sits near one edge of the detector, each line through the
object is measured once over the full turn, and the field of view is about
twice the detector's width.

The projection at theta + pi, mirrored, is the projection at theta seen from
the other side: column j at theta + pi measures the line s = c - j at theta
(c the axis column). So every half-turn angle gets a sinogram row of double
width: the direct projection on one side of the axis, the mirrored opposite
one on the other, blended over the columns both measure (the overlap, near
the axis). :func:`sino_360_to_180` does that (cf. TomoPy's ``sino_360_to_180``
and algotom's ``convert_sinogram_360_to_180``, Vo et al., Opt. Express 29,
17849, 2021); :func:`find_center_360` finds the axis, and so the overlap and
side, from the data (cf. algotom's ``find_center_360``).

Columns: with the axis at column c of an N-column detector, the mirrored
opposite projection is the direct one displaced by t = N - 1 - 2c columns;
the two overlap over N - |t| = ``overlap`` columns. Axis right of the middle
(t < 0): ``side = "right"``, the stitched row runs from the direct
projection's first column to 2c, width floor(2c) + 1, the axis at its column
c. Axis left of the middle: the mirrored projection comes first, the axis
sits at column c + floor(N - 1 - 2c) of the stitched row (a fraction of a
column at the far edge is dropped, as on the right side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import spline_filter1d

from .._validate import as_sinogram_stack, center_arg, choice
from ..exceptions import NumericalError, ParameterError, ShapeError

SIDES = ("left", "right")


@dataclass(frozen=True)
class HalfAcquisition:
    """Where the axis of an offset-axis 360-degree scan lies (:func:`find_center_360`).

    Iterates as ``(center, overlap, side)``.

    Attributes
    ----------
    center : float, pixels
        Column of the rotation axis on the detector (pixel centres at
        integers): the ``center`` of :func:`reconstruct` with
        ``half_acquisition=True``.
    overlap : float, pixels
        Width of the band both the direct and the mirrored opposite
        projections measure, 2 (N - c) - 1 (axis on the right) or 2 c + 1
        (on the left).
    side : {"left", "right"}
        The detector edge the axis is near.
    n_columns : int
        The detector's width N, columns.
    correlation : float
        Correlation of the direct and mirrored opposite projections over
        the overlap at the result (1: identical).
    """

    center: float
    overlap: float
    side: str
    n_columns: int
    correlation: float = math.nan

    def __iter__(self):
        return iter((self.center, self.overlap, self.side))

    @property
    def width(self) -> int:
        """Columns of the stitched (double field of view) sinogram."""
        return stitched_width(self.n_columns, self.center)

    def to_dict(self) -> dict:
        return {
            "center": self.center,
            "overlap_px": self.overlap,
            "side": self.side,
            "n_columns": self.n_columns,
            "stitched_width": self.width,
            "correlation": None if math.isnan(self.correlation) else self.correlation,
        }


def _layout(n: int, center: float) -> tuple[int, int, float, str]:
    """(shift, width, overlap, side): stitched column k sits at s = k - (c + shift)."""
    t = n - 1 - 2.0 * center
    overlap = n - abs(t)
    shift = max(0, math.floor(t + 1e-9))
    s_max = max(n - 1 - center, center)
    width = int(math.floor(s_max + center + shift + 1e-9)) + 1
    return shift, width, overlap, ("right" if t < 0 else "left")


def stitched_width(n_columns: int, center: float) -> int:
    """Columns of the 180-degree sinogram :func:`sino_360_to_180` makes from a
    detector of ``n_columns`` with the axis at column ``center``."""
    return _layout(int(n_columns), float(center))[1]


def _full_turn(theta: np.ndarray, n_ang: int, what: str) -> None:
    if theta.size != n_ang:
        raise ShapeError(f"theta has {theta.size} angles for {n_ang} projections")
    if not np.all(np.isfinite(theta)):
        raise ParameterError("theta must be finite")
    t = np.sort(np.mod(theta, 2 * np.pi))
    gaps = np.diff(np.concatenate([t, [t[0] + 2 * np.pi]]))
    if n_ang < 8 or gaps.max() > 4 * 2 * np.pi / n_ang:
        span = math.degrees(2 * np.pi - gaps.max())
        raise ParameterError(
            f"{what} needs theta covering a full turn (360 degrees, roughly evenly spaced); "
            f"these {n_ang} angles span {span:.1f} degrees"
        )


def _opposite(theta: np.ndarray, idx: np.ndarray):
    """For the angles theta[idx]: the two projections bracketing theta + pi
    (periodic) and the linear weight of the second."""
    t = np.mod(theta, 2 * np.pi)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    target = np.mod(t[idx] + np.pi, 2 * np.pi)
    ext = np.concatenate([ts[-1:] - 2 * np.pi, ts, ts[:1] + 2 * np.pi])
    eo = np.concatenate([order[-1:], order, order[:1]])
    j = np.clip(np.searchsorted(ext, target, side="right") - 1, 0, ext.size - 2)
    w = (target - ext[j]) / np.maximum(ext[j + 1] - ext[j], 1e-300)
    w = np.where(w < 1e-9, 0.0, np.where(w > 1 - 1e-9, 1.0, w))
    return eo[j], eo[j + 1], w


def _half_turn(theta: np.ndarray) -> np.ndarray:
    """Indices of the angles in [t0, t0 + pi), t0 the first angle of the turn."""
    t = np.mod(theta - theta[0], 2 * np.pi)
    keep = np.flatnonzero(t < np.pi - 1e-9)
    return keep[np.argsort(t[keep], kind="stable")]


def sino_360_to_180(projections, theta, center: float, *, blend: str = "cosine"):
    """Stitch an offset-axis 360-degree scan into a 180-degree scan of double width.

    Each projection of the first half turn is joined with its opposite (the
    projection at theta + pi, linearly interpolated between the two nearest
    angles when none is measured there), mirrored about the axis; over the
    overlap the two are blended with weights that go smoothly from one to
    the other (no seam where the weights jump).

    Parameters
    ----------
    projections : (A, R, N) or (A, N) ndarray
        -log projections over a full turn. Not modified.
    theta : (A,) array_like, radians
        Angles covering 360 degrees, any order.
    center : float, pixels
        Column of the rotation axis (see :func:`find_center_360`), in
        [0, N - 1].
    blend : {"cosine", "linear"}
        Shape of the weights over the overlap.

    Returns
    -------
    stitched : (A', R, W) or (A', W) float32 ndarray
        The 180-degree scan, W = :func:`stitched_width` columns.
    theta : (A',) float64 ndarray, radians
        Its angles (the first half turn of ``theta``).
    center : float, pixels
        Column of the axis in the stitched rows.
    """
    arr, single = as_sinogram_stack(projections)
    n_ang, n_rows, n = arr.shape
    th = np.asarray(theta, dtype=np.float64).ravel()
    _full_turn(th, n_ang, "a half-acquisition scan")
    choice(blend, "blend", ("cosine", "linear"))
    c = float(center_arg(np.array([center], dtype=np.float64), n)[0])
    shift, width, overlap, side = _layout(n, c)
    if overlap < 1.0:
        raise ParameterError(f"center {c:g} leaves no overlap between opposite projections")
    idx = _half_turn(th)
    j0, j1, wj = _opposite(th, idx)
    c_out = c + shift
    s = np.arange(width) - c_out
    # Direct projection: column c + s = k - shift (integer); opposite: c - s.
    dcol = np.arange(width) - shift
    ocol = c - s
    d_ok = (dcol >= 0) & (dcol <= n - 1)
    o_ok = (ocol >= -1e-6) & (ocol <= n - 1 + 1e-6)
    lo, hi = max(-c, c - (n - 1)), min(n - 1 - c, c)  # overlap in s
    x = np.clip((s - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * x) if blend == "cosine" else x
    w_direct = 1.0 - ramp if side == "right" else ramp
    w_direct = np.where(d_ok & o_ok, w_direct, np.where(d_ok, 1.0, 0.0))
    w_opp = np.where(o_ok, 1.0 - w_direct, 0.0)
    if not np.all(d_ok | o_ok):  # pragma: no cover - the layout covers every column
        raise NumericalError("stitching left a column uncovered")
    # The opposite projection is read at c - s = 2c + shift - k: the same
    # fraction f of a column for every k, so cubic B-spline interpolation is
    # a prefilter along the columns and a fixed 4-tap sum (linear
    # interpolation would blur half the field, measurably lowering its
    # correlation with the object; Keys' cubic convolution less so, but
    # still 0.003 below the B-spline at an axis of 8.7 px of 64), edge
    # columns repeated. Done on blocks of projections at once.
    o0 = np.floor(ocol + 1e-9).astype(np.intp)
    f = float(np.mean(ocol - o0))
    if f < 1e-9:
        taps = [(0, 1.0)]
    else:
        taps = [
            (-1, (1.0 - f) ** 3 / 6.0),
            (0, (3.0 * f**3 - 6.0 * f**2 + 4.0) / 6.0),
            (1, (-3.0 * f**3 + 3.0 * f**2 + 3.0 * f + 1.0) / 6.0),
            (2, f**3 / 6.0),
        ]
    # contiguous column ranges (slices, not gathers): direct columns k - shift
    # for k in [d0, d1), mirrored columns O - k + m (decreasing) for k in [k0, k1)
    big_o = int(o0[0])  # o0 = big_o - k
    dk = np.flatnonzero(d_ok)
    d0, d1 = int(dk[0]), int(dk[-1]) + 1
    ok_k = np.flatnonzero(o_ok)
    k0, k1 = int(ok_k[0]), int(ok_k[-1]) + 1
    pad = 2
    wd = w_direct[d0:d1].astype(np.float32)
    wo = w_opp[k0:k1].astype(np.float32)
    out = np.zeros((idx.size, n_rows, width), dtype=np.float32)
    step = max(1, int(2**24 // max(1, n_rows * width)))  # ~64 MiB of float32 per block
    for b in range(0, idx.size, step):
        sl = slice(b, b + step)
        opp = arr[j0[sl]].astype(np.float32)
        wb = wj[sl].astype(np.float32)[:, None, None]
        if np.any(wb > 0):
            opp = (1.0 - wb) * opp + wb * arr[j1[sl]]
        if len(taps) > 1:
            opp = spline_filter1d(opp, order=3, axis=-1, mode="nearest", output=np.float32)
        padded = np.pad(opp, ((0, 0), (0, 0), (pad, pad)), mode="edge")
        mirrored = np.zeros((opp.shape[0], n_rows, k1 - k0), dtype=np.float32)
        for m, w in taps:
            hi = big_o - k0 + m + pad  # column for k = k0
            lo = big_o - (k1 - 1) + m + pad  # column for k = k1 - 1
            mirrored += np.float32(w) * padded[:, :, lo : hi + 1][:, :, ::-1]
        block = out[sl]
        block[:, :, d0:d1] = wd * arr[idx[sl]][:, :, d0 - shift : d1 - shift]
        block[:, :, k0:k1] += wo * mirrored
    th_out = th[idx]
    return (out[:, 0] if single else out), th_out, c_out


def _window_sums(x: np.ndarray, n: int, lags: np.ndarray, right: bool) -> np.ndarray:
    """Sums of ``x`` (..., n) over the overlap columns of each lag: direct
    columns [max(0, -t), min(n, n - t)) (right=False), mirrored columns
    [max(0, t), min(n, n + t)) (right=True)."""
    cs = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1)], axis=-1)
    tot = cs.reshape(-1, n + 1).sum(axis=0)
    if right:
        a, b = np.maximum(0, lags), np.minimum(n, n + lags)
    else:
        a, b = np.maximum(0, -lags), np.minimum(n, n - lags)
    return tot[b] - tot[a]


def _overlap_correlation(direct: np.ndarray, mirrored: np.ndarray, lags: np.ndarray):
    """Pooled correlation coefficient of direct[..., j] and mirrored[..., j + t]
    over the overlapping columns, for every integer lag t (all rows at once:
    the cross sums by FFT, the window sums by cumulative sums)."""
    n = direct.shape[-1]
    m = 1 << int(math.ceil(math.log2(2 * n)))
    fa = np.fft.rfft(direct, n=m, axis=-1)
    fb = np.fft.rfft(mirrored, n=m, axis=-1)
    cross = np.fft.irfft((np.conj(fa) * fb).reshape(-1, fa.shape[-1]).sum(axis=0), n=m)
    sab = cross[np.mod(lags, m)]  # sum_j a[j] b[j + t]
    count = (n - np.abs(lags)) * (direct.size // n)
    sa = _window_sums(direct, n, lags, right=False)
    saa = _window_sums(direct * direct, n, lags, right=False)
    sb = _window_sums(mirrored, n, lags, right=True)
    sbb = _window_sums(mirrored * mirrored, n, lags, right=True)
    cov = sab - sa * sb / count
    va = saa - sa * sa / count
    vb = sbb - sb * sb / count
    den = np.sqrt(np.maximum(va, 0) * np.maximum(vb, 0))
    tiny = 1e-9 * (np.abs(saa) + np.abs(sbb) + 1e-300)
    return np.where(den > tiny, cov / np.where(den > 0, den, 1.0), -1.0)


def find_center_360(
    projections,
    theta,
    *,
    side: str | None = None,
    min_overlap: float = 8,
    rows=None,
    n_pairs: int = 64,
    min_correlation: float = 0.8,
) -> HalfAcquisition:
    """Axis column, overlap and side of an offset-axis 360-degree scan, from the data.

    Each projection of the first half turn is compared with its opposite
    (theta + pi) mirrored: at the right axis the two agree over the
    overlap. The correlation over the overlap is computed for every whole
    column of displacement between them at once (FFT cross sums, window
    sums by cumulative sums), pooled over up to ``n_pairs`` pairs and the
    chosen rows; a parabola through the best one and its neighbours gives
    the sub-pixel displacement, half of which moves the axis.

    Parameters
    ----------
    projections : (A, R, N) or (A, N) ndarray
        -log projections over a full turn. Not modified.
    theta : (A,) array_like, radians
        Angles covering 360 degrees; a pair whose opposite angle is not
        measured uses the two nearest ones, interpolated.
    side : {"left", "right"}, optional
        The edge the axis is near, if known; default: both searched.
    min_overlap : float, pixels
        Smallest overlap considered (narrower ones correlate by chance).
    rows : sequence of int, optional
        Detector rows used (default: up to 32, evenly spread).
    n_pairs : int
        Opposite pairs used, evenly spread over the half turn.
    min_correlation : float
        Below this best correlation the scan is judged to have no overlap
        (axis off the detector, or not a 360-degree offset-axis scan).

    Returns
    -------
    HalfAcquisition
        ``center, overlap, side = find_center_360(...)`` unpacks it.

    Raises
    ------
    ParameterError
        When theta does not cover a full turn, or the data show no overlap
        of at least ``min_overlap`` columns.
    """
    arr, _ = as_sinogram_stack(projections)
    n_ang, n_rows, n = arr.shape
    th = np.asarray(theta, dtype=np.float64).ravel()
    _full_turn(th, n_ang, "find_center_360")
    if side is not None:
        choice(side, "side", SIDES)
    if not (np.isfinite(min_overlap) and 2 <= min_overlap <= n):
        raise ParameterError(f"min_overlap must be in [2, {n}] columns, got {min_overlap!r}")
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ParameterError(f"n_pairs must be an integer >= 1, got {n_pairs!r}")
    if rows is None:
        rr = np.unique(np.linspace(0, n_rows - 1, min(n_rows, 32)).round().astype(int))
    else:
        rr = np.atleast_1d(np.asarray(rows)).astype(int)
        if rr.size == 0 or rr.min() < 0 or rr.max() >= n_rows:
            raise ParameterError(f"rows must be row indices in 0..{n_rows - 1}")
    idx = _half_turn(th)
    idx = idx[np.unique(np.linspace(0, idx.size - 1, min(idx.size, n_pairs)).round().astype(int))]
    j0, j1, wj = _opposite(th, idx)
    direct = arr[idx][:, rr].astype(np.float64)
    opp = (1.0 - wj)[:, None, None] * arr[j0][:, rr] + wj[:, None, None] * arr[j1][:, rr]
    mirrored = opp[..., ::-1].astype(np.float64)
    # Displacement t: direct[j] ~ mirrored[j + t], t = N - 1 - 2c; overlap N - |t|.
    t_max = int(math.floor(n - min_overlap))
    lags = np.arange(-t_max, t_max + 1)
    if side == "right":
        lags = lags[lags <= 0]
    elif side == "left":
        lags = lags[lags >= 0]
    corr = _overlap_correlation(direct, mirrored, lags)
    i = int(np.argmax(corr))
    best = float(corr[i])
    if not best >= min_correlation:
        raise ParameterError(
            f"no overlap of at least {min_overlap} columns between opposite projections "
            f"(best correlation {best:.2f} < {min_correlation}): the axis is off the "
            "detector, or this is not a 360-degree offset-axis scan"
        )
    if abs(int(lags[i])) == t_max:
        raise ParameterError(
            f"the best match between opposite projections overlaps by only {n - t_max} "
            f"columns (min_overlap): the overlap is too small to find the axis; give the "
            "axis as center, or lower min_overlap"
        )
    t = float(lags[i])
    if 0 < i < lags.size - 1:
        y0, y1, y2 = corr[i - 1], corr[i], corr[i + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            t += float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
    c = (n - 1 - t) / 2.0
    _, _, overlap, sd = _layout(n, c)
    if side is not None:
        sd = side
    return HalfAcquisition(
        center=float(c), overlap=float(overlap), side=sd, n_columns=int(n), correlation=best
    )
