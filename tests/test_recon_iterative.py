"""Iterative reconstruction (SIRT, CGLS, TV) and its projector pairs, against
independent references: ASTRA's CPU SIRT, numpy's least squares, analytic
Shepp-Logan projections, Richardson-Lucy + FBP."""

from __future__ import annotations

import numpy as np
import pytest

from scintomo import _core, psf, recon, simulate
from scintomo.exceptions import NonFiniteError, ParameterError, ShapeError


def _dot(a, b):
    return float(np.dot(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)))


def _theta(n, span=np.pi):
    return np.linspace(0, span, n, endpoint=False)


@pytest.mark.parametrize("with_psf", [False, True])
@pytest.mark.parametrize(("n", "nd", "nz"), [(16, 21, 5), (15, 12, 7)])
def test_parallel_adjoint(n, nd, nz, with_psf):
    rng = np.random.default_rng(n + nd)
    th = _theta(11) + 0.1
    centers = [(nd - 1) / 2 + 0.4] * nz
    k = rng.random((5, 3)).astype(np.float32) if with_psf else None
    x = rng.standard_normal((nz, n, n)).astype(np.float32)
    y = rng.standard_normal((11, nz, nd)).astype(np.float32)
    ax = _core.parallel_project(x, th.tolist(), centers, n_det=nd, psf=k)
    aty = _core.parallel_backproject(y, th.tolist(), centers, n=n, psf=k)
    lhs, rhs = _dot(ax, y), _dot(x, aty)
    assert abs(lhs - rhs) <= 1e-4 * max(abs(lhs), abs(rhs))


def test_cone_adjoint_with_psf():
    rng = np.random.default_rng(1)
    geo = dict(sod=60.0, sdd=150.0, pixel=2.0, center_col=11.3, center_row=6.8, tilt=0.05)
    shape, th = (9, 12, 10), (np.arange(5) * 0.37).tolist()
    k = rng.random((3, 5)).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal((5, 14, 22)).astype(np.float32)
    kw = dict(shape=shape, n_rows=14, n_cols=22, psf=k, **geo)
    ax = _core.cone_apply(x, th, **kw)
    aty = _core.cone_apply(y, th, adjoint=True, **kw)
    lhs, rhs = _dot(ax, y), _dot(x, aty)
    assert abs(lhs - rhs) <= 1e-4 * max(abs(lhs), abs(rhs))
    # Without the PSF it is the public cone pair.
    kw["psf"] = None
    np.testing.assert_allclose(
        _core.cone_apply(x, th, **kw),
        _core.cone_project(x, th, n_rows=14, n_cols=22, **geo),
        rtol=1e-5,
        atol=1e-5,
    )


def _shepp(n, n_ang, *, photons=None, seed=0):
    # Scaled so the longest line integral is about 0.6 (55 % transmission).
    ell = simulate.shepp_logan_ellipses(n, scale=0.02 * 128 / n)
    th = _theta(n_ang)
    sino = simulate.ellipse_projections(ell, th, n)
    if photons is not None:
        rng = np.random.default_rng(seed)
        counts = rng.poisson(photons * np.exp(-sino))
        sino = -np.log(np.maximum(counts, 1) / photons)
    return simulate.ellipses_image(ell, n), th, sino.astype(np.float32)


