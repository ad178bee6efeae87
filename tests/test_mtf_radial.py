"""Radial-edge MTF (ASTM E1695) against analytic truth.

Discs are rendered on an 8x finer grid, blurred there by a Gaussian (scipy)
and block-averaged to pixels, independent of the code under test. Truth:
exp(-2 pi^2 sigma^2 f^2) x the pixel aperture, which for a disc's radial ESF
is the azimuthal mean of sinc(f cos a) sinc(f sin a). Reconstructions: exact
projections of a cylinder (one ellipse) blurred along the detector by a
Gaussian: truth exp(-2 pi^2 sigma^2 f^2) x sinc(f) (the detector pixel).
"""

import json
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.optimize import brentq

from scintomo.exceptions import NonFiniteError, NumericalError, ParameterError, ShapeError
from scintomo.mtf import RadialMTF, radial_edge_mtf
from scintomo.recon import reconstruct
from scintomo.simulate import ellipse_projections, ellipses_image, shepp_logan_ellipses


def _disc(n, cr, cc, radius, sigma, *, ss=8, lo=0.1, hi=0.9):
    sub = (np.arange(n * ss) + 0.5) / ss - 0.5
    y, x = np.meshgrid(sub, sub, indexing="ij")
    img = np.where((y - cr) ** 2 + (x - cc) ** 2 <= radius**2, hi, lo)
    img = ndimage.gaussian_filter(img, sigma * ss, mode="nearest")
    return img.reshape(n, ss, n, ss).mean(axis=(1, 3)).astype(np.float32)


def _aperture(f):
    a = np.linspace(0, np.pi / 2, 181)
    f = np.atleast_1d(f)[:, None]
    return np.mean(np.sinc(f * np.cos(a)) * np.sinc(f * np.sin(a)), axis=1)


def _truth(sigma, f):
    return np.exp(-2 * math.pi**2 * sigma**2 * np.asarray(f) ** 2) * _aperture(f)


@pytest.mark.parametrize("sigma", [0.6, 1.0, 1.5, 2.5])
def test_radial_mtf_of_blurred_disc(sigma):
    img = _disc(160, 80.3, 78.6, 50.2, sigma)
    before = img.copy()
    r = radial_edge_mtf(img)
    np.testing.assert_array_equal(img, before)
    assert isinstance(r, RadialMTF)
    assert r.center == pytest.approx((80.3, 78.6), abs=0.02)
    assert r.radius_px == pytest.approx(50.2, abs=0.1)
    sel = r.frequencies <= 0.5
    assert np.max(np.abs(r.values[sel] - _truth(sigma, r.frequencies[sel]))) < 0.02
    m50 = brentq(lambda q: _truth(sigma, q)[0] - 0.5, 1e-4, 1.0)
    assert r.mtf50 == pytest.approx(m50, rel=0.02)


