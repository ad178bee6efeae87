"""Offset-axis 360-degree parallel-beam scans ("half acquisition"): a phantom
wider than the detector, projected analytically (scintomo.simulate's exact
ellipse line integrals), with the axis near either edge, found from the data
and reconstructed over the double field; compared with the phantom itself
and with a normal scan on a detector wide enough for the whole field."""

from __future__ import annotations

import numpy as np
import pytest

from scintomo.exceptions import ParameterError
from scintomo.recon import (
    find_center_360,
    reconstruct,
    sino_360_to_180,
    stitched_width,
)
from scintomo.simulate import ellipse_projections, ellipses_image, shepp_logan_ellipses

N = 64  # detector columns
THETA = np.linspace(0, 2 * np.pi, 360, endpoint=False)


def scan(center, theta=THETA, rows=3):
    """The phantom fills the double field (wider than the detector); (A, R, N) float32."""
    width = stitched_width(N, center)
    e = shepp_logan_ellipses(width, fill=0.95)
    p = ellipse_projections(e, theta, N, center=center)
    return e, np.repeat(p[:, None, :], rows, axis=1).astype(np.float32)


def corr_in_disc(rec, img, frac=0.95):
    n = img.shape[0]
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2.0
    m = xx**2 + yy**2 <= (frac * n / 2) ** 2
    return np.corrcoef(np.asarray(rec)[m], img[m])[0, 1]


@pytest.mark.parametrize(
    ("center", "side"), [(55.3, "right"), (52.0, "right"), (8.7, "left"), (10.0, "left")]
)
def test_axis_overlap_and_side_found(center, side):
    _, p = scan(center)
    before = p.copy()
    c, overlap, sd = find_center_360(p, THETA)
    assert abs(c - center) <= 0.2
    assert sd == side
    n_ov = 2 * (N - center) - 1 if side == "right" else 2 * center + 1
    assert abs(overlap - n_ov) <= 0.4
    np.testing.assert_array_equal(p, before)
    # Told the side: the same answer; angles in any order: the same answer.
    assert abs(find_center_360(p, THETA, side=side).center - c) < 1e-9
    perm = np.random.default_rng(0).permutation(THETA.size)
    assert abs(find_center_360(p[perm], THETA[perm]).center - c) <= 0.05


def test_axis_found_with_noise_and_odd_angle_count():
    """An odd number of angles has no measured opposite: interpolated."""
    theta = np.linspace(0, 2 * np.pi, 301, endpoint=False)
    _, p = scan(50.6, theta)
    p = p + np.random.default_rng(1).normal(0, 0.02 * p.max(), p.shape).astype(np.float32)
    assert abs(find_center_360(p, theta).center - 50.6) <= 0.2


@pytest.mark.parametrize("center", [55.3, 8.7])
def test_reconstructs_the_double_field(center):
    """The whole phantom, about twice the detector's width, correlates with
    its reconstruction nearly as well as a normal 360-degree scan on a
    detector covering the whole field does."""
    e, p = scan(center)
    rec = reconstruct(p, THETA, half_acquisition=True)  # axis found from the data
    w = stitched_width(N, rec.meta["half_acquisition"]["center"])
    assert rec.shape == (3, w, w) and rec.dtype == np.float32
    assert w >= 1.6 * N
    img = ellipses_image(e, w)
    ours = corr_in_disc(rec[1], img)
    c_out = float(rec.meta["center"][0])
    full = ellipse_projections(e, THETA, w, center=c_out).astype(np.float32)
    normal = corr_in_disc(reconstruct(full, THETA, center=c_out), img)
    assert ours >= normal - 0.01, (ours, normal)
    assert ours >= 0.97
    # Intensity scale within 2 % of the normal scan's (least squares).
    r_full = reconstruct(full, THETA, center=c_out)
    scale = float(np.sum(rec[1] * r_full) / np.sum(r_full * r_full))
    assert abs(scale - 1) <= 0.02
    # Without the stitching, the same data reconstruct only the detector's field.
    plain = reconstruct(p[:, 1], THETA, center=center, n_out=w)
    assert corr_in_disc(plain, img) < ours - 0.1
    meta = rec.meta["half_acquisition"]
    assert meta["side"] == ("right" if center > N / 2 else "left")


def test_given_center_and_stitching_shapes():
    _, p = scan(55.0)
    st, th, c_out = sino_360_to_180(p, THETA, 55.0)
    assert st.shape == (180, 3, 111) and th.shape == (180,)
    assert np.all((th >= 0) & (th < np.pi))
    assert c_out == 55.0
    # Outside the overlap the stitched rows are the direct and mirrored data.
    np.testing.assert_array_equal(st[:, :, :40], p[:180, :, :40])
    np.testing.assert_allclose(st[:, :, -40:], p[180:, :, ::-1][:, :, -40:], atol=1e-6)
    single, _, _ = sino_360_to_180(p[:, 0], THETA, 55.0)
    np.testing.assert_array_equal(single, st[:, 0])
    rec = reconstruct(p, THETA, center=55.0, half_acquisition=True)
    assert rec.meta["half_acquisition"]["overlap_px"] == pytest.approx(17.0)


def test_half_turn_is_refused():
    _, p = scan(55.3)
    half = THETA < np.pi
    with pytest.raises(ParameterError, match="full turn"):
        find_center_360(p[half], THETA[half])
    with pytest.raises(ParameterError, match="full turn"):
        reconstruct(p[half], THETA[half], center=55.3, half_acquisition=True)


def test_too_small_or_no_overlap_is_refused():
    # True overlap 3 columns: below min_overlap.
    _, p = scan(61.0)
    with pytest.raises(ParameterError, match="overlap"):
        find_center_360(p, THETA)
    # The axis beyond the detector's edge: the two halves never meet.
    e = shepp_logan_ellipses(150, fill=0.95)
    p = ellipse_projections(e, THETA, N, center=70.0).astype(np.float32)
    with pytest.raises(ParameterError, match="overlap"):
        find_center_360(p, THETA)
    with pytest.raises(ParameterError, match="center"):
        reconstruct(p, THETA, center=70.0, half_acquisition=True)
    with pytest.raises(ParameterError, match="one axis column"):
        reconstruct(p, THETA, center=[50.0, 51.0], half_acquisition=True)