@pytest.mark.parametrize("nonnegative", [False, True])
def test_sirt_equals_astra(nonnegative):
    astra = pytest.importorskip("astra", reason="astra-toolbox (pip) is the SIRT reference")
    n, n_ang, n_iter = 64, 90, 25  # 2-degree steps: no angle at exactly 45 degrees
    _, th, sino = _shepp(n, n_ang, photons=1e4)
    vg = astra.create_vol_geom(n, n)
    pg = astra.create_proj_geom("parallel", 1.0, n, th)
    pid = astra.create_projector("linear", pg, vg)
    sid = astra.data2d.create("-sino", pg, sino)
    rid = astra.data2d.create("-vol", vg, 0)
    cfg = astra.astra_dict("SIRT")
    cfg.update(ReconstructionDataId=rid, ProjectionDataId=sid, ProjectorId=pid)
    if nonnegative:
        cfg["option"] = {"MinConstraint": 0.0}
    aid = astra.algorithm.create(cfg)
    astra.algorithm.run(aid, n_iter)
    want = astra.data2d.get(rid)
    for i in (aid, rid, sid):
        (astra.algorithm if i == aid else astra.data2d).delete(i)
    astra.projector.delete(pid)
    got = recon.reconstruct(
        sino, th, algorithm="sirt", iterations=n_iter, nonnegative=nonnegative, mask=None
    )
    assert got.dtype == np.float32 and got.shape == (n, n)
    err = np.abs(np.asarray(got) - want).max() / np.abs(want).max()
    assert err < 1e-3, err
    assert (np.asarray(got).min() >= 0) == nonnegative


def test_cgls_reaches_lstsq():
    n, nd, th = 8, 11, _theta(9) + 0.05
    c = [(nd - 1) / 2]
    # The dense matrix, column by column: the projector applied to unit vectors.
    a = np.empty((9 * nd, n * n))
    for p in range(n * n):
        e = np.zeros((1, n, n), np.float32)
        e.flat[p] = 1
        a[:, p] = _core.parallel_project(e, th.tolist(), c, n_det=nd).ravel()
    rng = np.random.default_rng(3)
    b = (a @ rng.random(n * n) + 0.05 * rng.standard_normal(a.shape[0])).astype(np.float32)
    want = np.linalg.lstsq(a, b.astype(np.float64), rcond=None)[0]
    res = recon.iterative(
        b.reshape(9, 1, nd), th, algorithm="cgls", iterations=200, tol=1e-7, n_out=n
    )
    r = res.residuals
    assert np.all(np.diff(r) <= 1e-6 * r[0]), r
    assert r[-1] == pytest.approx(np.linalg.norm(a @ want - b), rel=1e-4)
    np.testing.assert_allclose(res.volume.ravel(), want, atol=2e-3 * np.abs(want).max())
    # Weighted least squares: the same with sqrt(w) on both sides.
    w = rng.uniform(0.2, 2.0, b.size)
    want_w = np.linalg.lstsq(a * np.sqrt(w)[:, None], b * np.sqrt(w), rcond=None)[0]
    got_w = recon.iterative(
        b.reshape(9, 1, nd),
        th,
        algorithm="cgls",
        iterations=200,
        tol=1e-7,
        n_out=n,
        weights=w.reshape(9, 1, nd),
    ).volume
    np.testing.assert_allclose(got_w.ravel(), want_w, atol=2e-3 * np.abs(want_w).max())


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_tv_beats_fbp_with_few_noisy_views():
    n = 128
    truth, th, sino = _shepp(n, 60, photons=1e4, seed=5)
    fbp = recon.reconstruct(sino, th, algorithm="fbp", filter="ramp", mask=None)
    hann = recon.reconstruct(sino, th, algorithm="fbp", filter="hann", mask=None)
    tv = recon.reconstruct(sino, th, algorithm="tv", iterations=150, tv_weight=0.03)
    c_fbp, c_hann, c_tv = _corr(fbp, truth), _corr(hann, truth), _corr(tv, truth)
    # Measured: FBP 0.939 (ramp), 0.951 (Hann); TV 0.988.
    assert c_tv > max(c_fbp, c_hann) + 0.03, (c_tv, c_fbp, c_hann)
    assert np.asarray(tv).min() >= 0
    assert tv.meta["algorithm"] == "tv" and len(tv.meta["residuals"]) == 151