def test_radial_mtf_dark_disc_noise_and_given_centre():
    sigma = 1.0
    m50 = brentq(lambda q: _truth(sigma, q)[0] - 0.5, 1e-4, 1.0)
    dark = 1.0 - _disc(160, 82.0, 77.0, 40.0, sigma)
    r = radial_edge_mtf(dark, center=(80, 80))
    assert r.center == pytest.approx((82.0, 77.0), abs=0.03)
    assert r.mtf50 == pytest.approx(m50, rel=0.02)
    assert r.contrast < 0
    rng = np.random.default_rng(4)
    clean = _disc(160, 80.3, 78.6, 50.2, sigma)
    vals = [radial_edge_mtf(clean + rng.normal(0, 0.8 / 50, clean.shape)).mtf50 for _ in range(6)]
    # SNR 50 (contrast / noise): the whole circumference averages the noise
    assert np.max(np.abs(np.asarray(vals) / m50 - 1)) < 0.03


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.5])
def test_radial_mtf_of_reconstructed_cylinder(sigma):
    n = 192
    theta = np.linspace(0, np.pi, 600, endpoint=False)
    cylinder = np.array([[0.02, 60.0, 60.0, 3.3, -2.1, 0.0]])  # value, a, b, x0, y0, phi
    sino = ndimage.gaussian_filter1d(
        ellipse_projections(cylinder, theta, n), sigma, axis=1, mode="nearest"
    )
    rec = np.asarray(reconstruct(sino.astype(np.float32), theta, filter="ramp"))
    r = radial_edge_mtf(rec, pixel_size=0.65)
    # y points up: row = (n - 1) / 2 - y0
    assert r.center == pytest.approx(((n - 1) / 2 + 2.1, (n - 1) / 2 + 3.3), abs=0.03)

    def truth(f):
        return np.exp(-2 * math.pi**2 * sigma**2 * np.asarray(f) ** 2) * np.sinc(f)

    sel = r.frequencies <= 0.5
    assert np.max(np.abs(r.values[sel] - truth(r.frequencies[sel]))) < 0.02
    m50 = brentq(lambda q: truth(q) - 0.5, 1e-4, 1.0)
    assert r.mtf50 == pytest.approx(m50, rel=0.02)
    assert r.mtf50_lp_per_mm == pytest.approx(r.mtf50 * 1e3 / 0.65)
    # fbp's linear interpolation blurs more than gridrec's
    rec_fbp = np.asarray(
        reconstruct(sino.astype(np.float32), theta, filter="ramp", algorithm="fbp")
    )
    assert radial_edge_mtf(rec_fbp).mtf50 < r.mtf50


def test_radial_mtf_refuses_an_edge_that_is_not_a_circle():
    # an ellipse 2% out of round, a 10% one and the Shepp-Logan head: a
    # circle fitted to them would give a blurred, wrong ESF
    for ell in ([[0.8, 50, 49, 0, 0, 0.3]], [[0.8, 50, 45, 0, 0, 0.3]]):
        img = ellipses_image(np.array(ell, dtype=float), 160, supersample=8)
        with pytest.raises(NumericalError, match="not a circle"):
            radial_edge_mtf(img)
    with pytest.raises(NumericalError):
        radial_edge_mtf(ellipses_image(shepp_logan_ellipses(160), 160))
    # while noise alone (SNR 10, wide and narrow PSF) does not trip the check
    rng = np.random.default_rng(5)
    for sigma in (0.6, 2.5):
        img = _disc(160, 80.3, 78.6, 50.2, sigma) + rng.normal(0, 0.08, (160, 160))
        m50 = brentq(lambda q, s=sigma: _truth(s, q)[0] - 0.5, 1e-4, 1.0)
        assert radial_edge_mtf(img).mtf50 == pytest.approx(m50, rel=0.05)


def test_radial_mtf_dict_plot_and_errors(tmp_path):
    img = _disc(96, 48.0, 47.0, 30.0, 1.0)
    r = radial_edge_mtf(img, pixel_size="0.65um")
    d = r.to_dict()
    json.dumps(d)
    assert d["resolution_nm_at_mtf20"] == pytest.approx(1e6 / (2 * r.mtf20 * 1e3 / 0.65))
    r.plot().savefig(tmp_path / "radial.png")
    with pytest.raises(ShapeError):
        radial_edge_mtf(np.zeros((4, 96, 96)))
    with pytest.raises(NonFiniteError):
        bad = img.copy()
        bad[0, 0] = np.nan
        radial_edge_mtf(bad)
    with pytest.raises(NumericalError):
        radial_edge_mtf(np.ones((96, 96)))
    with pytest.raises(ParameterError):
        radial_edge_mtf(img, center=(500, 3))
    with pytest.raises(ParameterError):
        radial_edge_mtf(img, half_width_px=40)
    with pytest.raises(NumericalError):  # the disc touches the border
        radial_edge_mtf(_disc(96, 48.0, 47.0, 46.5, 1.0))
