"""Slanted-edge e-SFR (ISO 12233:2017 style) with an adaptive ESF extent.

Steps: orientation (near-horizontal edges are transposed), the rows the edge
crosses (a coarse line from the ROI's integrated gradient and a two-level step
fit; an edge that leaves the ROI through its sides keeps only the rows where
it lies a margin inside, and the fitted line must follow the coarse one, else
an error), per-row centroid of
the Hamming-windowed row derivative, line (or quadratic) fit, projection of a
whole number of phase cycles of rows into 1/4-px bins along the rows, window
centred on the LSF peak applied in the ESF domain (below), LSF by a central
difference, |DFT| normalised at f = 0, division by the difference filter's and
the bin box's responses, frequency axis corrected by 1/cos(angle) (ISO 2017).

Window (the SNR 10 accuracy): the adaptive window is flat over 1.0 x the 10-90
rise each side of the peak (beyond the LSF's support for Gaussian-like cores)
and ends in a cosine taper of 0.5 x the rise; it grows (x1.5) while the ESF
beyond it still moves (long-tailed PSFs). The ESF E is split into a step S at
the peak, with the plateau levels measured just outside the window, and the
rest D = E - S; the LSF is the central difference of S + w D. D ~ 0 where
w < 1, so the taper costs no bias, and f = 0 is the step height exactly. Noise
n in E then enters as (w n)', with variance ~ sigma_n^2 / rows * (2 pi f)^2
int w^2; a window on the LSF (w n') adds int w'^2 from the taper's slope.
With no w' penalty the flat part was shortened from 1.2 to 1.0 x the rise
(tuned on seeds other than the tests'; 0.8 starts to bias). Against the LSF
window (flat 1.2 x rise, same plateau normalisation) the MTF50 scatter at SNR
10 is ~10% lower; noise-free bias stays < 0.1% over the issue's grid. The
plateau bands extend as far as the ESF stays level (``_band_level``): the step
height scales the whole MTF, so its noise matters at every frequency.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import _validate
from ..exceptions import NumericalError, ParameterError, ScintomoWarning, ShapeError

__all__ = ["EdgeProfile", "edge_profile", "esf_to_mtf"]

OVERSAMPLING = 4
#: Largest ``n_bootstrap`` of :func:`edge_mtf`.
MAX_BOOTSTRAP = 10_000
BOX = True
# adaptive window: half-width = _HALF_PER_RISE x the 10-90 rise (at least
# _MIN_RISE_PX), flat core, cosine taper over the outer _TAPER fraction
_HALF_PER_RISE = 1.5
_TAPER = 0.5 / 1.5
_MIN_RISE_PX = 1.0
_BAD_ANGLES_DEG = (0.0, 14.036, 18.435, 26.565, 45.0)


@dataclass(frozen=True)
class EdgeProfile:
    """Oversampled edge profile.

    ``x_px``: bin centres along the rows relative to the edge (pixels, horizontal
    offset; multiply by ``cos(angle_rad)`` for the distance along the normal);
    ``esf`` (gray values), ``lsf`` (gray value / px along the rows);
    ``angle_rad`` edge tilt from the columns; ``transposed`` when the edge was
    near-horizontal; ``rows_used``; ``contrast`` (high - low, gray values);
    ``noise`` (std of one pixel in the flat parts, gray values); ``fit`` the
    edge column as a polynomial of the row (numpy order); ``row_edges_px`` the
    per-row edge estimates of the last refinement; ``refine_iterations`` and
    ``converged`` of the matched-filter refinement; ``bin_origin_px`` and
    ``bin_range`` locate ``x_px`` in the untrimmed projection; ``row_span``
    (r0, r1): the rows of the oriented ROI that were used (those the edge
    crosses with a margin; ``fit`` and ``row_edges_px`` count rows from r0).
    """

    x_px: np.ndarray
    esf: np.ndarray
    lsf: np.ndarray
    angle_rad: float
    transposed: bool
    rows_used: int
    contrast: float
    noise: float
    fit: np.ndarray = field(repr=False)
    bin_width_px: float = 1.0 / OVERSAMPLING
    polarity: float = 1.0
    row_edges_px: np.ndarray | None = field(default=None, repr=False)
    refine_iterations: int = 0
    converged: bool = True
    bin_origin_px: float = 0.0
    bin_range: tuple = (0, 0)
    row_span: tuple = (0, 0)


def _orient(img: np.ndarray, nt) -> tuple[np.ndarray, bool]:
    """The ROI with its edge along the columns (C-contiguous), and whether it was transposed."""
    from .. import _core

    gx, gy = _core.mtf_gradient_sums(img, n_threads=nt)
    if abs(gy) > abs(gx):
        return np.ascontiguousarray(img.T), True
    return img, False


# rows whose edge crossing lies closer than this to the ROI's left or right
# side are left out when the edge leaves the ROI through a side (px; at most
# 1/8 of the ROI width): their ESF is one-sided
_SIDE_MARGIN_PX = 16
# fewest rows an edge must cross (with the margin) to be measured
_MIN_EDGE_ROWS = 16
# the fitted line may depart from the coarse line by at most this (px, or the
# margin if larger) over the rows used; beyond it the fit followed something else
_COARSE_TOL_PX = 4.0


def _pixel_noise(a: np.ndarray) -> float:
    """Robust pixel noise std (gray values): MAD of horizontal neighbour differences / sqrt 2."""
    # ~16k differences (every s-th row) are plenty for a robust scale, cheaply
    st = max(1, (a.shape[0] * a.shape[1]) // 16384)
    sub = np.asarray(a[:: min(st, max(1, a.shape[0] // 8))], dtype=np.float64)
    dif = np.diff(sub, axis=1).ravel()
    return 1.4826 * float(np.median(np.abs(dif - np.median(dif)))) / math.sqrt(2.0)


def _coarse_line(img: np.ndarray) -> tuple[float, float, float, float]:
    """Coarse edge line of an oriented ROI: (nx, ny, d0, sig_theta) with the
    line nx x + ny y = d0 (x column, y row, px; (nx, ny) the unit normal towards
    the bright side) and the normal's std from noise (rad).

    The normal is the ROI's integrated gradient, which for one straight step
    is contrast x edge length x the unit normal whatever the blur (Gauss's
    theorem: the sum of the boundary values times the outward normal), from
    the mean of the k outer rows/columns on each side (k <= 4, less noise than
    the outermost line alone). d0: the best two-level step fitted to the ROI's
    pixels (every s-th row, <= ~128 rows) binned (1 px) by their distance along
    that normal."""
    h, w = img.shape
    k = max(1, min(4, w // 8, h // 8))
    a = img
    f8 = np.float64
    gx = float(np.sum(a[:, w - k :].mean(axis=1, dtype=f8) - a[:, :k].mean(axis=1, dtype=f8)))
    gy = float(np.sum(a[h - k :, :].mean(axis=0, dtype=f8) - a[:k, :].mean(axis=0, dtype=f8)))
    norm = math.hypot(gx, gy)
    if norm == 0.0:
        raise NumericalError("the ROI has no edge: its sides hold the same values")
    nx, ny = gx / norm, gy / norm
    # the normal's angular std from the pixel noise (robust, from the
    # differences of neighbouring pixels, which the edge barely touches)
    sig = _pixel_noise(a)
    sgx, sgy = sig * math.sqrt(2.0 * h / k), sig * math.sqrt(2.0 * w / k)
    sig_theta = math.hypot(sgx * ny, sgy * nx) / norm
    dmin = min(0.0, nx * (w - 1)) + min(0.0, ny * (h - 1))
    # every s-th row (<= ~128 rows) is enough for a 1 px step location, and the
    # orientation makes |nx| >= |ny|, so the columns carry the resolution
    st = max(1, h // 128)
    rows = np.arange(0, h, st)
    idx = ((nx * np.arange(w) - dmin)[None, :] + (ny * rows)[:, None]).astype(np.intp).ravel()
    cnt = np.bincount(idx).astype(np.float64)
    tot = np.bincount(idx, weights=a[::st].ravel())
    if cnt.size < 5:
        raise NumericalError("the ROI is too small to locate an edge")
    # the least-squares two-level step along the normal (split between bins
    # i and i + 1): robust at SNR 1, where the ESF's steepest point is noise
    nl, sl = np.cumsum(cnt)[:-1], np.cumsum(tot)[:-1]
    nr, sr = cnt.sum() - nl, tot.sum() - sl
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (sl / nl - sr / nr) ** 2 * nl * nr
    gain[~np.isfinite(gain)] = -1.0
    i = int(np.argmax(gain))
    d0 = dmin + float(i) + 1.0
    return nx, ny, d0, sig_theta


def _edge_rows(img: np.ndarray) -> tuple[int, int, tuple[float, float, float, float]]:
    """Rows [r0, r1) of an oriented ROI (edge along the columns) that the edge
    crosses, and the coarse line.

    An edge that crosses the top and the bottom keeps all rows. One that
    leaves through the left or right side (steep edges in tall ROIs: 40 deg in
    512 x 128) keeps the rows where it lies at least the margin inside: the
    others hold no edge, or only one side of it, and fitting them gave a wrong
    angle and MTF without a word (issue 16)."""
    h, w = img.shape
    nx, ny, d0, sig_theta = _coarse_line(img)
    if abs(nx) < 1e-12:
        raise NumericalError("the edge runs along the rows after orientation: no edge?")
    rows = np.arange(h, dtype=np.float64)
    xr = (d0 - ny * rows) / nx
    if np.all((xr >= 0) & (xr <= w - 1)):
        return 0, h, (nx, ny, d0, sig_theta)
    m = max(2, min(_SIDE_MARGIN_PX, w // 8))
    inside = np.nonzero((xr >= m) & (xr <= w - 1 - m))[0]
    if inside.size < _MIN_EDGE_ROWS:
        lo, hi = np.percentile(img, [0.5, 99.5])
        if hi - lo <= _FLAT_SPREAD_NOISE * _pixel_noise(img.astype(np.float64, copy=False)):
            raise NumericalError(
                "no single edge in the ROI: the ROI looks flat (its values vary within the "
                "noise). Give an ROI (--roi) holding one straight edge between two flat regions"
            )
        raise NumericalError(
            f"the edge crosses only {inside.size} rows of the {h} x {w} ROI (oriented) "
            f"at least {m} px inside it (fewer than {_MIN_EDGE_ROWS}): it leaves the ROI "
            "through its sides. Give an ROI that the edge crosses from one side to the "
            "opposite one, along its length"
        )
    return int(inside[0]), int(inside[-1]) + 1, (nx, ny, d0, sig_theta)


def edge_profile(
    image,
    *,
    roi=None,
    fit_order: int = 1,
    oversampling: int = OVERSAMPLING,
    warn: bool = True,
    refine: int = 20,
    n_threads=None,
) -> EdgeProfile:
    """Oversampled ESF/LSF of a slanted edge (ISO 12233 projection).

    The edge line comes from the ISO 12233 derivative centroids, then centroids
    in windows around the line (halved down to +-8 px), then matched-filter
    refinements (per-row least-squares shift against the projected ESF, robust
    refit) repeated until the line moves by less than 0.001 px.

    Parameters
    ----------
    image : (H, W) array, gray values
    roi : (r0, r1, c0, c1) or None, rows/columns (half-open) to analyse
    fit_order : 1 (line) or 2 (quadratic edge, ISO 12233:2023)
    oversampling : bins per pixel (4 in ISO 12233)
    warn : emit :class:`ScintomoWarning` for bad angles, low contrast, clipping
    refine : matched-filter refinements of the edge line at most (stops earlier
        once converged)

    Returns
    -------
    EdgeProfile
    """
    return _edge_profile(
        image,
        roi=roi,
        fit_order=fit_order,
        oversampling=oversampling,
        warn=warn,
        refine=refine,
        n_threads=n_threads,
    )[0]


def _edge_profile(image, *, roi, fit_order, oversampling, warn, refine, n_threads):
    """:func:`edge_profile` plus the oriented ROI (for the bootstrap)."""
    from .. import _core

    arr = _validate.as_array(image, "image")
    if arr.ndim != 2:
        raise ShapeError(f"image must be 2-D, got shape {arr.shape}")
    if roi is not None:
        r0, r1, c0, c1 = (int(v) for v in roi)
        if not (0 <= r0 < r1 <= arr.shape[0] and 0 <= c0 < c1 <= arr.shape[1]):
            raise ParameterError(f"roi {roi} outside the image of shape {arr.shape}")
        arr = arr[r0:r1, c0:c1]
    _validate.check_nonempty(arr, "image")
    _validate.check_finite(arr, "image")
    if fit_order not in (1, 2):
        raise ParameterError(f"fit_order must be 1 or 2, got {fit_order}")
    if oversampling < 1:
        raise ParameterError(f"oversampling must be >= 1, got {oversampling}")
    if refine < 0:
        raise ParameterError(f"refine must be >= 0, got {refine}")
    nt = _validate.n_threads_arg(n_threads)
    if min(arr.shape) < 8:
        raise ShapeError(f"the edge ROI must be at least 8 x 8 px, got {arr.shape}")
    img, transposed = _orient(arr, nt)
    r_lo, r_hi, (cnx, cny, cd0, csig) = _edge_rows(img)
    if (r_lo, r_hi) != (0, img.shape[0]):
        img = img[r_lo:r_hi]
    h, w = img.shape
    # clipping check on the raw values
    if warn and np.issubdtype(arr.dtype, np.integer):
        # ADC saturation: many pixels at a full-scale code (2^k - 1) or at 0
        vmax, vmin = int(arr.max()), int(arr.min())
        full_scale = vmax + 1 in {1 << k for k in range(8, 33)}
        frac = max(
            float(np.mean(arr == vmax)) if full_scale else 0.0,
            float(np.mean(arr == vmin)) if vmin == 0 else 0.0,
        )
        if frac > 0.02:
            warnings.warn(
                f"{100 * frac:.0f}% of the ROI sits at full scale or 0: clipped edge?",
                ScintomoWarning,
                stacklevel=3,
            )
    r = _core.mtf_fit_edge(
        img, fit_order=fit_order, oversampling=oversampling, max_refine=refine, n_threads=nt
    )
    fit = np.asarray(r["coeffs"][::-1], dtype=np.float64)
    rows_used = int(r["rows_used"])
    # the fine line must follow the coarse one (else it fitted rows that hold no
    # edge, or another feature): an error rather than a wrong MTF
    yy = np.arange(h, dtype=np.float64)
    dev = np.abs(np.polyval(fit, yy) - (cd0 - cny * (yy + r_lo)) / cnx)
    # plus 3 std of the coarse line's tilt (noisy edges) and 2 px for its offset
    tol = max(_COARSE_TOL_PX, min(_SIDE_MARGIN_PX, w // 8))
    tol += 3.0 * csig * float(np.abs(yy - yy.mean()).max()) / cnx**2 + 2.0
    if not np.all(np.isfinite(dev)) or float(dev.max()) > tol:
        raise NumericalError(
            "no single straight edge in the ROI: the fitted edge line departs from the "
            f"line of the ROI's step by up to {float(dev.max()):.3g} px (more than {tol:.3g} "
            "px), as for two edges, a line or a curved edge. Give an ROI (--roi) holding one "
            "straight edge between two flat regions"
        )
    slope = float(np.polyval(np.polyder(fit), (h - 1) / 2))
    adeg = abs(math.degrees(math.atan(slope)))
    if warn and any(abs(adeg - b) < 1.0 for b in _BAD_ANGLES_DEG):
        warnings.warn(
            f"edge angle {adeg:.2f} deg is within 1 deg of an angle where the phases of "
            "the rows repeat (0, 14.04, 18.43, 26.57, 45 deg): the 4x bins are "
            "poorly filled; tilt the edge (e.g. 5 deg)",
            ScintomoWarning,
            stacklevel=3,
        )
    elif warn:
        # a short edge can miss phases at any angle (16 rows at 89 or 46 deg gave
        # MTF50 5% low without a word): every quarter-pixel phase of the edge
        # over the rows used must hold at least a third of its even share
        ph = np.polyval(fit, np.arange(h, dtype=np.float64)) % 1.0
        share = np.bincount(np.minimum((ph * 4).astype(int), 3), minlength=4) / (h / 4)
        if share.min() < 1 / 3:
            warnings.warn(
                f"the edge's sub-pixel phases over its {h} rows leave a quarter-pixel bin "
                f"nearly empty ({share.min():.2f} of its share): the 4x bins are poorly "
                "filled; use a longer edge or tilt it (e.g. 5 deg)",
                ScintomoWarning,
                stacklevel=3,
            )
    sums, psum, cnt = (np.asarray(r[k]) for k in ("sums", "psum", "counts"))
    lo = float(r["origin"])
    nb = sums.size
    centres = lo + (np.arange(nb) + 0.5) / oversampling
    good = cnt > 0
    if good.sum() < 8:
        raise NumericalError("too few populated bins: is there an edge in the ROI?")
    # each bin's mean value at its mean sample position, resampled on the regular grid
    esf = np.interp(centres, psum[good] / cnt[good], sums[good] / cnt[good])
    slope = float(np.polyval(np.polyder(fit), (h - 1) / 2))
    angle = math.atan(slope)
    nb = centres.size
    # trim the sparsely populated ends (bins only some rows reach)
    full = cnt >= 0.5 * np.median(cnt[good])
    i0, i1 = int(np.argmax(full)), nb - int(np.argmax(full[::-1]))
    centres, esf = centres[i0:i1], esf[i0:i1]
    lsf = np.zeros_like(esf)
    lsf[1:-1] = (esf[2:] - esf[:-2]) * (oversampling / 2.0)
    lsf[0], lsf[-1] = lsf[1], lsf[-2]
    # contrast and noise from the flat parts (outer 20% each side)
    k = max(4, esf.size // 5)
    low_v, high_v = float(np.median(esf[:k])), float(np.median(esf[-k:]))
    contrast = high_v - low_v
    if contrast < 0:
        esf_sign = -1.0
    else:
        esf_sign = 1.0
    noise = float(r["noise"])
    if warn and abs(contrast) < 5 * noise:
        warnings.warn(
            f"low edge contrast: {abs(contrast):.3g} vs noise {noise:.3g} (SNR "
            f"{abs(contrast) / max(noise, 1e-30):.1f}); the MTF will be noisy",
            ScintomoWarning,
            stacklevel=3,
        )
    prof = EdgeProfile(
        x_px=centres,
        esf=esf * esf_sign,
        lsf=lsf * esf_sign,
        angle_rad=angle,
        transposed=transposed,
        rows_used=int(rows_used),
        contrast=abs(contrast),
        noise=noise,
        fit=fit,
        bin_width_px=1.0 / oversampling,
        polarity=esf_sign,
        row_edges_px=np.asarray(r["edges"]),
        refine_iterations=int(r["iterations"]),
        converged=bool(r["converged"]),
        bin_origin_px=lo,
        bin_range=(i0, i1),
        row_span=(r_lo, r_hi),
    )
    return prof, img


def _tukey(n: int, centre: float, half: float, alpha: float = 0.5) -> np.ndarray:
    x = np.abs(np.arange(n) - centre) / max(half, 1e-9)
    w = np.ones(n)
    edge = 1 - alpha
    m = x > edge
    w[m] = 0.5 * (1 + np.cos(np.pi * (x[m] - edge) / alpha))
    w[x >= 1] = 0.0
    return w


# Long tails at low SNR (issue 16 item 3): when the adaptive window had to grow
# beyond _TAIL_GROWTH x its starting half-width (the ESF still moves far from the
# edge: the film's halo), the ESF beyond _TAIL_CORE x that starting half-width is
# replaced, on each side, by its least-squares fit P + A exp(-u / L) (L on a
# log grid, P and A linear), and the window spans the whole available ESF. The
# core stays non-parametric (no bias there); the tail's noise, which the long
# window collected, is gone. Measured on MixturePSF edges (w, sigma, b) =
# (0.8, 0.8, 12), (0.9, 0.6, 20), (0.7, 1.0, 6) px, 300 x 256, 5 deg, SNR 10,
# 12 seeds: max MTF50 error 5.5 / 3.5 / 6.6% (adaptive window alone: 11.5 /
# 20.9 / 9.9%), MTF(0.02 c/px) within 0.007 (alone: 0.03); 0.7 x was the best
# of 0.5 / 0.7 / 1.0 on those seeds.
_TAIL_GROWTH = 1.4
_TAIL_CORE = 0.7
# The core's half-width: 2.5 x the 25-75% rise (3.4 sigma for a Gaussian core),
# at most the 0.7 x start above. The 10-90% rise of a strong tail (w = 0.8) lies
# in the tail itself, which made the non-parametric core, and its noise, several
# times wider than the Gaussian part it has to hold; the 25-75% rise stays in
# that part. Over MixturePSF edges w 0.8/0.9/0.95 x b 10/20/40 px x sigma 0.6/1.0
# px x 3/5/11 deg x 8 seeds (432 per row count), SNR 10, max / p95 |MTF50 error|:
# 300 rows 15.1 / 6.0% -> 7.7 / 4.4%, 512 rows 11.4 / 4.3% -> 6.4 / 3.9%
# (bias +0.4 / +0.7%); x2 and x3 traded bias for scatter either way.
_TAIL_CORE_PER_IQR = 2.5
# ... where one ESF bin's noise exceeds this fraction of the step (SNR 10: 1.2% at
# 300 rows, 0.9% at 512; SNR 50: 0.2%). At SNR 50 the narrow core's misfit bias
# (+0.7% MTF50) exceeded the scatter it saves, so there the wide core stays.
_TAIL_NARROW_NOISE = 0.005
# The 95% band and interval of a tail-model MTF add, in quadrature, the change
# of the MTF when the core is 1.4x wider: the model's own uncertainty, which
# the bootstrap (same model on every resample) does not see.
_TAIL_ALT_CORE = 1.4
_TAIL_L_PX = np.geomspace(0.3, 300.0, 48)


def _start_half(prof: EdgeProfile) -> float:
    """The adaptive window's starting half-width (px), as in :func:`_adaptive_half_width`."""
    try:
        rise = _rise_10_90(prof.x_px, prof.esf * math.copysign(1.0, prof.esf[-1] - prof.esf[0]))
    except (ValueError, IndexError):
        rise = 4.0
    return _HALF_PER_RISE * max(_MIN_RISE_PX, rise) if math.isfinite(rise) else 16.0


