"""PSF model, pinhole and edge measurements, files."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import integrate
from scipy.signal import fftconvolve

from scintomo import psf as P
from scintomo.exceptions import FileFormatError, NumericalError, ParameterError, ShapeError
from scintomo.simulate import GaussianPSF, LorentzianPSF, PSFModel, slanted_edge


def render_edge(
    sigma,
    t,
    w,
    *,
    tail="exponential",
    angle_deg=5.0,
    h=160,
    wd=200,
    ss=4,
    noise=0.002,
    seed=0,
    reach=None,
):
    """A slanted edge through a known PSF, independently of the fitting code:
    a half-plane on a grid ss times finer than the pixels, convolved (scipy)
    with the model sampled on that grid, then averaged over each pixel."""
    reach = reach if reach is not None else (10 * t if tail == "exponential" else 30 * t)
    pad = int(reach) + 10
    big_h, big_w = (h + 2 * pad) * ss, (wd + 2 * pad) * ss
    yy, xx = np.mgrid[:big_h, :big_w]
    tan = np.tan(np.deg2rad(angle_deg))
    edge = (xx + 0.5) / ss - big_w / (2 * ss) - ((yy + 0.5) / ss - big_h / (2 * ss)) * tan > 0
    r = int(reach * ss)
    g = np.arange(-r, r + 1) / ss
    rad = np.hypot(g[:, None], g[None, :])
    s2 = 2 * sigma**2
    core = np.exp(-(rad**2) / s2) / (np.pi * s2)
    halo = (np.exp(-rad / t) if tail == "exponential" else (1 + (rad / t) ** 2) ** -1.5) / (
        2 * np.pi * t * t
    )
    k = (1 - w) * core + w * halo
    k /= k.sum()
    blurred = fftconvolve(edge.astype(float), k, mode="same")
    img = blurred.reshape(big_h // ss, ss, big_w // ss, ss).mean(axis=(1, 3))[pad:-pad, pad:-pad]
    rng = np.random.default_rng(seed)
    return 0.1 + 0.8 * img + rng.normal(0, noise, img.shape)


# --- model ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tail", ["exponential", "lorentzian"])
def test_profile_and_lsf_are_normalised_and_consistent(tail):
    kw = dict(sigma_um=1.3, tail=tail, tail_um=3.0, tail_weight=0.4)
    total, _ = integrate.quad(
        lambda r: 2 * np.pi * r * P.radial_profile(r, **kw), 0, np.inf, limit=200
    )
    assert abs(total - 1) < 1e-6
    lsf_total, _ = integrate.quad(lambda x: P.line_spread(x, **kw), -np.inf, np.inf, limit=200)
    assert abs(lsf_total - 1) < 1e-6
    # LSF is the projection of the 2-D PSF (Abel transform), checked at a few x
    for x in (0.0, 0.7, 2.5, 6.0):
        proj, _ = integrate.quad(
            lambda y, x=x: P.radial_profile(np.hypot(x, y), **kw), -np.inf, np.inf, limit=200
        )
        assert abs(proj - P.line_spread(x, **kw)) < 1e-6 * max(1.0, proj)


def test_model_is_unit_sum_centred_and_matches_analytic_mtf():
    p = P.model(sigma_um=1.0, pixel_size_um=0.5)  # sigma = 2 px
    assert p.array.dtype == np.float32 and p.array.shape[0] % 2 == 1
    assert abs(p.array.sum() - 1) < 1e-6
    c = p.array.shape[0] // 2
    assert np.unravel_index(np.argmax(p.array), p.array.shape) == (c, c)
    np.testing.assert_allclose(p.array, p.array.T, atol=1e-7)
    f = np.array([0.05, 0.1, 0.15])
    # Gaussian with sigma 2 px times the pixel aperture sinc(f)
    want = np.exp(-2 * np.pi**2 * 4 * f**2) * np.sinc(f)
    np.testing.assert_allclose(p.mtf(f), want, atol=2e-3)
    assert p.pixel_size_um == 0.5 and p.fit.sigma_um == 1.0


def test_model_rejects_bad_parameters():
    with pytest.raises(ParameterError):
        P.model(sigma_um=-1)
    with pytest.raises(ParameterError):
        P.model(sigma_um=1, tail_weight=0.5)  # no tail_um
    with pytest.raises(ParameterError):
        P.model(sigma_um=1, tail="gaussian")
    with pytest.raises(ParameterError):
        P.model(sigma_um=1, size=10)


# --- point ---------------------------------------------------------------------------------------


def test_from_point_recovers_an_offset_spot():
    truth = P.model(sigma_um=1.5, tail_um=3.0, tail_weight=0.2, size=31)
    img = np.full((80, 90), 50.0)
    k = truth.array.astype(float) * 1e5
    img[20:51, 35:66] += k  # centre at (35, 50)
    from scipy import ndimage

    img = ndimage.shift(img, (0.3, -0.4), order=3)
    got = P.from_point(img, size=31, pixel_size_um=0.65)
    assert got.pixel_size_um == 0.65
    assert abs(got.array.sum() - 1) < 1e-5
    # cubic interpolation of a 1.5-pixel core costs a few per cent of the peak
    np.testing.assert_allclose(got.array, truth.array, atol=0.05 * truth.array.max())
    yy, xx = np.mgrid[:31, :31]
    cy, cx = (got.array * yy).sum(), (got.array * xx).sum()
    assert abs(cy - 15) < 0.05 and abs(cx - 15) < 0.05


# --- edge ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sigma", "b", "w", "angle"), [(1.5, 6.0, 0.3, 5.0), (1.0, 4.0, 0.15, 3.5)]
)
def test_from_edge_fits_gaussian_plus_exponential_within_5_percent(sigma, b, w, angle):
    img = render_edge(sigma, b, w, angle_deg=angle)
    p = P.from_edge(img, pixel_size_um=0.5)
    f = p.fit
    print(
        f"sigma {f.sigma_um / 0.5:.3f} +- {f.sigma_err_um / 0.5:.3f} (true {sigma}), "
        f"b {f.tail_um / 0.5:.3f} +- {f.tail_err_um / 0.5:.3f} (true {b}), "
        f"w {f.tail_weight:.3f} +- {f.tail_weight_err:.3f} (true {w})"
    )
    assert abs(f.sigma_um / 0.5 - sigma) <= 0.05 * sigma
    assert abs(f.tail_um / 0.5 - b) <= 0.05 * b
    assert abs(f.tail_weight - w) <= 0.05 * w
    assert 0 < f.sigma_err_um < 0.05 * f.sigma_um and 0 < f.tail_err_um < 0.1 * f.tail_um
    assert p.pixel_size_um == 0.5 and abs(p.array.sum() - 1) < 1e-5


@dataclass(frozen=True)
class _GaussLorentz(PSFModel):
    """(1 - w) Gaussian(sigma) + w Lorentzian(g), by scintomo.simulate's exact ESFs."""

    w: float = 0.3
    sigma: float = 1.0
    g: float = 3.0

    def mtf(self, f):
        return (1 - self.w) * GaussianPSF(self.sigma).mtf(f) + self.w * LorentzianPSF(self.g).mtf(f)

    def esf(self, x):
        return (1 - self.w) * GaussianPSF(self.sigma).esf(x) + self.w * LorentzianPSF(self.g).esf(x)


