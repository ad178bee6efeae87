"""Drift / jitter alignment by re-projection (Gürsoy et al. 2017).

The scan is made analytically: parallel projections of spheres, each view
evaluated at its own known (row, column) displacement, so no interpolation
enters the data. The recovered shifts must match the known ones (both with
their mean removed: a common shift is the rotation axis, not a drift) to
0.2 px.
"""

from __future__ import annotations

import numpy as np
import pytest

from scintomo.alignment import align_projections, reproject, shift_projections
from scintomo.exceptions import ParameterError, ShapeError
from scintomo.simulate import ellipse_projections

H, W, N = 24, 64, 90

# spheres: value, radius, x0, y0, z0 (pixels; z along rows from the middle)
SPHERES = [
    (1.0, 16.0, 0.0, 0.0, 0.0),
    (0.8, 5.0, 8.0, 6.0, -5.0),
    (-0.6, 4.0, -9.0, -4.0, 4.0),
    (0.9, 3.0, 3.0, -11.0, 7.0),
]


def _scan(shifts, theta):
    ss = 3  # supersampling of each pixel
    off = (np.arange(ss) + 0.5) / ss - 0.5
    s0 = np.arange(W) - (W - 1) / 2
    z0 = np.arange(H) - (H - 1) / 2
    out = np.zeros((N, H, W))
    for i, th in enumerate(theta):
        dz, ds = shifts[i]
        for oz in off:
            for os_ in off:
                s = (s0 + os_ - ds)[None, :]
                z = (z0 + oz - dz)[:, None]
                for v, r, x0, y0, zc in SPHERES:
                    q = r**2 - (s - (x0 * np.cos(th) + y0 * np.sin(th))) ** 2 - (z - zc) ** 2
                    out[i] += v * 2 * np.sqrt(np.clip(q, 0, None)) / ss**2
    return out.astype(np.float32)


def test_recovers_random_shifts():
    rng = np.random.default_rng(3)
    theta = np.linspace(0, np.pi, N, endpoint=False)
    true = rng.uniform(-2.0, 2.0, size=(N, 2))
    proj = _scan(true, theta)
    res = align_projections(proj, theta, iterations=25)
    true0 = true - true.mean(axis=0)
    err = np.abs(res.shifts - true0)
    assert err.max() < 0.2, (err.max(axis=0), res.updates)
    # and the aligned scan is the unshifted one
    fixed = shift_projections(proj, res.shifts)
    ref = _scan(np.tile(true.mean(axis=0), (N, 1)), theta)
    before = np.abs(proj - ref).mean()
    assert np.abs(fixed - ref)[:, 3:-3, 3:-3].mean() < 0.1 * before


def test_reproject_matches_analytic():
    """The projector behind the alignment agrees with scintomo.simulate's exact projections."""
    n = 64
    theta = np.linspace(0, np.pi, 30, endpoint=False)
    ell = np.array([[1.0, 20.0, 10.0, 5.0, -3.0, 0.4]])  # v, a, b, x0, y0, phi
    y, x = np.mgrid[0:n, 0:n]
    xx, yy = x - (n - 1) / 2, (n - 1) / 2 - y
    v, a, b, x0, y0, phi = ell[0]
    u = (xx - x0) * np.cos(phi) + (yy - y0) * np.sin(phi)
    w = -(xx - x0) * np.sin(phi) + (yy - y0) * np.cos(phi)
    img = np.where((u / a) ** 2 + (w / b) ** 2 <= 1, v, 0.0)
    got = reproject(img[None], theta, n)[:, 0]
    exact = ellipse_projections(ell, theta, n)
    assert np.abs(got - exact).mean() < 0.05 * np.abs(exact).mean()


def test_shapes_checked():
    with pytest.raises(ShapeError):
        align_projections(np.zeros((4, 8, 8)), np.zeros(3))
    with pytest.raises(ShapeError):
        shift_projections(np.zeros((4, 8, 8)), np.zeros((3, 2)))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_bilinear_shift_matches_scipy(n_threads):
    """order=1 (the pipeline's, in Rust) is scipy.ndimage.shift(order=1, mode='nearest')
    of each view to float32 rounding, whole and fractional shifts, shifts past the edge."""
    from scipy import ndimage

    rng = np.random.default_rng(5)
    p = rng.normal(1.0, 0.5, (9, 13, 31)).astype(np.float32)
    shifts = rng.uniform(-4.0, 4.0, (9, 2))
    shifts[0] = (0.0, 0.0)
    shifts[1] = (2.0, -3.0)
    shifts[2] = (-20.0, 40.5)  # beyond the frame: every pixel from the edge
    keep = p.copy()
    got = shift_projections(p, shifts, order=1, n_threads=n_threads)
    ref = np.stack([ndimage.shift(p[i], -shifts[i], order=1, mode="nearest") for i in range(9)])
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(p, keep)
    with pytest.raises(ParameterError):
        shift_projections(p, np.full((9, 2), np.nan), order=1)
    with pytest.raises(ParameterError):
        shift_projections(p, shifts, order=1, n_threads=0)
