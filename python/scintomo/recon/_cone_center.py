"""Calibration of a cone-beam scan from its own data: the central ray's
column (sub-pixel) and the detector's in-plane tilt, from the mirror symmetry
of the sum of a full turn's projections about the projected rotation axis."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validate import as_sinogram_stack
from ..exceptions import NumericalError, ParameterError, ShapeError
from ._geometry import ConeGeometry


@dataclass(frozen=True)
class ConeCalibration:
    """Result of :func:`find_cone_center`.

    Attributes
    ----------
    center_column : float, pixels
        Column of the central ray (pixel centres at integers).
    tilt : float, degrees
        In-plane detector tilt (sign as :class:`ConeGeometry`'s ``tilt``).
    center_row : float, pixels
        The central ray's row (taken from the geometry, not measured).
    mismatch : float
        Mean squared difference between the (smoothed) full-turn sum of the
        projections and its mirror image about the axis found, in squared
        units of that sum (0 for perfectly symmetric data).
    """

    center_column: float
    tilt: float
    center_row: float
    mismatch: float

    def geometry(self, geometry: ConeGeometry) -> ConeGeometry:
        """``geometry`` with this centre column and tilt."""
        return ConeGeometry(
            geometry.source_object,
            geometry.source_detector,
            geometry.pixel_size,
            center_column=self.center_column,
            center_row=self.center_row,
            tilt=self.tilt,
        )

    def to_dict(self) -> dict:
        return {
            "center_column": self.center_column,
            "tilt_deg": self.tilt,
            "center_row": self.center_row,
            "mismatch": self.mismatch,
        }


def _golden(f, a: float, b: float, tol: float) -> float:
    g = (math.sqrt(5) - 1) / 2
    x1, x2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = f(x1), f(x2)
    while b - a > tol:
        if f1 <= f2:
            b, x2, f2 = x2, x1, f1
            x1 = b - g * (b - a)
            f1 = f(x1)
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + g * (b - a)
            f2 = f(x2)
    return 0.5 * (a + b)


def _grid_then_golden(f, lo: float, hi: float, step: float, tol: float) -> float:
    grid = np.arange(lo, hi + step / 2, step)
    scores = np.array([f(v) for v in grid])
    i = int(np.argmin(scores))
    return _golden(f, grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)], tol)


def _turn_weights(t: np.ndarray) -> np.ndarray:
    """Quadrature weight of each (sorted, mod 2 pi) angle over the full turn: half
    the distance between its neighbours, so uneven steps average correctly."""
    prev = np.roll(t, 1)
    prev[0] -= 2 * np.pi
    nxt = np.roll(t, -1)
    nxt[-1] += 2 * np.pi
    return 0.5 * (nxt - prev)


class _MirrorScore:
    """How far the full-turn sum of the projections is from mirror symmetry
    about the projected rotation axis.

    Summing the projections of a full turn is projecting, from one source
    position, the object averaged over all rotations about the axis (the
    projector is linear and turning the source is turning the object the
    other way). That average is a solid of revolution, so its cone-beam
    projection is symmetric under u -> -u in the detector's own (untilted)
    coordinates, with v (along the axis) unchanged, whatever the cone angle:
    exact, unlike the conjugate-ray relation, which holds only in the
    central ray's plane. The mirror is the line through the central ray's
    pixel (center_column, center_row) at the detector's tilt, so its
    position at that row gives the centre column and its slope the tilt.

    The sum is smoothed by an isotropic Gaussian (which keeps the mirror
    symmetry) and read at the mirrored points by cubic B-splines: with
    linear interpolation the interpolation error, zero on whole rows, pulls
    the tilt towards 0 (measured: 0.1-0.9 degree on the test phantom).
    Pixels within 3 sigma of the detector's edge, or whose mirror is, are
    left out (the smoothing sees past the edge there)."""

    def __init__(self, total: np.ndarray, cr: float, rows, sigma: float = 1.5):
        from scipy.ndimage import gaussian_filter, map_coordinates, spline_filter

        nr, nc = total.shape
        self.map = map_coordinates
        self.s = gaussian_filter(total, sigma, mode="nearest")
        self.coef = spline_filter(self.s, order=3, mode="nearest")
        self.cr, self.shape = cr, (nr, nc)
        self.margin = 3.0 * sigma
        r, c = np.meshgrid(
            np.asarray(rows, np.float64), np.arange(nc, dtype=np.float64), indexing="ij"
        )
        inside = (c >= self.margin) & (c <= nc - 1 - self.margin)
        inside &= (r >= self.margin) & (r <= nr - 1 - self.margin)
        self.r, self.c = r[inside], c[inside]
        self.ref = self.s[r[inside].astype(np.intp), c[inside].astype(np.intp)]

    def __call__(self, cc: float, tilt_deg: float) -> float:
        nr, nc = self.shape
        phi = math.radians(tilt_deg)
        cs, sn = math.cos(phi), math.sin(phi)
        pc, pr = self.c - cc, self.r - self.cr  # pixels
        u, v = pc * cs - pr * sn, pc * sn + pr * cs
        col = cc + (-u * cs + v * sn)
        row = self.cr + (u * sn + v * cs)
        m = self.margin
        ok = (col >= m) & (col <= nc - 1 - m) & (row >= m) & (row <= nr - 1 - m)
        if ok.sum() < 16:
            return np.inf
        mirrored = self.map(self.coef, [row[ok], col[ok]], order=3, mode="nearest", prefilter=False)
        d = self.ref[ok] - mirrored
        return float(np.mean(d * d))


def find_cone_center(
    projections,
    theta,
    geometry: ConeGeometry,
    *,
    search: float = 20.0,
    tilt: bool = True,
    max_tilt: float = 5.0,
    band: float | None = None,
) -> ConeCalibration:
    """Central-ray column (sub-pixel) and detector tilt of a full-turn
    cone-beam scan, from its own projections.

    The sum of the projections over a full turn is the projection of the
    object averaged over all rotations about the axis, a solid of
    revolution, so it is mirror-symmetric about the projected rotation axis
    (exactly, at any cone angle, in the detector's own coordinates): a line
    through the central ray's pixel whose slope is the detector's tilt. The
    centre column and tilt are those that make the sum most symmetric
    (least squares against its mirror image, after an isotropic 1.5-pixel
    Gaussian smoothing, which keeps the symmetry, read by cubic B-splines;
    a grid, then golden-section searches, the column and the tilt in turn).
    It needs structure along the axis for the tilt (any real object has it).
    On the tests' 64-pixel detector, 240 angles, 3-D Shepp-Logan with beads:
    the column within 0.001 px and the tilt within 0.02 degree for tilts of
    0-2 degrees (0.03 degree with 1 % noise); the former conjugate-ray score
    was off by up to 0.5 degree.

    Parameters
    ----------
    projections : (A, R, N) ndarray
        -log line integrals over a full turn (any angle order, roughly
        evenly spaced). Not modified.
    theta : (A,) array_like, radians
    geometry : ConeGeometry
        Distances and pixel size; its ``center_row`` (default the middle)
        is kept, its centre column and tilt are ignored.
    search : float, pixels
        Half-width of the centre search around the detector's middle column.
    tilt : bool
        Also estimate the tilt (else 0).
    max_tilt : float, degrees
        Tilts searched: [-max_tilt, max_tilt].
    band : float, optional
        Use only the rows within ``band`` x R of the central row (default:
        all rows).

    Returns
    -------
    ConeCalibration
    """
    arr, single = as_sinogram_stack(projections)
    if single:
        raise ShapeError("cone-beam projections must be (angle, row, column)")
    na, nr, nc = arr.shape
    th = np.asarray(theta, dtype=np.float64).ravel()
    if th.size != na:
        raise ShapeError(f"theta has {th.size} angles for {na} projections")
    if not np.all(np.isfinite(th)):
        raise ParameterError("theta must be finite")
    t = np.mod(th, 2 * np.pi)
    order = np.argsort(t)
    t = t[order]
    gaps = np.diff(np.concatenate([t, [t[0] + 2 * np.pi]]))
    if na < 8 or gaps.max() > 4 * 2 * np.pi / na:
        raise ParameterError("find_cone_center needs a full turn of (roughly evenly spaced) angles")
    for name, val in (("search", search), ("max_tilt", max_tilt), ("band", band)):
        if val is None and name == "band":
            continue
        if not (np.isfinite(val) and val > 0):
            raise ParameterError(f"{name} must be > 0, got {val!r}")
    _, cr = geometry.centers(nr, nc)
    if band is None:
        rows = np.arange(nr)
    else:
        half = max(1, int(round(band * nr)))
        c_row = int(np.clip(round(cr), 0, nr - 1))
        rows = np.arange(max(0, c_row - half), min(nr, c_row + half + 1))
    # the full-turn sum, each angle weighted by its share of the turn (float64)
    w = _turn_weights(t)
    total = np.zeros((nr, nc))
    for i, a in enumerate(order):
        total += w[i] * arr[a]
    score = _MirrorScore(total, cr, rows)
    mid = (nc - 1) / 2.0
    lo, hi = max(mid - search, 1.0), min(mid + search, nc - 2.0)
    cc = _grid_then_golden(lambda c: score(c, 0.0), lo, hi, 0.5, 1e-4)
    phi = 0.0
    if tilt:
        # tilt and column in turn (they hardly interact: the column is where the
        # mirror line crosses the central row, the tilt its slope)
        for _ in range(3):
            phi = _grid_then_golden(lambda a, cc=cc: score(cc, a), -max_tilt, max_tilt, 0.25, 1e-4)
            cc = _golden(lambda c, phi=phi: score(c, phi), cc - 1.0, cc + 1.0, 1e-4)
    mismatch = score(cc, phi)
    if not np.isfinite(mismatch):
        raise NumericalError(
            "find_cone_center: too few detector pixels have a mirror on the detector; "
            "is the detector large enough, and search smaller than its half-width?"
        )
    return ConeCalibration(
        center_column=float(cc), tilt=float(phi), center_row=float(cr), mismatch=mismatch
    )
