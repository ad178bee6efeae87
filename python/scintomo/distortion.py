"""Radial distortion of the detector's optics (objective and camera), from a dot grid.

The model is the one of Vo et al., "Radial lens distortion correction with
sub-pixel accuracy for X-ray micro-tomography", Optics Express 23(25), 32859
(2015), as algotom applies it (its "backward" model): a pixel at undistorted
position u, at radius r_u from the centre of distortion c, is found in the
recorded image at

    d = c + (u - c) F(r_u),     F(r) = 1 + k_1 r + k_2 r^2 + ... + k_n r^n   (r in pixels)

The fit differs from the paper's line-by-line one: the dots' centroids are
matched in one least-squares problem to a regular grid (origin, pitch,
angle) seen through the model, with the centre and k_1..k_n free
(k_0 = 1: the corrected image keeps the scale at the centre). Fitting all
dots together needs no straight-line grouping and gives the centre with the
coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import as_array, as_float32, check_finite, check_nonempty, n_threads_arg
from .exceptions import NumericalError, ParameterError, ShapeError

__all__ = ["DistortionModel", "find_dots", "fit_distortion", "load", "undistort"]


@dataclass(frozen=True)
class DistortionModel:
    """A radial distortion d = c + (u - c) F(|u - c|).

    Attributes
    ----------
    center : (float, float), pixels
        (row, column) of the centre of distortion.
    coefficients : tuple of float
        k_1 .. k_n of F(r) = 1 + sum k_n r^n, r in pixels (k_n in px^-n).
    pitch : float, pixels
        Grid pitch at the centre (undistorted).
    angle : float, radians
        Rotation of the grid's columns from the image's.
    rms_residual : float, pixels
        RMS distance between the dots and the fitted grid seen through the model.
    n_dots : int
    """

    center: tuple[float, float]
    coefficients: tuple[float, ...]
    pitch: float
    angle: float
    rms_residual: float
    n_dots: int
    shape: tuple[int, int] | None = None

    def factor(self, r) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        return 1.0 + sum(k * r ** (n + 1) for n, k in enumerate(self.coefficients))

    def distort_points(self, points) -> np.ndarray:
        """Recorded (row, column) of undistorted points (M, 2)."""
        p = np.asarray(points, dtype=np.float64)
        c = np.asarray(self.center)
        v = p - c
        return c + v * self.factor(np.hypot(v[..., 0], v[..., 1]))[..., None]

    def undistort_points(self, points, *, iterations: int = 50) -> np.ndarray:
        """Undistorted (row, column) of recorded points (M, 2), by fixed-point iteration."""
        d = np.asarray(points, dtype=np.float64)
        c = np.asarray(self.center)
        u = d.copy()
        for _ in range(iterations):
            v = u - c
            u = c + (d - c) / self.factor(np.hypot(v[..., 0], v[..., 1]))[..., None]
        return u

    def to_dict(self) -> dict:
        return {
            "center_px": [float(v) for v in self.center],
            "coefficients": [float(k) for k in self.coefficients],
            "pitch_px": float(self.pitch),
            "angle_rad": float(self.angle),
            "rms_residual_px": float(self.rms_residual),
            "n_dots": int(self.n_dots),
            "shape": None if self.shape is None else [int(v) for v in self.shape],
        }

    def max_row_shift(self, shape: tuple[int, int] | None = None) -> float:
        """Largest vertical distance (pixels) between a pixel of a ``shape`` frame
        (default the grid image's) and where it is recorded: the rows a block of
        rows needs beyond its own."""
        h, w = self.shape if shape is None else shape
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
        pts = np.stack([rows.ravel(), cols.ravel()], axis=1)
        return float(np.abs(self.distort_points(pts)[:, 0] - pts[:, 0]).max())

    def save(self, path) -> None:
        """Write the model as JSON (atomically); :func:`load` reads it back."""
        from ._json import write_json

        write_json(path, self.to_dict(), indent=1)


def load(path) -> DistortionModel:
    """A :class:`DistortionModel` saved by :meth:`DistortionModel.save`."""
    import json
    from pathlib import Path

    from .exceptions import FileFormatError

    path = Path(path)
    try:
        d = json.loads(path.read_text())
        return DistortionModel(
            center=tuple(float(v) for v in d["center_px"]),
            coefficients=tuple(float(k) for k in d["coefficients"]),
            pitch=float(d["pitch_px"]),
            angle=float(d["angle_rad"]),
            rms_residual=float(d["rms_residual_px"]),
            n_dots=int(d["n_dots"]),
            shape=None if d.get("shape") is None else tuple(int(v) for v in d["shape"]),
        )
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such distortion model file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise FileFormatError(f"{path}: not a scintomo distortion model ({e!r})") from None


def find_dots(image, *, dark: bool = True, min_area: int = 4) -> np.ndarray:
    """Centroids (row, column) of the dots of a dot-grid image, (M, 2) float64.

    Parameters
    ----------
    image : (H, W) array_like
        Flat-fielded (or raw) image of the grid.
    dark : bool
        Dots darker than the background (an absorbing grid in a radiograph).
    min_area : int, pixels
        Smaller blobs (noise) are ignored; blobs touching the border are too.

    The threshold is halfway between the 2nd and 98th percentiles; each
    centroid is weighted by the dot's contrast to the background, which
    gives sub-pixel positions.
    """
    from scipy import ndimage

    img = as_array(image, "image").astype(np.float64)
    if img.ndim != 2:
        raise ShapeError(f"image must be 2-D, got {img.shape}")
    check_nonempty(img, "image")
    check_finite(img, "image")
    lo, hi = np.percentile(img, [2, 98])
    if not hi > lo:
        raise NumericalError("the image is uniform: no dots")
    contrast = (hi - img) if dark else (img - lo)
    mask = contrast > 0.5 * (hi - lo)
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros((0, 2))
    idx = np.arange(1, n + 1)
    area = ndimage.sum(mask, labels, idx)
    # grow each dot by 1 px so the weighted centroid sees its whole edge
    grown = ndimage.grey_dilation(labels, size=3)
    weights = np.clip(contrast, 0, None)
    cents = np.array(ndimage.center_of_mass(weights, grown, idx))
    objs = ndimage.find_objects(grown)
    h, w = img.shape
    keep = np.array(
        [
            a >= min_area and s[0].start > 0 and s[1].start > 0 and s[0].stop < h and s[1].stop < w
            for a, s in zip(area, objs, strict=True)
        ]
    )
    return cents[keep]


def _grid_guess(dots: np.ndarray):
    """Pitch, angle and origin of the grid from the dots' nearest neighbours."""
    from scipy.spatial import cKDTree

    tree = cKDTree(dots)
    dist, nn = tree.query(dots, k=2)
    pitch = float(np.median(dist[:, 1]))
    vec = dots[nn[:, 1]] - dots
    ang = np.arctan2(vec[:, 0], vec[:, 1])
    # the grid's angle modulo 90 degrees: circular mean of 4 x angle
    angle = float(np.angle(np.mean(np.exp(4j * ang))) / 4)
    mid = dots.mean(axis=0)
    origin = dots[np.argmin(np.hypot(*(dots - mid).T))]
    return pitch, angle, origin


def _indices(points, origin, pitch, angle):
    ca, sa = np.cos(angle), np.sin(angle)
    v = (points - origin) / pitch
    # columns along (sin a, cos a) in (row, col), rows along (cos a, -sin a)
    i = v[:, 0] * ca - v[:, 1] * sa
    j = v[:, 0] * sa + v[:, 1] * ca
    return np.round(np.stack([i, j], axis=1)).astype(int)


def _grid(ij, origin, pitch, angle):
    ca, sa = np.cos(angle), np.sin(angle)
    i, j = ij[:, 0].astype(float), ij[:, 1].astype(float)
    return origin + pitch * np.stack([i * ca + j * sa, -i * sa + j * ca], axis=1)


def fit_distortion(image=None, *, dots=None, order: int = 3, dark: bool = True) -> DistortionModel:
    """Fit the radial distortion of a dot-grid image.

    Parameters
    ----------
    image : (H, W) array_like, optional
        The dot grid; its dots are found by :func:`find_dots`.
    dots : (M, 2) array_like, optional
        Or the dots' (row, column) centroids directly.
    order : int
        Highest power n of F(r) = 1 + k_1 r + ... + k_n r^n (1..5).
    dark : bool
        Passed to :func:`find_dots`.

    Returns
    -------
    DistortionModel

    Raises
    ------
    ParameterError
        Fewer than 3 x (order + 6) dots, or an order outside 1..5.
    NumericalError
        The least-squares fit did not converge.
    """
    from scipy.optimize import least_squares

    if isinstance(order, bool) or int(order) != order or not 1 <= int(order) <= 5:
        raise ParameterError(f"order must be a whole number in 1..5, got {order!r}")
    n = int(order)
    if dots is None:
        if image is None:
            raise ParameterError("give image= or dots=")
        dots = find_dots(image, dark=dark)
    pts = np.asarray(dots, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ShapeError(f"dots must be (M, 2), got {pts.shape}")
    if pts.shape[0] < 3 * (n + 6):
        raise ParameterError(f"{pts.shape[0]} dots found; need at least {3 * (n + 6)}")
    pitch, angle, origin = _grid_guess(pts)
    scale = float(np.max(np.hypot(*(pts - pts.mean(axis=0)).T)))  # conditions the powers
    center = pts.mean(axis=0)
    ks = np.zeros(n)

    def model(params, ij):
        c, o, p, a, k = params[:2], params[2:4], params[4], params[5], params[6:]
        u = _grid(ij, o, p, a)
        v = u - c
        r = np.hypot(v[:, 0], v[:, 1]) / scale
        f = 1.0 + sum(kk * r ** (m + 1) for m, kk in enumerate(k))
        return c + v * f[:, None]

    params = np.concatenate([center, origin, [pitch, angle], ks])
    for _ in range(3):  # assign grid indices, fit, re-assign through the model
        if np.any(params[6:]):
            m = DistortionModel(
                tuple(params[:2]),
                tuple(params[6:] / scale ** np.arange(1, n + 1)),
                params[4],
                params[5],
                0.0,
                0,
            )
            ij = _indices(m.undistort_points(pts), params[2:4], params[4], params[5])
        else:
            ij = _indices(pts, origin, pitch, angle)
        _, first, counts = np.unique(ij, axis=0, return_index=True, return_counts=True)
        ok = np.zeros(len(pts), bool)
        ok[first[counts == 1]] = True  # two dots on one grid node: both unreliable
        ij_ok, pts_ok = ij[ok], pts[ok]
        res = least_squares(
            lambda q, ij=ij_ok, d=pts_ok: (model(q, ij) - d).ravel(), params, method="lm"
        )
        if not res.success:
            raise NumericalError(f"distortion fit did not converge: {res.message}")
        params = res.x
    resid = (model(params, ij_ok) - pts_ok).reshape(-1, 2)
    return DistortionModel(
        center=(float(params[0]), float(params[1])),
        coefficients=tuple(float(k) for k in params[6:] / scale ** np.arange(1, n + 1)),
        pitch=float(params[4]),
        angle=float(params[5]),
        rms_residual=float(np.sqrt(np.mean(np.sum(resid**2, axis=1)))),
        n_dots=int(ok.sum()),
        shape=None if image is None else tuple(int(v) for v in np.shape(image)),
    )


def undistort(
    projections,
    model: DistortionModel,
    *,
    order: int = 1,
    first_row: int = 0,
    n_threads: int | None = None,
) -> np.ndarray:
    """Remove the distortion from an image or a stack (N, H, W): each output pixel u
    takes the recorded value at ``model.distort_points(u)`` (spline of ``order``,
    edges continued). Returns float32; the input is not modified.

    ``first_row``: detector row of the input's row 0, for a block of rows of a
    larger frame (the output covers the same rows; rows within
    :meth:`DistortionModel.max_row_shift` of a cut edge take their values from
    the edge, so read that many rows more on each side).

    ``order=1`` (bilinear, the pipeline's) runs in the Rust kernel: the source
    coordinates are computed once for the frame and every projection is remapped
    in parallel on ``n_threads`` threads (None: all cores), as
    ``scipy.ndimage.map_coordinates(..., order=1, mode="nearest")`` gives it. Other
    orders use scipy, frame by frame."""
    p = as_float32(projections, "projections")
    if p.ndim not in (2, 3):
        raise ShapeError(f"projections must be (H, W) or (N, H, W), got {p.shape}")
    if isinstance(order, bool) or order not in (0, 1, 2, 3, 4, 5):
        raise ParameterError(f"order must be a spline order 0..5, got {order!r}")
    nt = n_threads_arg(n_threads)
    stack = p[None] if p.ndim == 2 else p
    h, w = stack.shape[1:]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    rows += first_row
    src = model.distort_points(np.stack([rows.ravel(), cols.ravel()], axis=1))
    coords = [src[:, 0].reshape(h, w) - first_row, src[:, 1].reshape(h, w)]
    out = np.empty(stack.shape, np.float32)
    if order == 1 and stack.size:
        from . import _core

        _core.lab_remap(np.ascontiguousarray(stack), out, coords[0], coords[1], n_threads=nt)
    else:
        from scipy import ndimage

        for i in range(stack.shape[0]):
            out[i] = ndimage.map_coordinates(stack[i], coords, order=order, mode="nearest")
    return out[0] if p.ndim == 2 else out