def _tail_model_esf(esf, peak: int, core_px: float, reach_px: float, dx: float):
    """``esf`` (one or a stack, last axis) with the bins between core_px and
    reach_px from the peak (each side) replaced by the fitted exponential tail."""
    out = np.array(esf, dtype=np.float64, copy=True)
    y2 = out.reshape(-1, out.shape[-1])
    off = (np.arange(out.shape[-1]) - peak) * dx
    for side in (-1.0, 1.0):
        sel = np.nonzero((side * off >= core_px) & (side * off <= reach_px))[0]
        if sel.size < 6:
            continue
        u = side * off[sel] - core_px
        ys = y2[:, sel].T  # (bins, esfs)
        # P + A e for every L at once by the 2 x 2 normal equations, the
        # residual in closed form (no lstsq per L: ~20 ms each on contended cores)
        n = float(u.size)
        e = np.exp(-u[None, :] / _TAIL_L_PX[:, None])  # (L, bins)
        se, see = e.sum(axis=1)[:, None], np.einsum("lb,lb->l", e, e)[:, None]
        sy, syy = ys.sum(axis=0)[None, :], np.einsum("be,be->e", ys, ys)[None, :]
        sey = e @ ys  # (L, esfs)
        det = n * see - se * se
        ok = det > 1e-12 * n * see
        det = np.where(ok, det, 1.0)
        amp = np.where(ok, (n * sey - se * sy) / det, 0.0)
        lev = np.where(ok, (sy - amp * se) / n, sy / n)
        r = syy - 2 * (lev * sy + amp * sey) + n * lev**2 + 2 * lev * amp * se + amp**2 * see
        best = np.argmin(r, axis=0)  # (esfs,)
        cols = np.arange(ys.shape[1])
        fit = lev[best, cols][None, :] + e[best].T * amp[best, cols][None, :]
        y2[:, sel] = fit.T
    return out


