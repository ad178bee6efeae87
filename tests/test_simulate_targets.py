"""Synthetic resolution targets: PSF models against closed forms, rendering checks."""

import math

import numpy as np
import pytest

from scintomo.exceptions import ParameterError
from scintomo.simulate import (
    ExponentialPSF,
    GaussianPSF,
    LorentzianPSF,
    MixturePSF,
    bar_target,
    slanted_edge,
)


@pytest.mark.parametrize("psf", [GaussianPSF(0.3), GaussianPSF(2.0), LorentzianPSF(0.7)])
def test_numerical_esf_matches_closed_form(psf):
    x = np.linspace(-20, 20, 4001)
    tol = 2e-3 if isinstance(psf, LorentzianPSF) else 2e-4  # Cauchy tail: periodisation
    assert np.abs(psf.esf_numerical(x) - psf.esf_exact(x)).max() < tol


def test_exponential_lsf_matches_bessel_form():
    # line integral of exp(-r/b)/(2 pi b^2): |x| K1(|x|/b) / (pi b^2)
    from scipy.special import k1

    b = 1.5
    psf = ExponentialPSF(b)
    x = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    ref = x * k1(x / b) / (np.pi * b**2)
    np.testing.assert_allclose(psf.lsf(x), ref, rtol=2e-3)


def test_mixture_mtf_is_mixture():
    m = MixturePSF(0.7, 1.0, 5.0)
    f = np.linspace(0, 0.5, 11)
    np.testing.assert_allclose(
        m.mtf(f), 0.7 * GaussianPSF(1.0).mtf(f) + 0.3 * ExponentialPSF(5.0).mtf(f)
    )
    assert m.esf(np.array([-200.0]))[0] < 1e-6 and m.esf(np.array([200.0]))[0] > 1 - 1e-6


def test_slanted_edge_levels_and_symmetry():
    im = slanted_edge((64, 64), 5.0, GaussianPSF(0.5), low=0.1, contrast=0.8)
    assert im.dtype == np.float32
    assert abs(im[:, :5].mean() - 0.1) < 1e-6 and abs(im[:, -5:].mean() - 0.9) < 1e-6
    # point symmetry about the centre: I(r, c) + I(-r, -c) = 2 * mid-level
    np.testing.assert_allclose(im + im[::-1, ::-1], 1.0, atol=1e-5)


def test_slanted_edge_pixel_integration_is_exact_for_vertical_edge():
    # 8 columns, centre x = 3.5; the edge at x = 3.25 crosses pixel 3 (3.0 +- 0.5)
    # 0.25 px right of its centre: 0.25 of its area is bright
    im = slanted_edge((4, 8), 0.0, GaussianPSF(1e-3), low=0.0, contrast=1.0, offset_px=-0.25)
    np.testing.assert_allclose(im[0], [0, 0, 0, 0.25, 1, 1, 1, 1], atol=1e-4)


def test_noise_level():
    im = slanted_edge((128, 128), 5.0, snr=10, contrast=0.8, seed=0)
    assert abs(np.std(np.diff(im[:, :20], axis=1)) / math.sqrt(2) - 0.08) < 0.01


def test_bar_target_regions_and_bad_input():
    img, groups = bar_target([0.05, 0.1], GaussianPSF(0.5), n_bars=5)
    assert len(groups) == 2
    for (r0, r1, c0, c1), _f in groups:
        p = img[r0:r1, c0:c1].mean(axis=0)
        assert p.max() > 0.8 and p.min() < 0.2
    with pytest.raises(ParameterError):
        bar_target([0.6])
    with pytest.raises(ParameterError):
        GaussianPSF(-1)