@pytest.mark.parametrize(
    ("sigma", "g", "w", "angle", "shape"),
    [
        (1.5, 3.0, 0.3, 5.0, (160, 200)),
        (1.0, 2.0, 0.15, 3.5, (160, 200)),
        (1.5, 8.0, 0.3, 5.0, (160, 200)),
    ],
)
def test_from_edge_fits_gaussian_plus_lorentzian_within_5_percent(sigma, g, w, angle, shape):
    # rendered by the simulator (pixel-integrated exact ESF), not by psf.py;
    # the tail reaches the plateaus only as g / (pi x), far outside the field
    img = slanted_edge(shape, angle, _GaussLorentz(w, sigma, g), snr=400, seed=1, supersample=8)
    f = P.from_edge(img, tail="lorentzian", pixel_size_um=0.5).fit
    print(
        f"sigma {f.sigma_um / 0.5:.3f} +- {f.sigma_err_um / 0.5:.3f} (true {sigma}), "
        f"g {f.tail_um / 0.5:.3f} +- {f.tail_err_um / 0.5:.3f} (true {g}), "
        f"w {f.tail_weight:.3f} +- {f.tail_weight_err:.3f} (true {w})"
    )
    assert f.tail == "lorentzian"
    assert abs(f.sigma_um / 0.5 - sigma) <= 0.05 * sigma
    assert abs(f.tail_um / 0.5 - g) <= 0.05 * g
    assert abs(f.tail_weight - w) <= 0.05 * w
    assert 0 < f.sigma_err_um < 0.05 * f.sigma_um and 0 < f.tail_err_um < 0.1 * f.tail_um
    assert 0 < f.tail_weight_err < 0.1 * f.tail_weight
    # the quoted uncertainties are not wildly optimistic
    assert abs(f.tail_um / 0.5 - g) < 5 * f.tail_err_um / 0.5 + 0.01 * g


def test_from_edge_horizontal_edge_and_inverse_abel():
    img = render_edge(1.5, 5.0, 0.25, angle_deg=4.0).T  # near-horizontal edge
    p = P.from_edge(img)
    assert abs(p.fit.sigma_um - 1.5) < 0.1 and abs(p.fit.tail_um - 5.0) < 0.3
    # the non-parametric inverse-Abel profile follows the true profile in the tail
    r = np.array(p.fit.radius_um)
    prof = np.array(p.fit.profile)
    true = P.radial_profile(r, sigma_um=1.5, tail_um=5.0, tail_weight=0.25)
    sel = (r > 4) & (r < 15)
    assert np.median(np.abs(prof[sel] / true[sel] - 1)) < 0.25


def test_from_edge_rejects_bad_images():
    with pytest.raises(ShapeError):
        P.from_edge(np.ones((5, 5)))
    with pytest.raises(ParameterError):
        P.from_edge(np.full((40, 40), np.nan))
    with pytest.raises(NumericalError, match="no edge"):
        P.from_edge(np.ones((64, 64)), tail="lorentzian", warn=False)


# --- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_save_load_round_trip(tmp_path, suffix):
    p = P.model(sigma_um=0.8, tail="lorentzian", tail_um=2.0, tail_weight=0.1, pixel_size_um=0.325)
    path = p.save(tmp_path / f"psf{suffix}")
    q = P.load(path)
    np.testing.assert_array_equal(q.array, p.array)
    assert q.pixel_size_um == 0.325
    assert json.dumps(q.fit.to_dict()) == json.dumps(p.fit.to_dict())
    assert not list(tmp_path.glob(".*part*"))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        P.load(tmp_path / "nope.npy")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not numpy")
    with pytest.raises(FileFormatError):
        P.load(bad)
    with pytest.raises(ParameterError):
        P.model(sigma_um=1).save(tmp_path / "psf.txt")