def test_cone_sirt_recovers_the_phantom():
    geo = recon.ConeGeometry(source_object=40.0, source_detector=100.0, pixel_size=250.0)
    shape = (16, 32, 32)
    vox = geo.voxel_size
    ell = simulate.shepp_logan_ellipsoids(12 * vox / 1e3 * 1e3)
    th = _theta(72, 2 * np.pi)
    proj = simulate.ellipsoid_cone_projections(ell, th, geo, (24, 40))
    truth = simulate.ellipsoids_volume(ell, shape, vox)
    fdk = recon.reconstruct(proj, th, geometry=geo, shape=shape)
    res = recon.iterative(proj, th, geometry=geo, shape=shape, algorithm="sirt", iterations=60)
    assert res.volume.shape == shape and res.volume.dtype == np.float32
    assert np.all(np.diff(res.residuals) <= 0)
    mid = slice(4, 12)
    assert _corr(res.volume[mid], truth[mid]) > max(0.9, _corr(fdk[mid], truth[mid]) - 0.02)


def test_stopping_rules_callback_and_start():
    _, th, sino = _shepp(48, 40)
    seen = []

    def cb(it, x, residual):
        seen.append((it, x.shape, residual))
        return it >= 4

    r = recon.iterative(sino, th, algorithm="sirt", iterations=50, callback=cb)
    assert r.stop == "callback" and r.iterations == 4 and seen[0][1] == (1, 48, 48)
    assert [s[2] for s in seen] == pytest.approx(list(r.residuals[1:]))
    r = recon.iterative(sino, th, algorithm="sirt", iterations=500, tol=5e-3)
    assert r.stop == "tolerance" and r.changes[-1] < 5e-3 and r.iterations < 500
    # Discrepancy principle: the first iterate below sqrt(m) sigma.
    sigma = 0.05
    r = recon.iterative(sino, th, algorithm="cgls", iterations=500, noise_sigma=sigma)
    target = sigma * np.sqrt(sino.size)
    assert r.stop == "discrepancy" and r.residuals[-1] <= target < r.residuals[-2]
    # From FBP the first residual is far below the one from zero.
    z = recon.iterative(sino, th, algorithm="sirt", iterations=2)
    f = recon.iterative(sino, th, algorithm="sirt", iterations=2, x0="fbp")
    assert f.residuals[0] < 0.3 * z.residuals[0] and f.meta["x0"] == "fbp"
    # Ordered subsets converge faster per sweep.
    truth = simulate.ellipses_image(simulate.shepp_logan_ellipses(48), 48)
    one = recon.iterative(sino, th, algorithm="sirt", iterations=5).volume
    os8 = recon.iterative(sino, th, algorithm="sirt", iterations=5, n_subsets=8).volume
    assert _corr(os8, truth) > _corr(one, truth)
    d = r.to_dict()
    assert d["stop"] == "discrepancy" and len(d["residuals"]) == r.iterations + 1


def test_input_is_not_modified_and_bad_input():
    _, th, sino = _shepp(32, 20)
    keep = sino.copy()
    recon.reconstruct(sino, th, algorithm="sirt", iterations=2)
    np.testing.assert_array_equal(sino, keep)
    stack = np.repeat(sino[:, None, :], 3, axis=1)
    with pytest.raises(ParameterError, match="iterations"):
        recon.reconstruct(sino, th, algorithm="sirt", iterations=-1)
    with pytest.raises(ShapeError, match="larger than the detector"):
        recon.reconstruct(stack, th, algorithm="sirt", iterations=2, psf=np.ones((5, 5)))
    with pytest.raises(ShapeError, match="weights"):
        recon.reconstruct(stack, th, algorithm="sirt", iterations=2, weights=np.ones((20, 32)))
    bad = sino.copy()
    bad[3, 4] = np.nan
    with pytest.raises(NonFiniteError):
        recon.reconstruct(bad, th, algorithm="sirt", iterations=2)
    with pytest.raises(ParameterError, match="unconstrained"):
        recon.iterative(sino, th, algorithm="cgls", nonnegative=True)
    with pytest.raises(ParameterError, match="n_subsets"):
        recon.iterative(sino, th, algorithm="sirt", n_subsets=21)
    with pytest.raises(ParameterError, match="iterative"):
        recon.reconstruct(sino, th, algorithm="fbp", iterations=3)
    with pytest.raises(ParameterError, match="weights"):
        recon.iterative(sino, th, weights=-np.ones_like(sino))
    with pytest.raises(ShapeError, match="x0"):
        recon.iterative(sino, th, x0=np.zeros((5, 5)))


