"""Calibration of a cone-beam scan from its own data: the central ray's
column (sub-pixel) and the detector's in-plane tilt, from the consistency of
conjugate rays in a full turn."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validate import as_sinogram_stack
from ..exceptions import ParameterError, ShapeError
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
        Mean squared difference between conjugate rays at the result, in
        squared projection units (0 for perfectly consistent data).
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


class _Conjugates:
    """Mismatch between the rays of a band of rows and their conjugates for
    a given (centre column, tilt): a ray at detector coordinates (u, v) and
    angle theta is compared with the ray at (-u, v) and theta + pi - 2 gamma,
    gamma = atan(u / Dsd), read by trilinear interpolation (angles periodic).
    Exact in the central ray's plane, close to it near that plane."""

    def __init__(self, data, theta, geometry, cr, rows):
        from scipy.ndimage import map_coordinates

        self.map = map_coordinates
        self.data, self.theta, self.cr = data, theta, cr
        na, nr, nc = data.shape
        self.shape = (na, nr, nc)
        self.du = geometry.pixel_size * 1e-3  # mm
        self.sdd = geometry.source_detector
        r, c = np.meshgrid(
            np.asarray(rows, dtype=np.float64), np.arange(nc, dtype=np.float64), indexing="ij"
        )
        self.r, self.c = r.ravel(), c.ravel()
        self.ref = data[:, np.asarray(rows), :].reshape(na, -1)
        tt = np.concatenate([theta - 2 * np.pi, theta, theta + 2 * np.pi])
        self.tt, self.ti = tt, np.arange(-na, 2 * na, dtype=np.float64)

    def __call__(self, cc: float, tilt_deg: float) -> float:
        na, nr, nc = self.shape
        phi = math.radians(tilt_deg)
        cs, sn = math.cos(phi), math.sin(phi)
        pc, pr = self.c - cc, self.r - self.cr  # pixels
        u, v = pc * cs - pr * sn, pc * sn + pr * cs
        col = cc + (-u * cs + v * sn)
        row = self.cr + (u * sn + v * cs)
        ok = (col >= 0) & (col <= nc - 1) & (row >= 0) & (row <= nr - 1)
        if ok.sum() < 8:
            return np.inf
        gamma = np.arctan(u[ok] * self.du / self.sdd)
        th2 = np.mod(self.theta[:, None] + np.pi - 2 * gamma[None, :], 2 * np.pi)
        ai = np.mod(np.interp(th2, self.tt, self.ti), na)
        coords = [
            ai.ravel(),
            np.broadcast_to(row[ok], ai.shape).ravel(),
            np.broadcast_to(col[ok], ai.shape).ravel(),
        ]
        conj = self.map(self.data, coords, order=1, mode="grid-wrap").reshape(ai.shape)
        d = self.ref[:, ok] - conj
        return float(np.mean(d * d))


def find_cone_center(
    projections,
    theta,
    geometry: ConeGeometry,
    *,
    search: float = 20.0,
    tilt: bool = True,
    max_tilt: float = 5.0,
    band: float = 0.25,
) -> ConeCalibration:
    """Central-ray column (sub-pixel) and detector tilt of a full-turn
    cone-beam scan, from its own projections.

    A ray and its conjugate, the same line measured from the other side
    (angle theta + pi - 2 gamma, detector point mirrored about the central
    ray's column), carry the same line integral. The centre column is the
    one that makes the central row most consistent with its conjugates
    (least squares; a grid, then a golden-section search); with ``tilt``
    the same score over a band of rows around the central row, with the
    mirror taken about the tilted column axis, is then minimised over the
    tilt and the column in turn. Exact in the central ray's plane, close to
    it near that plane (the band).

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
    band : float
        Rows used for the tilt: within ``band`` x R of the central row.

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
        if not (np.isfinite(val) and val > 0):
            raise ParameterError(f"{name} must be > 0, got {val!r}")
    _, cr = geometry.centers(nr, nc)
    data = np.asarray(arr[order], dtype=np.float64)
    mid = (nc - 1) / 2.0
    lo, hi = max(mid - search, 1.0), min(mid + search, nc - 2.0)
    centre_row = int(np.clip(round(cr), 0, nr - 1))
    score1 = _Conjugates(data, t, geometry, cr, [centre_row])
    cc = _grid_then_golden(lambda c: score1(c, 0.0), lo, hi, 0.5, 1e-3)
    phi = 0.0
    if tilt:
        half = max(1, int(round(band * nr)))
        rows = np.arange(max(0, centre_row - half), min(nr, centre_row + half + 1))
        score = _Conjugates(data, t, geometry, cr, rows)
        for _ in range(2):
            phi = _grid_then_golden(lambda a, cc=cc: score(cc, a), -max_tilt, max_tilt, 0.5, 1e-3)
            cc = _golden(lambda c, phi=phi: score(c, phi), cc - 1.0, cc + 1.0, 1e-3)
        mismatch = score(cc, phi)
    else:
        mismatch = score1(cc, 0.0)
    return ConeCalibration(
        center_column=float(cc), tilt=float(phi), center_row=float(cr), mismatch=mismatch
    )
