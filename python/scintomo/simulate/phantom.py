"""Analytic phantoms and their exact parallel-beam projections.

Geometry (the convention of the whole package, the same as TomoPy's and
scikit-image's radon, see :mod:`scintomo.recon`): an image of n x n pixels has
its origin at the centre ((n - 1) / 2 in pixel index), x increases with the
column index and y points *up*, y = (n - 1) / 2 - row. A projection at angle
theta integrates along the line x cos(theta) + y sin(theta) = s, and detector
column j sits at s = j - (n_det - 1) / 2 (pixel units). Values are attenuation
per pixel.
"""

from __future__ import annotations

import numpy as np

# Modified Shepp-Logan (Toft 1996): (value, a, b, x0, y0, phi in degrees),
# a, b, x0, y0 in units of the half-width.
_SHEPP_LOGAN = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
)


def shepp_logan_ellipses(size: int, *, scale: float = 1.0, fill: float = 0.9) -> np.ndarray:
    """Ellipse table (value, a, b, x0, y0, phi[rad]) of the modified Shepp-Logan
    phantom in pixel units for an image of ``size`` pixels, covering ``fill``
    of the half-width; values multiplied by ``scale``."""
    half = fill * size / 2.0
    e = np.array(_SHEPP_LOGAN, dtype=np.float64)
    # y in the table points up, as ours does.
    return np.column_stack(
        [
            e[:, 0] * scale,
            e[:, 1] * half,
            e[:, 2] * half,
            e[:, 3] * half,
            e[:, 4] * half,
            np.deg2rad(e[:, 5]),
        ]
    )


def ellipses_image(ellipses: np.ndarray, size: int, *, supersample: int = 4) -> np.ndarray:
    """Render ellipses on a ``size`` x ``size`` grid, each pixel the mean over
    ``supersample``^2 sub-pixels. float32."""
    ss = supersample
    sub = (np.arange(size * ss) + 0.5) / ss - 0.5 - (size - 1) / 2.0
    y, x = np.meshgrid(-sub, sub, indexing="ij")  # y up: row 0 is the top
    img = np.zeros_like(x)
    for v, a, b, x0, y0, phi in ellipses:
        c, s = np.cos(phi), np.sin(phi)
        xr = (x - x0) * c + (y - y0) * s
        yr = -(x - x0) * s + (y - y0) * c
        img[(xr / a) ** 2 + (yr / b) ** 2 <= 1.0] += v
    return img.reshape(size, ss, size, ss).mean(axis=(1, 3)).astype(np.float32)


def ellipse_projections(
    ellipses: np.ndarray, theta, n_det: int, *, supersample: int = 4, center: float | None = None
) -> np.ndarray:
    """Exact line integrals of the ellipses, (len(theta), n_det) float64,
    averaged over each detector pixel's width (``supersample`` points).
    ``center``: detector column of the rotation axis (pixels, default
    (n_det - 1) / 2), so column j sits at s = j - center."""
    theta = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    ss = supersample
    c = (n_det - 1) / 2.0 if center is None else float(center)
    s = (np.arange(n_det * ss) + 0.5) / ss - 0.5 - c
    out = np.zeros((theta.size, n_det * ss))
    ct, st = np.cos(theta)[:, None], np.sin(theta)[:, None]
    for v, a, b, x0, y0, phi in ellipses:
        # Along direction (cos t, sin t): the ellipse's support half-width.
        ang = theta[:, None] - phi
        r2 = (a * np.cos(ang)) ** 2 + (b * np.sin(ang)) ** 2
        t = s[None, :] - (x0 * ct + y0 * st)
        inside = r2 - t**2
        out += np.where(inside > 0, 2.0 * v * a * b * np.sqrt(np.clip(inside, 0, None)) / r2, 0.0)
    return out.reshape(theta.size, n_det, ss).mean(axis=2)