def test_psf_in_the_model_beats_richardson_lucy_then_fbp():
    """Projections blurred by a Gaussian + exponential-halo PSF (scipy's
    convolution, the detector plane: rows are slices), with Poisson noise:
    TV with psf= against Richardson-Lucy on each projection then FBP, at a
    noise level (std in a flat region) at least as high as TV's."""
    from scipy.signal import fftconvolve

    from scintomo import deconv, mtf

    n, nz, na = 64, 12, 60
    k = psf.model(
        sigma_um=1.5, tail="exponential", tail_um=5.0, tail_weight=0.3, pixel_size_um=1.0, size=11
    )
    kk = k.array.astype(np.float64)
    # A disc (its edge gives the MTF) and three inserts; values per pixel.
    ell = np.array(
        [
            [0.03, 25, 25, 0, 0, 0],
            [0.015, 6, 3, -8, 7, 0.3],
            [-0.012, 4, 4, 7, -6, 0],
            [0.02, 2, 2, 9, 9, 0],
        ]
    )
    th = _theta(na)
    truth = simulate.ellipses_image(ell, n)
    sino = simulate.ellipse_projections(ell, th, n)
    stack = np.repeat(sino[:, None, :], nz, axis=1)
    blurred = np.stack([fftconvolve(p, kk, mode="same") for p in stack])
    rng = np.random.default_rng(1)
    i0 = 2e4
    counts = rng.poisson(i0 * np.exp(-blurred))
    b = (-np.log(np.maximum(counts, 1) / i0)).astype(np.float32)
    mid = nz // 2

    def mtf50(img):
        # The disc's edge 8 degrees above its rightmost point: a slanted,
        # slightly curved edge (quadratic fit).
        h, a = (n - 1) / 2, np.deg2rad(8)
        r0, c0 = int(h - 25 * np.sin(a)) - 10, int(h + 25 * np.cos(a)) - 10
        return mtf.edge_mtf(img[r0 : r0 + 20, c0 : c0 + 20], fit_order=2, n_bootstrap=0).mtf50

    def noise(img):
        return float(np.std(img[26:38, 18:26]))

    ours = np.asarray(
        recon.reconstruct(b, th, algorithm="tv", tv_weight=0.005, iterations=100, psf=k)
    )[mid]
    assert ours.min() >= 0
    best_rl = None
    for rl_iter in (10, 20, 40):
        d = deconv.richardson_lucy(np.maximum(b, 1e-6), k.array, iterations=rl_iter)
        f = np.asarray(recon.reconstruct(d, th, algorithm="fbp", filter="ramp", mask=None))[mid]
        if noise(f) >= noise(ours):
            best_rl = f
            break
    assert best_rl is not None, "Richardson-Lucy + FBP stays below TV's noise"
    c_ours, c_rl = _corr(ours, truth), _corr(best_rl, truth)
    m_ours, m_rl = mtf50(ours), mtf50(best_rl)
    print(
        f"TV+psf: corr {c_ours:.4f} mtf50 {m_ours:.3f} noise {noise(ours):.2e}; "
        f"RL+FBP: corr {c_rl:.4f} mtf50 {m_rl:.3f} noise {noise(best_rl):.2e}"
    )
    assert c_ours > c_rl
    assert m_ours > 1.2 * m_rl
