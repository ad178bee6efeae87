"""Dynamic flat-field (eigen flat fields, Van Nieuwenhove et al. 2015).

A simulated scan whose beam drifts: the flat behind each projection is a
reference flat plus two drift patterns (a horizontal ripple that moves, as a
film's or a source's structure does, and a vertical gradient) with weights
that change along the scan. The flats sample the same drift at other times.
Conventional correction (one mean flat) leaves the drift in the projections
as column stripes (rings after reconstruction); the dynamic one removes them.
The truth is the transmission the projections were made from.
"""

from __future__ import annotations

import numpy as np
import pytest

from scintomo.exceptions import ParameterError, ShapeError
from scintomo.flatfield import correct, dynamic, eigen_flats

H, W, N, F = 32, 96, 40, 24


def _scan(seed=0, counts=2e4):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    base = counts * (1.0 + 0.3 * np.exp(-((x - W / 2) ** 2) / (2 * 40.0**2)))
    ripple = counts * 0.06 * np.sin(2 * np.pi * x / 7.0)  # stripes that drift
    ripple2 = counts * 0.06 * np.cos(2 * np.pi * x / 7.0)
    slope = counts * 0.05 * (y / H - 0.5)

    def flat(a, b, c):
        return base + a * ripple + b * ripple2 + c * slope

    # flats at random states of the drift
    fa, fb, fc = rng.uniform(-1, 1, (3, F))
    flats = np.stack([flat(*abc) for abc in zip(fa, fb, fc, strict=True)])
    # projections: a phase-moving ripple (the pattern walks sideways) and a slow gradient
    phase = np.linspace(0, 1.5 * np.pi, N)
    pa, pb, pc = np.cos(phase), np.sin(phase), np.linspace(-0.8, 0.8, N)
    true_flats = np.stack([flat(*abc) for abc in zip(pa, pb, pc, strict=True)])
    # sample: a cylinder moving across the field (transmission 0.4 .. 1), air at both sides
    t = np.ones((N, H, W))
    for j in range(N):
        cx = W / 2 + 10 * np.sin(2 * np.pi * j / N)
        r = np.abs(x - cx) / 18.0
        t[j] = np.where(r < 1, np.exp(-0.9 * np.sqrt(np.clip(1 - r**2, 0, 1))), 1.0)
    darks = rng.normal(100.0, 2.0, (5, H, W))
    proj = rng.poisson(true_flats * t).astype(np.float64) + 100.0
    flats_noisy = rng.poisson(flats).astype(np.float64) + 100.0
    return (
        proj.astype(np.float32),
        flats_noisy.astype(np.float32),
        darks.astype(np.float32),
        t,
    )


def _stripes(norm, t):
    """RMS over columns of the error's mean down the rows and over angles, in the air
    columns and the sample's alike: the column stripes that become rings."""
    err = norm / t - 1.0
    return float(np.std(err.mean(axis=1), axis=1).mean())


@pytest.mark.parametrize("method", ["tv", "air"])
def test_dynamic_removes_drift_stripes(method):
    proj, flats, darks, t = _scan()
    conventional = correct(proj, flats, darks)
    air = (slice(None), slice(0, 12)) if method == "air" else None
    dyn, model = dynamic(proj, flats, darks, method=method, air=air, return_model=True)
    assert dyn.dtype == np.float32 and dyn.shape == proj.shape
    assert model.n_components == 3  # parallel analysis finds the three drift patterns
    s_conv, s_dyn = _stripes(conventional, t), _stripes(dyn, t)
    # Poisson noise alone (2e4 counts, averaged over 32 rows) gives ~0.0013
    assert s_conv > 0.02
    assert s_dyn < 0.003, (s_conv, s_dyn)
    # and the transmission itself is right to the noise
    assert np.sqrt(np.mean((dyn - t) ** 2)) < 0.015


def test_dynamic_inputs_unchanged_and_errors():
    proj, flats, darks, _ = _scan()
    p0, f0 = proj.copy(), flats.copy()
    dynamic(proj[:3], flats, darks, n_components=2)
    np.testing.assert_array_equal(proj, p0)
    np.testing.assert_array_equal(flats, f0)
    with pytest.raises(ShapeError, match="at least 3"):
        dynamic(proj, flats[:2], darks)
    with pytest.raises(ParameterError, match="air"):
        dynamic(proj, flats, darks, method="air")
    with pytest.raises(ParameterError, match="n_components"):
        dynamic(proj, flats, darks, n_components=F)
    with pytest.raises(ShapeError):
        dynamic(proj[:, :10], flats, darks)
    with pytest.raises(ParameterError, match="downsample"):
        dynamic(proj, flats, darks, downsample=0)


def test_eigen_flats_match_numpy_pca():
    """The eigen flats span the principal subspace numpy's covariance gives."""
    _, flats, darks, _ = _scan()
    m = eigen_flats(flats, darks, n_components=3)
    a = flats.reshape(F, -1).astype(np.float64) - darks.mean(axis=0).ravel()
    np.testing.assert_allclose(m.mean_flat.ravel(), a.mean(axis=0), rtol=1e-5)
    ac = a - a.mean(axis=0)
    # the pixel covariance ac.T ac / (F - 1) has the nonzero eigenvalues of the Gram matrix
    ev = np.sort(np.linalg.eigvalsh(ac @ ac.T / (F - 1)))[::-1][:3]
    np.testing.assert_allclose(m.eigenvalues[:3], ev, rtol=1e-6)


def test_basis_of_one_band_gives_every_band_its_eigen_flats_and_weights_apply():
    """The basis (eigen flats as combinations of the centred flats, u_k / sqrt(F - 1) of
    the flats' SVD) rebuilds the SVD's eigen flats, also of any subset of rows; with given
    weights, dynamic() is (P - D) / (mean + w . u), as numpy computes it in float64."""
    proj, flats, darks, _ = _scan()
    model = eigen_flats(flats, darks, n_components=3)
    assert model.basis.shape == (F, 3)
    again = eigen_flats(flats, darks, basis=model.basis)
    np.testing.assert_allclose(again.eigen_flats, model.eigen_flats, atol=1e-3 * np.abs(
        model.eigen_flats).max())  # fmt: skip
    rows = slice(5, 13)
    sub = eigen_flats(flats[:, rows], darks[:, rows], basis=model.basis)
    np.testing.assert_allclose(sub.eigen_flats, model.eigen_flats[:, rows], atol=1e-3 * np.abs(
        model.eigen_flats).max())  # fmt: skip
    w = np.random.default_rng(4).normal(0, 1, (N, 3))
    got = dynamic(proj[:, rows], flats[:, rows], darks[:, rows], weights=w, basis=model.basis)
    d = darks.astype(np.float64).mean(0)[rows]
    f = flats.astype(np.float64)[:, rows] - d
    a = (f - f.mean(0)).reshape(F, -1)
    ef = (model.basis.T @ a).reshape(3, *f.shape[1:])
    ref = (proj[:, rows] - d) / (f.mean(0) + np.einsum("nk,khw->nhw", w, ef))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=2e-5)
    with pytest.raises(ParameterError, match="together"):
        dynamic(proj, flats, darks, weights=w)
    with pytest.raises(ShapeError):
        dynamic(proj, flats, darks, weights=w[:5], basis=model.basis)
    with pytest.raises(ShapeError):
        dynamic(proj, flats, darks, weights=w, basis=model.basis[:5])
