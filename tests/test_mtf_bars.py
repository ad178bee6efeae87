"""Bar-target resolution: Coltman-corrected contrast against the analytic MTF,
unit conversion, and the real Leeds TOR phantom image."""

import math
from pathlib import Path

import numpy as np
import pytest

from scintomo.exceptions import ParameterError
from scintomo.mtf import bar_mtf
from scintomo.mtf.bars import COLTMAN_TERMS, coltman
from scintomo.simulate import GaussianPSF, bar_target
from scintomo.units import lp_per_mm_to_resolution_nm

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FREQS = np.array([0.031, 0.053, 0.071, 0.093, 0.112, 0.131, 0.152, 0.183, 0.211, 0.243, 0.27, 0.31])


def analytic(f, sigma=1.0):
    return GaussianPSF(sigma).mtf(f) * np.sinc(f)  # PSF x pixel aperture across the bars


@pytest.fixture(scope="module")
def bars():
    return bar_target(FREQS, GaussianPSF(1.0), n_bars=20, supersample=8)


def test_coltman_coefficients():
    # (pi/4)[C(f) + C(3f)/3 - C(5f)/5 + C(7f)/7 + C(11f)/11 - C(13f)/13 - C(15f)/15 ...]
    d = dict(COLTMAN_TERMS)
    assert d[1] == 1 and d[3] == 1 / 3 and d[5] == -1 / 5 and d[7] == 1 / 7
    assert 9 not in d and d[11] == 1 / 11 and d[13] == -1 / 13 and d[15] == -1 / 15
    # exact inverse of the square-wave response of a known sine MTF
    f = np.array([0.05, 0.1, 0.2])

    def ctf(q):
        terms = ((-1) ** ((k - 1) // 2) * analytic(k * q) / k for k in range(1, 2001, 2))
        return (4 / np.pi) * sum(terms)

    np.testing.assert_allclose(coltman(ctf, f), analytic(f), rtol=1e-3)


def test_coltman_mtf_within_2_percent_of_analytic(bars):
    img, groups = bars
    b = bar_mtf(img, groups=groups, refine_frequency=False)
    ref = analytic(FREQS) / analytic(FREQS[0])  # normalised to the widest group, as measured
    err = np.abs(b.mtf / ref - 1)
    print("Coltman MTF relative error per group (%):", np.round(100 * err, 2))
    assert err.max() < 0.02
    # the raw square-wave contrast is higher than the sine MTF (no Coltman: > 2% off)
    assert np.max(b.ctf / ref - 1) > 0.05
    # with frequency refinement on the data (real cards): still within 2% up to 0.25 c/px
    br = bar_mtf(img, groups=groups)
    m = FREQS <= 0.25
    assert np.abs(br.mtf[m] / ref[m] - 1).max() < 0.02


def test_limit_frequency_and_units(bars):
    img, groups = bars
    px_um = 0.185
    g = [(roi, f * 1e3 / px_um) for roi, f in groups]  # lp/mm
    b = bar_mtf(img, groups=g, pixel_size="0.185um", threshold=0.5)
    # analytic MTF50 of the normalised curve
    from scipy.optimize import brentq

    f50 = brentq(lambda f: analytic(f) / analytic(FREQS[0]) - 0.5, 0.05, 0.4)
    assert b.frequency_unit == "lp/mm"
    assert abs(b.limit_frequency / (f50 * 1e3 / px_um) - 1) < 0.02
    assert math.isclose(b.resolution_nm, 1e6 / (2 * b.limit_frequency))
    assert b.to_dict()["resolution_nm"] == b.resolution_nm
    b.plot()


def test_580_lp_per_mm_is_862_nm():
    assert round(lp_per_mm_to_resolution_nm(580)) == 862


def test_bad_input():
    img = np.zeros((32, 32), np.float32)
    with pytest.raises(ParameterError):
        bar_mtf(img)  # no groups
    with pytest.raises(ParameterError):
        bar_mtf(img, groups=[((0, 40, 0, 10), 0.1)])
    with pytest.raises(ParameterError):
        bar_mtf(img, groups=[((0, 10, 0, 10), 0.7)])


# Leeds TOR: 4 rows x 3 columns of 5-bar groups (horizontal bars) located by eye in the
# 768 x 1024 image (hard-coded ROIs; automatic detection is not implemented). The
# frequency of each group is taken from its profile's spectral peak.
LEEDS_ROIS = [
    (319, 353, 474, 500), (318, 354, 514, 546), (316, 353, 563, 594),
    (361, 385, 474, 500), (360, 385, 514, 546), (359, 386, 563, 594),
    (388, 408, 474, 500), (388, 408, 514, 546), (388, 408, 563, 594),
    (411, 427, 514, 546), (410, 427, 563, 594),
]  # fmt: skip


def test_leeds_phantom_monotone():
    path = DATA / "leeds.dcm"
    if not path.exists():
        pytest.skip(f"{path} absent")
    pydicom = pytest.importorskip("pydicom")
    from pydicom.uid import ImplicitVRLittleEndian

    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    img = ds.pixel_array.astype(np.float32)
    groups = []
    for r0, r1, c0, c1 in LEEDS_ROIS:
        p = img[r0:r1, c0:c1].mean(axis=1)
        p = (p - p.mean()) * np.hanning(p.size)
        f = np.fft.rfftfreq(4096)
        sp = np.abs(np.fft.rfft(p, 4096))
        m = f > 0.08
        groups.append(((r0, r1, c0, c1), float(f[m][np.argmax(sp[m])]) / 0.388))
    b = bar_mtf(img, groups=groups, pixel_size="0.388mm")
    assert all(o == "horizontal" for o in b.orientations)
    # groups follow the Leeds series (ratio ~1.12 between neighbours)
    ratios = b.frequencies[1:] / b.frequencies[:-1]
    assert np.all(ratios > 1.03) and np.all(ratios < 1.25)
    # monotone decreasing modulation (small noise tolerance)
    assert np.all(np.diff(b.ctf) < 0.01)
    assert b.ctf[-1] < 0.6 * b.ctf[0]