def _analysis_window(prof: EdgeProfile, half_width_px: float | None):
    """(peak bin, half-width px, tail core px or None) of the MTF's window."""
    peak, half = _window(prof, half_width_px)
    if half_width_px is not None:
        return peak, half, None
    h0 = _start_half(prof)
    if half <= _TAIL_GROWTH * h0:
        return peak, half, None
    avail = min(peak, prof.esf.size - 1 - peak) * prof.bin_width_px
    try:
        q = _rise_10_90(
            prof.x_px, prof.esf * math.copysign(1.0, prof.esf[-1] - prof.esf[0]), 0.25, 0.75
        )
    except (ValueError, IndexError):
        q = float("nan")
    wide = _TAIL_CORE * h0
    # noise of one ESF bin over the step height: the narrow core only where the
    # noise, not the tail model's misfit, is what limits the estimate
    per_bin = prof.noise / math.sqrt(max(prof.rows_used * prof.bin_width_px, 1.0))
    if not (math.isfinite(q) and per_bin > _TAIL_NARROW_NOISE * max(prof.contrast, 1e-300)):
        return peak, 0.98 * avail, wide
    return peak, 0.98 * avail, min(_TAIL_CORE_PER_IQR * max(q, 0.5), wide)


def _esf_mtf(prof: EdgeProfile, half_width_px: float | None, n_fft: int = 8192):
    """(f, mtf, peak, half, tail core px or None): :func:`esf_to_mtf` with the tail model."""
    peak, half, core = _analysis_window(prof, half_width_px)
    esf = prof.esf
    if core is not None:
        esf = _tail_model_esf(esf, peak, core, half, prof.bin_width_px)
    f, m = _esf_window_mtf(
        esf,
        peak,
        half,
        prof.bin_width_px,
        prof.angle_rad,
        n_fft,
        plateau=half_width_px is None and core is None,
    )
    return f, m, peak, half, core


