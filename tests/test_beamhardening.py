"""Beam-hardening linearisation.

A cylinder of aluminium is projected in an 80 kVp Kramers beam (1 mm Al
filter), the -ln(I/I0) computed from xraydb's attenuation over the spectrum
(independent of the fit), and reconstructed with and without the correction.
The monochromatic reference is the same cylinder with the single attenuation
mu_ref: a flat disc. The test asks the corrected reconstruction to be within
1% of it, where the uncorrected one is cupped by several percent.
"""

from __future__ import annotations

import numpy as np
import pytest

import scintomo.beamhardening as bh
from scintomo.detector import kramers_spectrum
from scintomo.exceptions import ParameterError, ScintomoWarning
from scintomo.recon import reconstruct

PX = 0.05  # mm per pixel
W, R = 256, 90  # columns, cylinder radius in pixels (9 mm diameter)


def _chords():
    s = (np.arange(W) - (W - 1) / 2) * PX
    return 2 * np.sqrt(np.clip((R * PX) ** 2 - s**2, 0, None))  # mm, same at every angle


def _recon(p):
    theta = np.linspace(0, np.pi, 360, endpoint=False)
    sino = np.repeat(p[None, None, :], theta.size, axis=0).astype(np.float32)
    return np.asarray(reconstruct(sino, theta, algorithm="fbp"))[0] / PX  # 1/mm


def _profile(img, frac=0.85):
    """Values of the reconstruction inside frac x R, and their mean by radius bands."""
    n = img.shape[0]
    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2
    r = np.hypot(x, y)
    inside = r < frac * R
    centre, rim = img[r < 0.2 * R].mean(), img[(r > 0.7 * R) & (r < frac * R)].mean()
    return img[inside], (rim - centre) / img[inside].mean()


@pytest.fixture(scope="module")
def beam():
    return kramers_spectrum(80.0)


def test_spectrum_correction_removes_cupping(beam):
    L = _chords()
    p_poly = bh.polychromatic_projection(L, spectrum=beam, material="Al", density=2.699)
    corr = bh.from_spectrum(beam, material="Al", density=2.699, max_thickness=2 * R * PX)
    mono = _recon(corr.mu_ref * L)
    poly = _recon(p_poly)
    fixed = _recon(corr.apply(p_poly))
    vals_mono, cup_mono = _profile(mono)
    _, cup_poly = _profile(poly)
    vals_fixed, cup_fixed = _profile(fixed)
    assert cup_poly > 0.05  # visibly cupped without correction
    assert abs(cup_fixed - cup_mono) < 0.01
    np.testing.assert_allclose(vals_fixed, vals_mono, rtol=0.01)
    assert corr.to_dict()["mu_ref_per_mm"] == pytest.approx(corr.mu_ref)


def test_step_wedge_calibration_matches(beam):
    steps = np.arange(1, 11) * 1.0  # mm of Al
    measured = bh.polychromatic_projection(steps, spectrum=beam, material="Al", density=2.699)
    rng = np.random.default_rng(0)
    measured = measured * (1 + 1e-4 * rng.standard_normal(steps.size))  # measurement noise
    corr = bh.from_step_wedge(measured, steps, degree=3)
    L = _chords()
    fixed = _recon(
        corr.apply(bh.polychromatic_projection(L, spectrum=beam, material="Al", density=2.699))
    )
    mono = _recon(corr.mu_ref * L)
    vals_fixed, cup = _profile(fixed)
    vals_mono, cup_mono = _profile(mono)
    assert abs(cup - cup_mono) < 0.01
    np.testing.assert_allclose(vals_fixed, vals_mono, rtol=0.01)


def test_apply_keeps_air_and_extrapolates(beam):
    corr = bh.from_spectrum(kvp=60.0, material="Al", density=2.699, max_thickness=5.0)
    p = np.array([[0.0, 0.1, corr.p_max * 1.2]], dtype=np.float32)
    p0 = p.copy()
    with pytest.warns(ScintomoWarning, match="1 value"):
        out = corr.apply(p)
    np.testing.assert_array_equal(p, p0)
    assert out.dtype == np.float32 and out[0, 0] == 0.0
    assert out[0, 2] > corr.apply(np.float32([0.99 * corr.p_max]))[0]  # still increasing


def test_bad_calibrations():
    with pytest.raises(ParameterError, match="grow"):
        bh.from_step_wedge([0.5, 0.4, 0.6], [1.0, 2.0, 3.0], degree=2)
    with pytest.raises(ParameterError, match="degree"):
        bh.from_step_wedge([0.1, 0.2], [1.0, 2.0], degree=3)
    with pytest.raises(ParameterError, match="kvp"):
        bh.from_spectrum(material="Al", density=2.7, max_thickness=1.0)
    with pytest.raises(ParameterError, match="xraydb"):
        bh.from_spectrum(kvp=60, material="Qq", density=2.7, max_thickness=1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_apply_matches_numpy_polyval(dtype, n_threads):
    """The Rust kernel gives numpy's float64 polyval (and the tangent above p_max) to
    float32 rounding, for any dtype, thread count and memory layout; input untouched."""
    rng = np.random.default_rng(1)
    corr = bh.BeamHardening((1.02, 0.08, -0.011, 0.0009), 1.1, 2.5, 0.0)
    scale = 3.0 if dtype != np.uint16 else 3000.0
    p = (rng.uniform(0.0, 1.0, (7, 5, 33)) * scale).astype(dtype)
    p = p[:, ::2, 1:]  # not contiguous
    keep = p.copy()
    x = p.astype(np.float32).astype(np.float64)
    c = np.array(corr.coefficients)
    k = np.arange(1, c.size + 1)
    y_max, slope = np.sum(c * 2.5**k), np.sum(c * k * 2.5 ** (k - 1))
    ref = np.polynomial.polynomial.polyval(x, np.concatenate([[0.0], c]))
    ref = np.where(x > 2.5, y_max + slope * (x - 2.5), ref)
    with pytest.warns(ScintomoWarning, match=f"{int((x > 2.5).sum())} value"):
        got = corr.apply(p, n_threads=n_threads)
    assert got.dtype == np.float32 and got.shape == p.shape
    np.testing.assert_allclose(got, ref, rtol=2e-7, atol=1e-7 * np.abs(ref).max())
    np.testing.assert_array_equal(p, keep)


def test_apply_in_place_and_into_out():
    corr = bh.BeamHardening((1.0, 0.1), 0.5, 10.0, 0.0)
    p = np.linspace(0, 3, 40, dtype=np.float32).reshape(4, 10)
    ref = p + 0.1 * p.astype(np.float64) ** 2
    out = np.empty_like(p)
    assert corr.apply(p, out=out) is out
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    q = p.copy()
    assert corr.apply(q, out=q) is q
    np.testing.assert_allclose(q, ref, rtol=1e-6)
    o64 = np.empty(p.shape)
    corr.apply(p, out=o64)
    np.testing.assert_allclose(o64, ref, rtol=1e-6)
    with pytest.raises(ParameterError):
        corr.apply(p, n_threads=0)
