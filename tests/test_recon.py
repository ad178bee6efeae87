"""Built-in reconstruction against analytic phantoms, scikit-image and real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from scintomo.exceptions import NonFiniteError, ParameterError, ShapeError
from scintomo.recon import angle_weights, find_center, reconstruct, tomopy_available
from scintomo.simulate import ellipse_projections, ellipses_image, shepp_logan_ellipses

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
ALGORITHMS = ("fbp", "gridrec")


def fov(n, margin=2.0):
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2.0
    return xx**2 + yy**2 < (n / 2.0 - margin) ** 2


def corr_scale(rec, truth, m):
    r, t = np.asarray(rec, dtype=np.float64)[m], np.asarray(truth, dtype=np.float64)[m]
    return np.corrcoef(r, t)[0, 1], (r * t).sum() / (t * t).sum()


def smooth_shepp(n, theta, sigma=1.25, noise=0.002, seed=0, center=None):
    """Shepp-Logan blurred by a Gaussian of sigma px, image and projections:
    blurring each projection along s by the same 1-D Gaussian is exactly the
    projection of the blurred image (the 2-D Gaussian is isotropic and
    separable), so truth and data stay consistent while the object becomes
    band-limited enough to be recoverable to < 0.1 % error."""
    e = shepp_logan_ellipses(n)
    img = gaussian_filter(ellipses_image(e, n).astype(np.float64), sigma, mode="constant")
    p = gaussian_filter1d(
        ellipse_projections(e, theta, n, center=center), sigma, axis=1, mode="constant"
    )
    p += np.random.default_rng(seed).normal(0, noise * p.max(), p.shape)
    return img, p.astype(np.float32)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    ("n", "n_ang", "span"),
    [(128, 180, np.pi), (255, 360, np.pi), (256, 400, np.pi), (256, 401, 2 * np.pi)],
)
def test_shepp_logan_accuracy(algorithm, n, n_ang, span):
    theta = np.linspace(0, span, n_ang, endpoint=False)
    img, p = smooth_shepp(n, theta)
    rec = reconstruct(p, theta, algorithm=algorithm, backend="builtin")
    assert rec.dtype == np.float32 and rec.shape == (n, n)
    c, s = corr_scale(rec, img, fov(n))
    assert c >= 0.999, c
    assert abs(s - 1) < 0.05, s


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sharp_shepp_logan_from_skimage_radon(algorithm):
    """Projections by an independent projector (scikit-image's radon), sharp
    phantom: edges limit the correlation, so the bar is scikit-image's own
    iradon on the same data, and the scale."""
    radon = pytest.importorskip("skimage.transform").radon
    iradon = pytest.importorskip("skimage.transform").iradon
    n = 255
    img = ellipses_image(shepp_logan_ellipses(n), n)
    deg = np.linspace(0, 180, 360, endpoint=False)
    sino = radon(img.astype(np.float64), deg, circle=True)  # (column, angle)
    ours = reconstruct(
        sino.T.astype(np.float32),
        np.deg2rad(deg),
        algorithm=algorithm,
        filter="ramp",
        backend="builtin",
    )
    ref = iradon(sino, deg, filter_name="ramp", circle=True)
    m = fov(n)
    c_ours, s_ours = corr_scale(ours, img, m)
    c_ref, _ = corr_scale(ref, img, m)
    assert c_ours >= c_ref - 2e-3 and c_ours > 0.99, (c_ours, c_ref)
    assert abs(s_ours - 1) < 0.05


def test_fbp_matches_skimage_iradon():
    """Same algorithm (band-limited ramp, linear interpolation, same geometry):
    the two must agree, which pins the orientation and centre convention."""
    iradon = pytest.importorskip("skimage.transform").iradon
    n = 101
    theta = np.linspace(0, np.pi, 120, endpoint=False)
    _, p = smooth_shepp(n, theta, noise=0.0)
    ref = iradon(p.T.astype(np.float64), np.rad2deg(theta), filter_name="ramp", circle=True)
    ours = reconstruct(p, theta, algorithm="fbp", filter="ramp", backend="builtin")
    m = fov(n, 3)
    assert np.abs(ours[m] - ref[m]).max() < 2e-3 * np.abs(ref).max()


def test_orientation_point_object():
    """A point at x = +10 (right), y = +20 (up): row (n-1)/2 - 20, column (n-1)/2 + 10."""
    n = 65
    theta = np.linspace(0, np.pi, 180, endpoint=False)
    s = 10 * np.cos(theta) + 20 * np.sin(theta)
    j = np.arange(n) - (n - 1) / 2.0
    p = np.exp(-((j[None, :] - s[:, None]) ** 2) / 2.0).astype(np.float32)
    for alg in ALGORITHMS:
        rec = np.asarray(reconstruct(p, theta, algorithm=alg, backend="builtin"))
        assert np.unravel_index(np.argmax(rec), rec.shape) == (32 - 20, 32 + 10)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("shift", [-6.3, 2.5])
def test_subpixel_center(algorithm, shift):
    n = 128
    theta = np.linspace(0, np.pi, 200, endpoint=False)
    c = (n - 1) / 2 + shift
    img, p = smooth_shepp(n, theta, center=c, noise=0.0)
    good = reconstruct(p, theta, center=c, algorithm=algorithm, backend="builtin")
    off = reconstruct(p, theta, center=c + 0.5, algorithm=algorithm, backend="builtin")
    m = fov(n, 10)
    c_good, s_good = corr_scale(good, img, m)
    assert c_good >= 0.999 and abs(s_good - 1) < 0.05
    assert corr_scale(off, img, m)[0] < c_good - 5e-4


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nonuniform_angles(algorithm):
    n = 128
    rng = np.random.default_rng(3)
    theta = np.sort(rng.uniform(0, np.pi, 300))
    img, p = smooth_shepp(n, theta)
    c, s = corr_scale(reconstruct(p, theta, algorithm=algorithm, backend="builtin"), img, fov(n))
    assert c >= 0.998 and abs(s - 1) < 0.05, (c, s)


def test_angle_weights():
    th = np.linspace(0, np.pi, 181)  # both ends: counted once
    assert np.isclose(angle_weights(th).sum(), np.pi)
    th = np.linspace(0, 2 * np.pi, 100, endpoint=False)
    w = angle_weights(th)
    assert np.isclose(w.sum(), np.pi) and np.allclose(w, np.pi / 100)


@pytest.mark.parametrize("filter_name", ["ramp", "shepp", "cosine", "hamming", "hann", "parzen"])
def test_filters(filter_name):
    n = 128
    theta = np.linspace(0, np.pi, 180, endpoint=False)
    img, p = smooth_shepp(n, theta, sigma=2.0)
    for alg in ALGORITHMS:
        c, s = corr_scale(
            reconstruct(p, theta, algorithm=alg, filter=filter_name, backend="builtin"), img, fov(n)
        )
        assert c > 0.995 and abs(s - 1) < 0.05, (alg, c, s)


def test_padding_matters():
    """Without padding the ramp filter wraps around (TomoPy issue #481)."""
    n = 128
    theta = np.linspace(0, np.pi, 180, endpoint=False)
    m = fov(n, 30)
    # An object twice the detector width (interior tomography).
    e = shepp_logan_ellipses(256)
    img = ellipses_image(e, 256)[64:192, 64:192]
    p = ellipse_projections(e, theta, 128).astype(np.float32)
    for alg in ALGORITHMS:
        padded = np.asarray(reconstruct(p, theta, algorithm=alg, backend="builtin"))
        bare = np.asarray(reconstruct(p, theta, algorithm=alg, pad=False, backend="builtin"))
        err_p = np.abs(padded[m] - img[m]).mean()
        err_b = np.abs(bare[m] - img[m]).mean()
        assert err_p < 0.3 * err_b, (alg, err_p, err_b)


def test_stack_threads_mask_and_metadata():
    n = 96
    theta = np.linspace(0, np.pi, 120, endpoint=False)
    _, p = smooth_shepp(n, theta)
    stack = np.stack([p, 2 * p, p], axis=1)  # (angle, row, column)
    before = stack.copy()
    r1 = reconstruct(stack, theta, n_threads=1, backend="builtin")
    r2 = reconstruct(stack, theta, n_threads=2, backend="builtin")
    assert np.array_equal(stack, before)
    assert r1.shape == (3, n, n) and r1.dtype == np.float32
    np.testing.assert_allclose(r1, r2, atol=1e-6 * float(np.abs(r1).max()))
    np.testing.assert_allclose(r1[1], 2 * r1[0], atol=1e-5 * float(np.abs(r1).max()))
    assert r1.meta["backend"] == "builtin" and r1.backend == "builtin"
    assert r1[:, 0, 0].max() == 0  # corners masked
    full = reconstruct(stack, theta, mask=False, center=[(n - 1) / 2] * 3, backend="builtin")
    assert np.abs(full[:, 0, 0]).max() > 0


def test_bad_input():
    theta = np.linspace(0, np.pi, 10, endpoint=False)
    p = np.ones((10, 32), np.float32)
    with pytest.raises(ShapeError):
        reconstruct(p, theta[:5], backend="builtin")
    with pytest.raises(ShapeError):
        reconstruct(np.ones(10, np.float32), theta, backend="builtin")
    with pytest.raises(ParameterError):
        reconstruct(p, theta, filter="bogus", backend="builtin")
    with pytest.raises(ParameterError, match="'gridrec', 'fbp', 'sirt', 'cgls', 'tv'"):
        reconstruct(p, theta, algorithm="mlem", backend="builtin")
    with pytest.raises(ParameterError):
        reconstruct(p, theta, n_threads=0, backend="builtin")
    with pytest.raises(ShapeError):
        reconstruct(p[:, None].repeat(2, 1), theta, center=[1.0, 2.0, 3.0], backend="builtin")
    bad = p.copy()
    bad[3, 4] = np.nan
    with pytest.raises(NonFiniteError):
        reconstruct(bad, theta, backend="builtin")
    with pytest.raises(ParameterError):
        reconstruct(p, theta, pad=3, backend="builtin")


@pytest.mark.skipif(tomopy_available(), reason="TomoPy is installed")
def test_tomopy_backend_absent_is_a_clear_error():
    theta = np.linspace(0, np.pi, 10, endpoint=False)
    with pytest.raises(ParameterError, match="TomoPy"):
        reconstruct(np.ones((10, 32), np.float32), theta, backend="tomopy")
    assert reconstruct(np.ones((10, 32), np.float32), theta).meta["backend"] == "builtin"


# --- centre finding -------------------------------------------------------


@pytest.mark.parametrize(("n", "shift"), [(256, 7.3), (256, -12.6), (255, 0.0), (384, 3.75)])
def test_find_center_vo_recovers_offset(n, shift):
    theta = np.linspace(0, np.pi, 361)
    c = (n - 1) / 2 + shift
    e = shepp_logan_ellipses(n, fill=0.8)
    p = ellipse_projections(e, theta, n, center=c)
    p += np.random.default_rng(1).normal(0, 0.01 * p.max(), p.shape)
    assert abs(find_center(p, theta) - c) <= 0.25


def test_find_center_rows_and_registration():
    n = 256
    theta = np.linspace(0, np.pi, 361)
    c = (n - 1) / 2 + 5.2
    p = ellipse_projections(shepp_logan_ellipses(n, fill=0.8), theta, n, center=c).astype(
        np.float32
    )
    stack = np.stack([p, p], axis=1)
    cs = find_center(stack, theta, rows=[0, 1])
    assert cs.shape == (2,) and np.all(np.abs(cs - c) <= 0.25)
    assert abs(find_center(stack, theta, method="pc") - c) <= 0.5
    with pytest.raises(ParameterError):
        find_center(p[:-1], theta[:-1], method="pc")  # no 180-degree partner
    with pytest.raises(ParameterError):
        find_center(p, theta, method="nope")


# --- real data -------------------------------------------------------------


@pytest.fixture(scope="module")
def tooth():
    path = DATA / "tooth.h5"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    from scintomo import flatfield
    from scintomo.io import read_dxchange

    with read_dxchange(path) as s:
        p = flatfield.correct(s.projections[:], s.flats[:], s.darks[:], log=True)
        return p, np.asarray(s.theta)


def test_tooth_center_agrees_with_visible_optimum(tooth):
    """The visible optimum: the centre that minimises the total variation and
    the negative mass of the slice (artefacts of a wrong axis are arcs and
    dark halos), scanned in 0.5 px steps."""
    p, theta = tooth
    cs = np.arange(290, 302.1, 0.5)
    tv, neg = [], []
    for c in cs:
        r = np.asarray(reconstruct(p[:, :1], theta, center=c, filter="hann", backend="builtin"))[0]
        tv.append(np.abs(np.diff(r, axis=0)).sum() + np.abs(np.diff(r, axis=1)).sum())
        neg.append(-np.clip(r, None, 0).sum())
    visible = 0.5 * (cs[np.argmin(tv)] + cs[np.argmin(neg)])
    found = find_center(p, theta)
    assert abs(found - visible) <= 0.75, (found, visible)


def test_tooth_reconstructs(tooth):
    p, theta = tooth
    c = find_center(p, theta)
    rec = np.asarray(reconstruct(p, theta, center=c, backend="builtin"))
    assert rec.shape == (2, 640, 640) and np.all(np.isfinite(rec))
    r = rec[0]
    yy, xx = np.mgrid[:640, :640] - 319.5
    rad = np.hypot(xx, yy)
    # Air: the ring between the tooth and the edge of the field of view.
    air = (rad > 250) & (rad < 310)
    tissue = r > 0.5 * np.percentile(r, 99.5)
    assert abs(np.median(r[air])) < 0.05 * np.percentile(r, 99.5)
    # The tooth: one compact object near the centre, a few percent of the slice.
    frac = tissue.mean()
    assert 0.05 < frac < 0.3, frac
    ys, xs = np.nonzero(tissue)
    assert np.hypot(xs.mean() - 319.5, ys.mean() - 319.5) < 80
    assert rad[tissue].max() < 200
    # Both rows show the same structure.
    assert np.corrcoef(rec[0].ravel(), rec[1].ravel())[0, 1] > 0.9


def test_gridrec_on_the_small_grid_matches_the_phantom_and_the_2x_grid():
    """Width 5 (the default) grids onto a 1.25 x grid after cutting the
    filtered projections to it, width 4 onto the 2 x grid without the cut:
    both against the phantom, and each other, with the axis off the
    detector's middle and a different centre in each row of a pair (each
    slice's cut follows its own axis)."""
    n, n_ang = 256, 403
    theta = np.linspace(0, np.pi, n_ang, endpoint=False)
    centers = [(n - 1) / 2 + 9.3, (n - 1) / 2 - 14.6]
    pairs = [smooth_shepp(n, theta, center=c, seed=i) for i, c in enumerate(centers)]
    p = np.stack([q for _, q in pairs], axis=1)
    small = reconstruct(p, theta, center=centers, backend="builtin")
    wide = reconstruct(p, theta, center=centers, backend="builtin", kernel_width=4)
    m = fov(n)
    for i, (img, _) in enumerate(pairs):
        c, s = corr_scale(small[i], img, m)
        assert c >= 0.999 and abs(s - 1) < 0.01, (i, c, s)
        d = np.abs(small[i] - wide[i])[m].max() / np.abs(wide[i][m]).max()
        assert d < 2e-3, (i, d)
    # no mask: the grid also holds the corners (no cut-out edge shows there)
    nomask = reconstruct(p[:, :1], theta, center=centers[0], backend="builtin", mask=False)
    ref = reconstruct(
        p[:, :1], theta, center=centers[0], backend="builtin", mask=False, kernel_width=4
    )
    assert np.abs(nomask - ref).max() < 2e-3 * np.abs(ref).max()


def test_gridrec_grid_length_out_of_range_raises():
    from scintomo import _core

    p = np.ones((8, 1, 32), np.float32)
    th = np.linspace(0, np.pi, 8, endpoint=False)
    args = (p, th.tolist(), angle_weights(th).tolist(), [15.5])
    kw = dict(algorithm="gridrec", filter="shepp", n_out=32, pad_len=64, kernel_width=5)
    for g in (20, 65):
        with pytest.raises(ParameterError, match="grid length"):
            _core.recon_builtin(*args, **kw, grid_len=g)
    assert np.isfinite(_core.recon_builtin(*args, **kw, grid_len=64)).all()
