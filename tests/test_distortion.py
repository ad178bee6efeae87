"""Radial distortion from a dot grid (Vo et al. 2015 model, as algotom applies it).

A regular dot grid (pitch 16 px, turned 2 degrees) is drawn at the positions a
known radial distortion (centre off the image's middle, 4.5 to 5.7 px at the
corners) moves it to, each dot an anti-aliased disc. After the fitted
correction, the dots found again lie on straight rows and columns and on the
regular grid to 0.1 px; before it they are off by pixels. The truth is the
known distortion, not the fit's own output.
"""

from __future__ import annotations

import numpy as np
import pytest

from scintomo.distortion import DistortionModel, find_dots, fit_distortion, undistort
from scintomo.exceptions import ParameterError

H = W = 256
CENTER = (131.0, 122.5)
K = (0.0, 4.3e-7, 2.4e-9)  # k1 (px^-1), k2 (px^-2), k3 (px^-3): about 5 px at the corners
PITCH, ANGLE = 16.0, np.deg2rad(2.0)


def _true_model():
    return DistortionModel(CENTER, K, PITCH, ANGLE, 0.0, 0)


def _ideal_dots():
    ij = np.mgrid[-9:10, -9:10].reshape(2, -1).T.astype(float)
    ca, sa = np.cos(ANGLE), np.sin(ANGLE)
    o = np.array([127.3, 128.6])
    return o + PITCH * np.stack([ij[:, 0] * ca + ij[:, 1] * sa, -ij[:, 0] * sa + ij[:, 1] * ca], 1)


def _render(points, radius=4.0, ss=4):
    """Bright background (1.0), dark discs (0.2) at ``points``, area-sampled ss x ss."""
    img = np.ones((H * ss, W * ss))
    yy, xx = (np.mgrid[0 : H * ss, 0 : W * ss] + 0.5) / ss - 0.5
    for r0, c0 in points:
        if -8 < r0 < H + 8 and -8 < c0 < W + 8:
            r_lo, r_hi = int(max((r0 - 6) * ss, 0)), int(min((r0 + 7) * ss, H * ss))
            c_lo, c_hi = int(max((c0 - 6) * ss, 0)), int(min((c0 + 7) * ss, W * ss))
            sub = (slice(r_lo, r_hi), slice(c_lo, c_hi))
            inside = (yy[sub] - r0) ** 2 + (xx[sub] - c0) ** 2 <= radius**2
            img[sub][inside] = 0.2
    return img.reshape(H, ss, W, ss).mean(axis=(1, 3))


def _line_residual(dots, pitch=PITCH, angle=ANGLE):
    """Largest distance of the dots from the best regular grid (any origin/pitch/angle)."""
    # fit a similarity transform of integer grid indices to the dots
    ca, sa = np.cos(angle), np.sin(angle)
    o = dots.mean(axis=0)
    v = (dots - o) / pitch
    ij = np.stack([v[:, 0] * ca - v[:, 1] * sa, v[:, 0] * sa + v[:, 1] * ca], 1)
    ij = np.round(ij)  # grid indices (the middle dot near the mean)
    a = np.zeros((2 * len(ij), 4))
    a[0::2] = np.stack([ij[:, 0], ij[:, 1], np.ones(len(ij)), np.zeros(len(ij))], 1)
    a[1::2] = np.stack([ij[:, 1], -ij[:, 0], np.zeros(len(ij)), np.ones(len(ij))], 1)
    sol, *_ = np.linalg.lstsq(a, dots.ravel(), rcond=None)
    return np.abs(a @ sol - dots.ravel()).max()


@pytest.fixture(scope="module")
def grid_image():
    truth = _true_model()
    return _render(truth.distort_points(_ideal_dots())), truth


def test_dot_grid_straightened(grid_image):
    img, truth = grid_image
    model = fit_distortion(img, order=3)
    assert model.rms_residual < 0.1
    # the correction brings the recorded grid back to a regular one
    before = find_dots(img)
    fixed = find_dots(undistort(img, model, order=3))
    # dots the recorded image cuts at its border come back cut: leave them out
    src = model.distort_points(fixed)
    fixed = fixed[(src.min(axis=1) > 6) & (src.max(axis=1) < H - 7)]
    assert len(fixed) > 150
    r_before, r_after = _line_residual(before), _line_residual(fixed)
    assert r_before > 1.0  # pixels off a regular grid before the correction
    assert r_after < 0.1, (r_before, r_after)
    # and the fitted model moves points as the true one does, over the grid's field
    pts = _ideal_dots()
    pts = pts[(pts.min(axis=1) > 10) & (pts.max(axis=1) < H - 10)]
    err = np.abs(
        model.distort_points(model.undistort_points(truth.distort_points(pts)))
        - truth.distort_points(pts)
    ).max()
    assert err < 1e-6
    moved = truth.distort_points(pts) - pts
    fitted = truth.distort_points(pts) - model.undistort_points(truth.distort_points(pts))
    # the same displacement up to the fitted grid's own scale/offset: compare its variation
    d = (moved - moved.mean(0)) - (fitted - fitted.mean(0))
    assert np.abs(d).max() < 0.25


def test_undistort_keeps_input_and_stack(grid_image):
    img, truth = grid_image
    stack = np.stack([img, img]).astype(np.float32)
    copy = stack.copy()
    out = undistort(stack, truth)
    np.testing.assert_array_equal(stack, copy)
    assert out.shape == stack.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[0], undistort(img, truth), rtol=1e-6)


def test_errors():
    with pytest.raises(ParameterError, match="order"):
        fit_distortion(dots=np.zeros((100, 2)), order=9)
    with pytest.raises(ParameterError, match="dots"):
        fit_distortion(dots=np.zeros((5, 2)))
    with pytest.raises(ParameterError):
        fit_distortion()


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("first_row", [0, 37])
def test_undistort_matches_scipy_map_coordinates(n_threads, first_row):
    """The Rust remap (order 1) is scipy.ndimage.map_coordinates(order=1, mode='nearest')
    of the model's source coordinates, to float32 rounding; edges included."""
    from scipy import ndimage

    rng = np.random.default_rng(2)
    h, w = 12, 80
    model = DistortionModel((40.0, 41.0), (2e-3, -3e-6), 10.0, 0.0, 0.0, 0, shape=(90, w))
    stack = rng.normal(5.0, 2.0, (6, h, w)).astype(np.float64)[:, :, ::-1]  # float64, strided
    got = undistort(stack, model, first_row=first_row, n_threads=n_threads)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    src = model.distort_points(np.stack([rows.ravel() + first_row, cols.ravel()], axis=1))
    coords = [src[:, 0].reshape(h, w) - first_row, src[:, 1].reshape(h, w)]
    # rows do move, some to beyond the block's edges (the clamped taps)
    assert ((coords[0] < 0) | (coords[0] > h - 1)).any() and np.abs(coords[1] - cols).max() > 1
    s32 = stack.astype(np.float32)
    ref = np.stack(
        [ndimage.map_coordinates(s32[i], coords, order=1, mode="nearest") for i in range(6)]
    )
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)
    cubic = undistort(stack, model, first_row=first_row, order=3)
    assert np.abs(cubic - got).max() > 1e-4  # other orders still go through scipy
    with pytest.raises(ParameterError, match="order"):
        undistort(stack, model, order=7)