def esf_to_mtf(prof: EdgeProfile, *, half_width_px: float | None = None, n_fft: int = 8192):
    """MTF from an :class:`EdgeProfile`.

    ``half_width_px``: ESF extent kept each side of the LSF peak (pixels along
    the rows); None: adaptive (grown until the ESF tails are flat within noise).
    The window acts on the ESF minus its step (see the module doc). The adaptive
    window's step levels are the ESF plateaus just outside it; a given
    ``half_width_px`` takes them from the ESF under the window's tapers, which
    makes the f = 0 value the windowed LSF's area, as MTF Mapper's truncated
    window (the low-frequency drop beyond the window is not seen).
    A long tail (the adaptive window grew beyond 1.4 x its start) is fitted
    (exponential, each side) beyond 0.7 x the starting half-width and the
    window spans the whole ESF (see ``_TAIL_CORE``).
    Returns (frequencies cycles/px along the normal, mtf, half_width_px used).
    """
    f, m, _, half, _ = _esf_mtf(prof, half_width_px, n_fft)
    return f, m, half


def _plateau_span(n: int, peak: int, half: float, dx: float) -> tuple[int, int, int]:
    """(i0, i1, d): the window's bin span [i0, i1) as in :func:`_esf_window_mtf`
    and the plateau band length d (bins) just outside it on each side."""
    i0, i1 = max(0, int(peak - half / dx) - 1), min(n, int(peak + half / dx) + 2)
    return i0, i1, int(round(max(half, 4.0) / dx))


# The plateau band is extended beyond its near part (max(half, 4) px) to
# max(_FAR_PER_HALF x half, _FAR_MIN_PX) px where the ESF there stays at the near
# part's level within 3 sigma of the bins' noise (else, a tail or another feature
# in the ROI, the near part alone is kept). The step height normalises the whole
# MTF, so its noise is a scale error at every frequency: over the grid
# at SNR 10 the MTF50 p95 goes from 3.37 to 3.17% (300 rows) and from 2.65 to
# 2.54% (512 rows), noise-free bias unchanged (< 0.1%).
_FAR_PER_HALF = 8.0
_FAR_MIN_PX = 32.0


def _far_bins(half: float, dx: float) -> int:
    """Length (bins) of the extended plateau band on each side."""
    return int(round(max(_FAR_PER_HALF * half, _FAR_MIN_PX) / dx))


def _band_level(near, far):
    """Mean of the near band, or of near and far together where the far band's
    mean agrees with the near one's within 3 sigma (noise from the far band's
    neighbour differences, MAD); one level per ESF on the last axis."""
    mn = near.mean(axis=-1)
    if far.shape[-1] < 4:
        return mn
    mf = far.mean(axis=-1)
    dif = np.diff(far, axis=-1)
    mad = np.median(np.abs(dif - np.median(dif, axis=-1, keepdims=True)), axis=-1)
    sig = 1.4826 * mad / math.sqrt(2.0)
    nn, nf = near.shape[-1], far.shape[-1]
    agree = np.abs(mf - mn) <= 3.0 * sig * math.sqrt(1.0 / nn + 1.0 / nf)
    return np.where(agree, (mn * nn + mf * nf) / (nn + nf), mn)


def _step_levels(esf, peak: int, half: float, dx: float, win, plateau: bool, far_esf=None):
    """(low, high) step levels (gray values, one per ESF on the last axis).

    Taper levels: the ESF under each taper weighted by the taper's slope, so
    that the step's height is the windowed LSF's area. Plateau levels
    (``plateau``): the mean ESF over bands of max(half, 4) px just outside the
    window (extended, where the ESF beyond stays level, up to
    max(8 half, 32) px: :func:`_band_level`), used where both bands hold >= 4
    bins and the contrast they give agrees with the taper levels' within 2x
    (else there is no plateau). ``far_esf``: the ESF whose extended bands are
    used (default ``esf``; the bootstrap passes the measured one, so that its
    resamples need not be projected that far)."""
    i0, i1, d = _plateau_span(esf.shape[-1], peak, half, dx)
    dl = max(d, _far_bins(half, dx))
    fe = esf if far_esf is None else far_esf
    # E_i's weight in the windowed LSF's area sum_j w_j (E_j+1 - E_j-1) / 2
    wp = np.concatenate([[0.0], win, [0.0]])
    g = 0.5 * (wp[2:] - wp[:-2])
    c = peak - i0
    gl, gr = np.where(np.arange(win.size) < c, g, 0.0), np.where(np.arange(win.size) > c, -g, 0.0)
    left = esf[..., i0:i1] @ (gl / max(gl.sum(), 1e-300))
    right = esf[..., i0:i1] @ (gr / max(gr.sum(), 1e-300))
    if plateau:
        a, b = esf[..., max(0, i0 - d) : i0], esf[..., i1 : i1 + d]
        if a.shape[-1] >= 4 and b.shape[-1] >= 4:
            pl = _band_level(a, fe[..., max(0, i0 - dl) : max(0, i0 - d)])
            pr = _band_level(b, fe[..., i1 + d : i1 + dl])
            ratio = (pr - pl) / np.where(right == left, 1e-300, right - left)
            ok = (ratio > 0.5) & (ratio < 2.0)
            left, right = np.where(ok, pl, left), np.where(ok, pr, right)
    return np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)


def _window(prof: EdgeProfile, half_width_px: float | None) -> tuple[int, float]:
    """(peak bin, half-width px) of the LSF window."""
    dx = prof.bin_width_px
    lsf = prof.lsf
    n = lsf.size
    # the fitted edge is at x = 0; the LSF peak is searched within +-8 px of it
    near = np.abs(prof.x_px) <= 8
    sm = np.convolve(lsf, np.ones(5) / 5, mode="same")
    peak = int(np.argmax(np.where(near, sm, -np.inf))) if near.any() else int(np.argmax(sm))
    avail = min(peak, n - 1 - peak) * dx
    if half_width_px is None:
        half_width_px = _adaptive_half_width(prof, peak, avail)
    half = min(half_width_px, avail)
    if half < min(2.0, half_width_px):
        raise NumericalError("the edge is too close to the ROI border to measure an MTF")
    return peak, half


def _esf_window_mtf(esf, peak, half, dx, angle_rad, n_fft=8192, *, plateau=True, far_esf=None):
    """MTF of one ESF or a stack of them (last axis) with the window applied in
    the ESF domain; frequencies in cycles/px along the normal up to 1.

    The ESF E is split into a step S (levels from :func:`_step_levels`, the jump
    at the LSF peak) and the rest D = E - S; the window w multiplies D, and the
    LSF is the central difference of G = S + w D = w E + (1 - w) S. Inside the
    window's flat part G = E; beyond it G goes to the step's levels, and D ~ 0
    there for a window that holds the edge, so the taper costs no bias; noise n
    in E enters as (w n)' alone (no w' n term as for a window on the LSF). The
    |DFT| is divided by the step height (f = 0 value exactly 1), the
    difference filter's and the bin box's responses."""
    i0, i1, _ = _plateau_span(esf.shape[-1], peak, half, dx)
    win = _tukey(i1 - i0, peak - i0, half / dx, _TAPER)
    low, high = _step_levels(esf, peak, half, dx, win, plateau, far_esf)
    contrast = high - low
    if np.any(contrast == 0):
        raise NumericalError("the ESF has no step: no edge?")
    n = i1 - i0
    step = np.where(np.arange(n) < peak - i0, low[..., None], high[..., None])
    g = win * esf[..., i0:i1] + (1.0 - win) * step
    # central difference with the step's levels continued beyond the span
    gp = np.concatenate([low[..., None], g, high[..., None]], axis=-1)
    lw = (gp[..., 2:] - gp[..., :-2]) * 0.5
    nf = max(n_fft, 1 << int(math.ceil(math.log2(max(n, 2)))))
    fh = np.fft.rfftfreq(nf, d=dx)  # cycles per px along the rows
    cos_a = math.cos(angle_rad)
    keep = fh / cos_a <= 1.0
    spec = np.abs(np.fft.rfft(lw, nf)[..., keep]) / np.abs(contrast)[..., None]
    fh = fh[keep]
    # central difference over 2 bins and the bin box
    corr = np.sinc(2 * fh * dx) * (np.sinc(fh * dx) if BOX else 1.0)
    return fh / cos_a, spec / np.maximum(corr, 0.1)


# the band just outside the window that must match the plateau for the window to
# stop growing: 0.5 x half, at least this (px). 1.4 px (0.5 x half of a sharp
# edge) left a 5% tail unseen in 6 of 432 MixturePSF edges at 300 rows, SNR 10
# (MTF(0.02) 0.037-0.047 high); 4 px averages the noise enough to see it.
_GROW_BAND_MIN_PX = 4.0


def _adaptive_half_width(prof: EdgeProfile, peak: int, avail: float) -> float:
    """Half-width from the 10-90 rise, grown (x1.5) until the ESF beyond it is
    flat within noise (long tails)."""
    dx = prof.bin_width_px
    esf = prof.esf
    # noise of one bin mean: per-pixel noise / sqrt(rows per bin)
    per_bin = max(prof.rows_used * dx, 1.0)
    sig = prof.noise / math.sqrt(per_bin)
    # start from the core width (10-90 rise), grow while the tails still move
    try:
        rise = _rise_10_90(prof.x_px, esf * math.copysign(1.0, esf[-1] - esf[0]))
    except (ValueError, IndexError):
        rise = 4.0
    half = _HALF_PER_RISE * max(_MIN_RISE_PX, rise) if math.isfinite(rise) else 16.0
    # plateaus: the outer quarter of the available ESF on each side
    n_out = max(8, int(0.25 * avail / dx))
    left_p = float(
        np.mean(esf[max(0, peak - int(avail / dx)) : max(1, peak - int(avail / dx) + n_out)])
    )
    right_p = float(np.mean(esf[peak + int(avail / dx) - n_out + 1 : peak + int(avail / dx) + 1]))
    while half * 1.5 <= avail:
        lo_i = int(peak - half / dx)
        hi_i = int(peak + half / dx)
        outer = int(max(0.5 * half, _GROW_BAND_MIN_PX) / dx)
        a = esf[max(0, lo_i - outer) : lo_i]
        b = esf[hi_i : hi_i + outer]
        if a.size < 4 or b.size < 4:
            break
        # does the ESF just outside the window still differ from its plateau?
        da = abs(float(np.mean(a)) - left_p)
        db = abs(float(np.mean(b)) - right_p)
        thr = 3 * sig * math.sqrt(1.0 / a.size + 1.0 / n_out) + 1e-3 * prof.contrast
        if max(da, db) <= thr:
            break
        half *= 1.5
    return min(half, avail)


def _crossing(f, m, level):
    """First frequency where ``m`` falls to ``level`` (linear interpolation)."""
    below = np.nonzero(m < level)[0]
    below = below[below > 0]
    if below.size == 0:
        return float("nan")
    i = int(below[0])
    f0, f1, m0, m1 = f[i - 1], f[i], m[i - 1], m[i]
    return float(f0 + (m0 - level) * (f1 - f0) / (m0 - m1))


def _crossings(f, ms, level) -> np.ndarray:
    """:func:`_crossing` of every row of ``ms`` at once (NaN where none)."""
    below = ms[:, 1:] < level
    i = np.argmax(below, axis=1) + 1
    found = below.any(axis=1)
    r = np.arange(ms.shape[0])
    f0, f1, m0, m1 = f[i - 1], f[i], ms[r, i - 1], ms[r, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = f0 + (m0 - level) * (f1 - f0) / (m0 - m1)
    return np.where(found, x, np.nan)


def _rise_10_90(x, esf, lo_q: float = 0.1, hi_q: float = 0.9):
    """Distance (units of ``x``) over which the ESF rises from ``lo_q`` to ``hi_q``
    of its step (plateaus: medians of the outer fifths)."""
    lo, hi = np.median(esf[: max(4, esf.size // 5)]), np.median(esf[-max(4, esf.size // 5) :])
    e = (esf - lo) / (hi - lo)
    # monotone envelope to be robust to noise
    em = np.maximum.accumulate(e)
    return float(np.interp(hi_q, em, x) - np.interp(lo_q, em, x))


def _fwhm(x, lsf):
    i = int(np.argmax(lsf))
    half = lsf[i] / 2
    left = np.nonzero(lsf[:i] < half)[0]
    right = np.nonzero(lsf[i:] < half)[0]
    if left.size == 0 or right.size == 0:
        return float("nan")
    a, b = left[-1], i + right[0]
    xl = np.interp(half, [lsf[a], lsf[a + 1]], [x[a], x[a + 1]])
    xr = np.interp(half, [lsf[b], lsf[b - 1]], [x[b], x[b - 1]])
    return float(xr - xl)


# A single edge's ESF goes from one level to the other: the step between the
# two sides is most of the profile's whole range (>= 0.58 of it down to SNR 1
# in tests, where noise widens the range). A line or slit rises and falls back,
# a bar has two edges, a flat field has no step: their step is <= 0.1 of the
# range. The range is taken on the ESF averaged over 2 px (8 bins).
_MIN_STEP_OF_RANGE = 0.3
# a flat ROI: its 0.5-99.5 percentile spread is that of Gaussian noise (5.2 sigma)
_FLAT_SPREAD_NOISE = 8.0


def _check_single_edge(prof: EdgeProfile, roi_pixels: np.ndarray) -> None:
    """Raise NumericalError unless the profile is one step (not a slit, bar or flat ROI)."""
    n = max(1, min(2 * int(round(1 / prof.bin_width_px)), prof.esf.size))
    smooth = np.convolve(prof.esf, np.ones(n) / n, mode="valid")
    spread = float(smooth.max() - smooth.min())
    if prof.contrast >= _MIN_STEP_OF_RANGE * spread and prof.contrast > 0:
        return
    lo, hi = np.percentile(roi_pixels, [0.5, 99.5])
    what = (
        "the ROI looks flat (its values vary within the noise)"
        if hi - lo <= _FLAT_SPREAD_NOISE * prof.noise
        else "the profile rises and falls back (a line or slit, or a bar with two edges)"
    )
    raise NumericalError(
        f"no single edge in the ROI: the two sides differ by {prof.contrast:.3g} while the "
        f"profile across the edge spans {spread:.3g}; {what}. Give an ROI (--roi) holding one "
        "straight edge between two flat regions"
    )


def edge_mtf(
    image,
    *,
    roi=None,
    pixel_size=None,
    fit_order: int = 1,
    half_width_px: float | None = None,
    n_bootstrap: int = 50,
    seed=0,
    n_threads=None,
):
    """Slanted-edge MTF (ISO 12233:2017 e-SFR with an adaptive ESF extent).

    Parameters
    ----------
    image : (H, W) array, a straight edge tilted a few degrees from the rows or
        columns (avoid 0, 14.04, 26.57, 45 deg)
    roi : (r0, r1, c0, c1) or None
    pixel_size : pixel size (um as a number, or a string such as ``"0.185um"``);
        enables the lp/mm views
    fit_order : 1 (line) or 2 (quadratic edge)
    half_width_px : LSF extent each side (px); None: adaptive (see module doc)
    n_bootstrap : resamples over rows for the confidence band (0: none; at
        most ``MAX_BOOTSTRAP`` = 10000)
    seed : bootstrap seed

    Returns
    -------
    MTF
    """
    from .result import MTF

    px_um = _validate.length_um(pixel_size)
    if (
        isinstance(n_bootstrap, bool)
        or not isinstance(n_bootstrap, (int, np.integer))
        or not 0 <= n_bootstrap <= MAX_BOOTSTRAP
    ):
        # 10^7 resamples aborted the process allocating them (issue 17); a
        # 95 % band is settled long before 10^4.
        raise ParameterError(
            f"n_bootstrap must be an integer in [0, {MAX_BOOTSTRAP}], got {n_bootstrap!r}"
        )
    # the profile's warnings (low contrast ...) are kept until the ROI is known to
    # hold an edge: for a slit or a flat ROI the error alone says what is wrong
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prof, oriented = _edge_profile(
            image,
            roi=roi,
            fit_order=fit_order,
            oversampling=OVERSAMPLING,
            warn=True,
            refine=20,
            n_threads=n_threads,
        )
    _check_single_edge(prof, oriented)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    f, m, peak, half, core = _esf_mtf(prof, half_width_px)
    model_dev = None
    if core is not None and n_bootstrap:
        alt = _tail_model_esf(prof.esf, peak, min(_TAIL_ALT_CORE * core, 0.9 * half), half,
                              prof.bin_width_px)  # fmt: skip
        fa, ma = _esf_window_mtf(
            alt, peak, half, prof.bin_width_px, prof.angle_rad, 2048, plateau=False
        )
        model_dev = np.abs(np.interp(f, fa, ma) - m)
    # low-frequency drop relative to the +-16 px truncation (MTF Mapper)
    f16, m16, _ = esf_to_mtf(prof, half_width_px=16.0)
    band_f = (f >= 0.01) & (f <= 0.05)
    lf_drop = float(np.mean(np.interp(f[band_f], f16, m16) - m[band_f])) if band_f.any() else 0.0
    nyq = float(np.interp(0.5, f, m))
    mtf50, mtf20, mtf10 = (_crossing(f, m, lv) for lv in (0.5, 0.2, 0.1))
    # bootstrap over rows
    lo_b = hi_b = None
    ci = (float("nan"), float("nan"))
    if n_bootstrap:
        # over rows: resampled rows (with their own pixels) refit the edge line
        # through their per-row edge estimates and are projected again (Rust)
        from .. import _core

        # the resampled ESFs, then their windowed spectra (2048 complex each)
        _validate.check_memory(
            n_bootstrap * (prof.esf.size * 8.0 * 2 + 2048 * 16.0 * 2),
            f"n_bootstrap = {n_bootstrap}",
        )

        full = np.asarray(prof.row_edges_px, dtype=np.float64)
        i0, i1 = prof.bin_range
        # only the window, the plateau bands of its normalisation and a margin
        # for the difference filter are projected
        xp = float(prof.x_px[peak])
        reach = half + (max(half, 4.0) if half_width_px is None else 0.0) + 2.0
        esfs = np.asarray(
            _core.mtf_bootstrap_esf(
                oriented,
                full,
                fit_order,
                prof.bin_origin_px,
                int(i1),
                int(round(1 / prof.bin_width_px)),
                int(n_bootstrap),
                int(np.random.SeedSequence(seed).generate_state(1)[0]),
                lo=xp - reach,
                hi=xp + reach,
                n_threads=_validate.n_threads_arg(n_threads),
            )
        )[:, i0:i1]
        esfs = esfs[np.all(np.isfinite(esfs), axis=1)]
        if esfs.shape[0]:
            esfs = esfs * prof.polarity
            if core is not None:
                esfs = _tail_model_esf(esfs, peak, core, half, prof.bin_width_px)
            fb, mb = _esf_window_mtf(
                esfs,
                peak,
                half,
                prof.bin_width_px,
                prof.angle_rad,
                2048,
                plateau=half_width_px is None and core is None,
                far_esf=prof.esf,
            )
            # 95% band and interval: the estimate +- 1.96 x the resamples' std (on
            # their own, coarser grid, then onto f). The 2.5 / 97.5 percentiles of
            # 50 resamples (the 1st-2nd order statistics) were too narrow: the
            # MTF50 interval held the truth in 92% of 216 Gaussian edges (sigma
            # 0.27/1.2/3.1 px x 3/11/33 deg x 300/512 rows, SNR 10) and 87-92% of
            # 864 long-tail ones; with the std, 96% and 91-95%.
            sd = np.interp(f, fb, np.std(mb, axis=0, ddof=1)) if mb.shape[0] > 2 else 0.0 * f
            dev = 0.0 * f if model_dev is None else model_dev
            hw = np.hypot(1.96 * sd, dev)
            lo_b, hi_b = np.maximum(m - hw, 0.0), m + hw
            m50a = _crossings(fb, mb, 0.5)
            m50a = m50a[np.isfinite(m50a)]
            if m50a.size > 2 and math.isfinite(mtf50):
                hw50 = 1.96 * float(np.std(m50a, ddof=1))
                if model_dev is not None:
                    # the MTF's change over its local slope: the MTF50's change
                    slope = abs(float(np.interp(mtf50, f, np.gradient(m, f))))
                    hw50 = math.hypot(hw50, float(np.interp(mtf50, f, dev)) / max(slope, 1e-12))
                ci = (mtf50 - hw50, mtf50 + hw50)
    x_norm = prof.x_px * math.cos(prof.angle_rad)
    lsf_norm = prof.lsf / math.cos(prof.angle_rad)
    return MTF(
        frequencies=f,
        values=m,
        mtf50=mtf50,
        mtf20=mtf20,
        mtf10=mtf10,
        value_at_nyquist=nyq,
        lsf_fwhm_px=_fwhm(x_norm, lsf_norm),
        edge_rise_10_90_px=_rise_10_90(x_norm, prof.esf),
        esf_slope=float(np.max(lsf_norm)),
        angle_deg=math.degrees(prof.angle_rad),
        band=(lo_b, hi_b) if lo_b is not None else None,
        mtf50_ci=ci,
        pixel_size_um=px_um,
        esf_x_px=x_norm,
        esf=prof.esf,
        lsf=lsf_norm,
        half_width_px=float(half * math.cos(prof.angle_rad)),
        low_frequency_drop=lf_drop,
        contrast=prof.contrast,
        transposed=prof.transposed,
        esf_method="adaptive window"
        if core is None
        else f"adaptive window, exponential tail model beyond +-{core * math.cos(prof.angle_rad):.3g} px",
    )
