"""Deconvolution against scikit-image, analytic truths and synthetic films."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import fftconvolve

from scintomo import deconv
from scintomo.exceptions import NonFiniteError, ParameterError, ShapeError

skr = pytest.importorskip("skimage.restoration")


def gauss_psf(n: int, s: float) -> np.ndarray:
    c = (n - 1) / 2
    g = np.exp(-((np.arange(n) - c) ** 2) / (2 * s * s))
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def scene(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    checker = ((xx // 24) + (yy // 24)) % 2
    return (100 + 40 * np.sin(xx / 5.0) * np.cos(yy / 9.0) + 60 * checker).astype(np.float64)


def blur_extended(x: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Blur an object that extends beyond the field of view (the physical case)."""
    n = psf.shape[0]
    big = np.pad(x, n, mode="reflect")
    return fftconvolve(big, psf.astype(np.float64), mode="same")[n:-n, n:-n]


# --- scikit-image compatible modes -------------------------------------------------------------


@pytest.mark.parametrize("kshape", [(5, 5), (4, 6), (9, 3)])
@pytest.mark.parametrize("stack", [False, True])
def test_rl_zero_boundary_equals_skimage(kshape, stack):
    rng = np.random.default_rng(1)
    imgs = (rng.random((3, 48, 61)) + 0.05).astype(np.float32)
    psf = rng.random(kshape).astype(np.float32)
    psf /= psf.sum()
    data = imgs if stack else imgs[0]
    got = deconv.richardson_lucy(data, psf, iterations=12, boundary="zero")
    assert got.dtype == np.float32 and got.shape == data.shape
    for i, im in enumerate(imgs if stack else imgs[:1]):
        ref = skr.richardson_lucy(im, psf, num_iter=12, clip=False)
        g = got[i] if stack else got
        assert np.max(np.abs(g - ref)) <= 1e-4 * np.max(np.abs(ref))


@pytest.mark.parametrize("kshape", [(5, 5), (4, 6)])
@pytest.mark.parametrize("balance", [0.01, 0.3])
def test_wiener_periodic_equals_skimage(kshape, balance):
    rng = np.random.default_rng(2)
    imgs = rng.random((3, 50, 63)).astype(np.float32)
    psf = rng.random(kshape).astype(np.float32)
    psf /= psf.sum()
    refs = [skr.wiener(im, psf, balance, clip=False) for im in imgs]
    # A single image builds the filter column group by column group inside
    # the column pass (on one thread or shared by two); a stack builds the
    # whole filter spectrum once. Both must equal scikit-image.
    for n_threads in (1, 2):
        got = deconv.wiener(imgs[0], psf, balance=balance, boundary="periodic", n_threads=n_threads)
        assert got.dtype == np.float32
        assert np.max(np.abs(got - refs[0])) <= 1e-4 * np.max(np.abs(refs[0]))
    got = deconv.wiener(imgs, psf, balance=balance, boundary="periodic", n_threads=2)
    for g, ref in zip(got, refs, strict=True):
        assert np.max(np.abs(g - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_reflect_wiener_single_image_equals_stack():
    # The two ways of building the filter (see above) in the default mode.
    rng = np.random.default_rng(5)
    imgs = (rng.random((3, 40, 57)) + 0.5).astype(np.float32)
    psf = rng.random((7, 4)).astype(np.float32)
    st = deconv.wiener(imgs, psf, balance=0.02, n_threads=2)
    for n_threads in (1, 2):
        one = deconv.wiener(imgs[1], psf, balance=0.02, n_threads=n_threads)
        np.testing.assert_allclose(one, st[1], rtol=0, atol=1e-5 * np.abs(st[1]).max())


# --- boundaries -----------------------------------------------------------------------------------


def _band_ratio(est, truth, width):
    err = np.abs(est - truth)
    band = np.zeros(err.shape, bool)
    band[:width] = band[-width:] = True
    band[:, :width] = band[:, -width:] = True
    return err[band].mean() / err[~band].mean()


def test_padded_rl_border_error_close_to_interior():
    psf = gauss_psf(21, 2.5)
    x = scene(160, 176)
    y = blur_extended(x, psf).astype(np.float32)
    ours = deconv.richardson_lucy(y, psf, iterations=40)
    sk = skr.richardson_lucy(y / y.max(), psf, num_iter=40, clip=False) * y.max()
    r_ours = _band_ratio(ours, x, 21)
    r_sk = _band_ratio(sk, x, 21)
    print(f"border/interior error: scintomo {r_ours:.2f}, scikit-image {r_sk:.2f}")
    assert r_ours <= 1.2
    assert r_sk > 1.5  # the test would be empty if zero padding did not hurt here


def test_reflect_wiener_does_not_ring_at_the_edges():
    psf = gauss_psf(15, 1.5)
    x = scene(128, 140)
    y = blur_extended(x, psf).astype(np.float32)
    ours = deconv.wiener(y, psf, balance=1e-3)
    per = deconv.wiener(y, psf / psf.sum(), balance=1e-3, boundary="periodic")
    r_ours, r_per = _band_ratio(ours, x, 15), _band_ratio(per, x, 15)
    print(f"Wiener border/interior error: reflect {r_ours:.2f}, periodic {r_per:.2f}")
    assert r_ours < 0.5 * r_per
    assert r_ours <= 1.5


def _rl_padded_numpy(y, psf, iterations, accelerate):
    """The default model written out in float64 numpy, as an independent
    reference: object grid larger than the data by the PSF, H = 'valid'
    convolution, H^T = 'full' correlation, x <- p H^T(y+ / Hp) / H^T(1),
    and Biggs-Andrews prediction p = max(x + a (x - x_prev), 0) from the
    third iteration on, a = clip(g_k . g_(k-1) / |g_(k-1)|^2, 0, 1) with
    g_k = x_(k+1) - p_k."""
    y = y.astype(np.float64)
    k = psf.astype(np.float64) / psf.sum()
    yp = np.maximum(y, 0)
    norm = fftconvolve(np.ones_like(y), k[::-1, ::-1], mode="full")
    x = np.where(norm > 0, yp.mean(), 0.0)
    tiny = 1e-12 * np.abs(y).mean()
    xprev, g_prev = x.copy(), np.zeros_like(x)
    num = den = gg_last = 0.0
    for it in range(iterations):
        use_p = accelerate and it >= 2
        a = min(max(num / den, 0.0), 1.0) if use_p and den > 0 else 0.0
        p = np.maximum(x + a * (x - xprev), 0) if use_p else x
        b = fftconvolve(p, k, mode="valid")
        ratio = np.where(b > tiny, yp / np.where(b > tiny, b, 1), 0)
        corr = fftconvolve(ratio, k[::-1, ::-1], mode="full")
        xn = np.where(norm > 0, p * corr / np.where(norm > 0, norm, 1), 0)
        g = xn - p
        num, den, gg_last = float((g * g_prev).sum()), gg_last, float((g * g).sum())
        g_prev, xprev, x = g, x, xn
    return x


@pytest.mark.parametrize("accelerate", [False, True])
def test_padded_rl_equals_numpy_reference(accelerate):
    # An asymmetric, off-centre PSF and a stack of two different images, so
    # that a flipped kernel, a wrong crop or per-image state shared between
    # images would show. Ten iterations: acceleration amplifies float32
    # rounding (a float32 numpy run drifts from float64 by 3e-5 here, 4e-4
    # by 15 iterations); without acceleration the result differs by 3e-2.
    rng = np.random.default_rng(3)
    h, w = 70, 90
    yy, xx = np.mgrid[:h, :w]
    base = 100 + 40 * np.sin(xx / 5.0) * np.cos(yy / 9.0)
    ys = np.stack([base + rng.normal(0, 2, (h, w)), base[::-1] * 0.7 + 5]).astype(np.float32)
    a, b = np.arange(9) - 3.7, np.arange(7) - 3.1
    k = np.exp(-(a[:, None] ** 2) / 6 - (b[None, :] ** 2) / 3).astype(np.float32)
    k /= k.sum()
    ours = deconv.richardson_lucy(ys, k, iterations=10, accelerate=accelerate)
    for y, o in zip(ys, ours, strict=True):
        ref = _rl_padded_numpy(y, k, 10, accelerate)[4:-4, 3:-3]
        err = np.abs(o - ref).max() / np.abs(ref).max()
        assert err < 2e-4, err


def test_constant_stays_constant_everywhere():
    y = np.full((2, 40, 50), 3.0, np.float32)
    psf = gauss_psf(11, 2.0)
    for est in (deconv.richardson_lucy(y, psf, iterations=15), deconv.wiener(y, psf, balance=0.01)):
        np.testing.assert_allclose(est, 3.0, rtol=1e-3)


# --- mask, TV, stopping rule --------------------------------------------------------------------


def test_masked_pixels_are_filled_not_smeared():
    psf = gauss_psf(9, 1.5)
    x = scene(64, 64)
    y = blur_extended(x, psf).astype(np.float32)
    bad = y.copy()
    bad[20, 30] = 1e6  # hot
    bad[40:42, 10] = 0  # dead
    mask = np.ones(y.shape, bool)
    mask[20, 30] = False
    mask[40:42, 10] = False
    clean = deconv.richardson_lucy(y, psf, iterations=20)
    masked = deconv.richardson_lucy(bad, psf, iterations=20, mask=mask)
    unmasked = deconv.richardson_lucy(bad, psf, iterations=20)
    near = np.zeros(y.shape, bool)
    near[12:29, 22:39] = True
    assert np.max(np.abs(masked - clean)[near]) < 0.05 * x.max()
    assert np.max(np.abs(unmasked - clean)[near]) > 10 * x.max()


def test_tv_reduces_noise_in_flat_regions():
    rng = np.random.default_rng(3)
    psf = gauss_psf(11, 1.5)
    x = np.full((96, 96), 200.0)
    x[:, 48:] = 400
    y = rng.poisson(blur_extended(x, psf)).astype(np.float32)
    plain = deconv.richardson_lucy(y, psf, iterations=40)
    tv = deconv.richardson_lucy(y, psf, iterations=40, tv=0.01)
    flat = (slice(20, 76), slice(5, 40))
    assert tv[flat].std() < 0.8 * plain[flat].std()


def test_discrepancy_rule_stops_before_the_error_rises():
    rng = np.random.default_rng(4)
    psf = gauss_psf(15, 2.0)
    x = scene(96, 96) * 5
    gain, read = 1.0, 5.0
    y = (rng.poisson(blur_extended(x, psf)) + rng.normal(0, read, x.shape)).astype(np.float32)
    est, rep = deconv.richardson_lucy(
        y, psf, iterations=200, noise=(gain, read), return_report=True
    )
    k = rep.iterations[0]
    assert rep.stopped[0] and 1 <= k < 200
    errs = [
        np.sqrt(np.mean((deconv.richardson_lucy(y, psf, iterations=i) - x) ** 2))
        for i in range(1, 3 * k + 10)
    ]
    kmin = int(np.argmin(errs)) + 1
    print(f"stopped at {k}; error minimal at {kmin}; rms {errs[k - 1]:.2f} vs min {min(errs):.2f}")
    assert k <= kmin
    assert errs[-1] > min(errs)  # the error does rise later: otherwise the test is empty
    # Without acceleration the stopped estimate is exactly the k-th iterate.
    est1, rep1 = deconv.richardson_lucy(
        y, psf, iterations=200, noise=(gain, read), accelerate=False, return_report=True
    )
    k1 = rep1.iterations[0]
    fixed = deconv.richardson_lucy(y, psf, iterations=k1, accelerate=False)
    np.testing.assert_allclose(est1, fixed, rtol=1e-5, atol=1e-3)
    assert rep1.discrepancy[0][-1] <= 1.0 < rep1.discrepancy[0][-2]


def test_deconvolution_raises_mtf_at_the_20_percent_frequency():
    """A bar target through a Gaussian PSF whose MTF is 0.2 at the bar frequency."""
    rng = np.random.default_rng(5)
    s = 2.0
    f20 = np.sqrt(np.log(5) / (2 * np.pi**2 * s**2))  # MTF(f) = exp(-2 pi^2 s^2 f^2) = 0.2
    period = 1 / f20
    h, w = 128, 192
    xx = np.arange(w)
    bars = 1000.0 + 800.0 * (np.sin(2 * np.pi * xx / period) > 0)
    x = np.tile(bars, (h, 1))
    x[:, :40] = 1400.0  # a flat region to measure noise
    psf = gauss_psf(21, s)
    y = rng.poisson(blur_extended(x, psf)).astype(np.float32)

    def amp(img):  # fundamental's amplitude over the bar region
        seg = img[20:-20, 64 : 64 + int(round(period * 16))].mean(axis=0)
        t = np.arange(seg.size) + 64
        return 2 * abs(np.mean((seg - seg.mean()) * np.exp(-2j * np.pi * t / period)))

    est, rep = deconv.richardson_lucy(y, psf, iterations=100, noise=(1.0, 0.0), return_report=True)
    gain = amp(est) / amp(y)
    noise_growth = est[20:-20, 5:35].std() / y[20:-20, 5:35].std()
    print(
        f"MTF gain at f20={f20:.3f} cy/px: {gain:.2f}; noise growth {noise_growth:.2f}; "
        f"{rep.iterations[0]} iterations"
    )
    assert gain >= 2.0
    assert noise_growth <= 3.0


# --- pipeline ----------------------------------------------------------------------------------


def test_flatfield_deconvolved_recovers_transmission():
    psf = gauss_psf(11, 1.5)
    h, w = 64, 72
    trans = np.ones((h, w))
    trans[20:44, 20:50] = 0.3
    beam = 1000 + 200 * np.linspace(0, 1, w)[None, :] * np.ones((h, 1))
    dark = 100.0
    proj = blur_extended(beam * trans, psf) + dark
    flat = blur_extended(beam, psf) + dark
    got = deconv.flatfield_deconvolved(
        proj[None], flat[None], np.full((1, h, w), dark), psf, iterations=60
    )
    naive = -np.log(np.clip((proj - dark) / (flat - dark), 1e-6, None))
    truth = -np.log(trans)
    err_good = np.abs(got[0] - truth)[8:-8, 8:-8].mean()
    err_naive = np.abs(naive - truth)[8:-8, 8:-8].mean()
    assert got.dtype == np.float32 and got.shape == (1, h, w)
    assert err_good < 0.8 * err_naive
    # and it is exactly: subtract darks, deconvolve both, divide, clip, -log
    d32 = np.float32(dark)
    pd = deconv.richardson_lucy((proj.astype(np.float32) - d32)[None], psf, iterations=60)
    fd = deconv.richardson_lucy(flat.astype(np.float32) - d32, psf, iterations=60)
    manual = -np.log(np.clip(pd / fd, 1e-6, None))
    np.testing.assert_allclose(got, manual, rtol=1e-4, atol=1e-5)


# --- input checking ------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    img = np.ones((20, 20), np.float32)
    psf = gauss_psf(5, 1.0)
    with pytest.raises(ShapeError):
        deconv.richardson_lucy(np.ones(5), psf)
    with pytest.raises(ParameterError):
        deconv.richardson_lucy(img, psf, boundary="circular")
    with pytest.raises(ParameterError):
        deconv.richardson_lucy(img, psf, boundary="zero", tv=0.01)
    with pytest.raises(ParameterError):
        deconv.richardson_lucy(img, -psf)
    with pytest.raises(ParameterError):
        deconv.richardson_lucy(img, psf, iterations=-1)
    with pytest.raises(ParameterError):
        deconv.richardson_lucy(img, psf, mask=np.ones((20, 20)))
    with pytest.raises(ShapeError):
        deconv.richardson_lucy(img, psf, mask=np.ones((21, 20), bool))
    with pytest.raises(ParameterError):
        deconv.wiener(img, psf, balance=-1)
    nan = img.copy()
    nan[3, 3] = np.nan
    with pytest.raises(NonFiniteError):
        deconv.richardson_lucy(nan, psf)
    with pytest.raises(NonFiniteError):
        deconv.wiener(nan, psf, balance=0.1)
    with pytest.raises(ShapeError):
        deconv.wiener(np.ones((4, 4), np.float32), psf, balance=0.1, boundary="periodic")


def test_input_not_modified_and_dtypes():
    rng = np.random.default_rng(6)
    img16 = rng.integers(100, 1000, (30, 40)).astype(np.uint16)
    keep = img16.copy()
    psf = gauss_psf(7, 1.0)
    out = deconv.richardson_lucy(img16, psf, iterations=3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(img16, keep)
    out64 = deconv.wiener(img16.astype(np.float64), psf, balance=0.01)
    assert out64.dtype == np.float32
    buf = np.empty((30, 40), np.float32)
    assert deconv.richardson_lucy(img16, psf, iterations=3, out=buf) is buf


def test_estimated_balance_is_sensible():
    rng = np.random.default_rng(7)
    psf = gauss_psf(11, 1.5)
    x = scene(128, 128)
    clean = blur_extended(x, psf)
    lo = clean + rng.normal(0, 0.5, clean.shape)
    hi = clean + rng.normal(0, 8.0, clean.shape)
    assert abs(deconv.estimate_noise(hi) - 8.0) < 1.0
    b_lo, b_hi = deconv.estimate_balance(lo, psf), deconv.estimate_balance(hi, psf)
    assert 0 < b_lo < b_hi
    est = deconv.wiener(hi.astype(np.float32), psf)
    assert np.mean(np.abs(est - x)) < np.mean(np.abs(hi - x))


def test_thread_counts_agree():
    rng = np.random.default_rng(8)
    y = (rng.random((3, 40, 44)) * 100 + 10).astype(np.float32)
    psf = gauss_psf(9, 1.5)
    a = deconv.richardson_lucy(y, psf, iterations=8, n_threads=1)
    b = deconv.richardson_lucy(y, psf, iterations=8, n_threads=2)
    c = np.stack([deconv.richardson_lucy(im, psf, iterations=8) for im in y])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-4)


# --- command line -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "src", "dst"), [("rl", ".tif", ".h5"), ("wiener", ".h5", ".tif")]
)
def test_cli_deconvolve(tmp_path, method, src, dst):
    import h5py
    import tifffile

    from scintomo import psf as P
    from scintomo.cli import main

    kernel = P.model(sigma_um=1.5, pixel_size_um=1.0, size=11)
    kernel.save(tmp_path / "psf.npy")
    x = np.stack([scene(40, 48), scene(40, 48)[::-1]])
    y = np.stack([blur_extended(im, kernel.array) for im in x]).astype(np.float32)
    inp = tmp_path / f"in{src}"
    if src == ".tif":
        tifffile.imwrite(inp, y)
    else:
        with h5py.File(inp, "w") as f:
            f["exchange/data"] = y
    out = tmp_path / f"out{dst}"
    args = [
        str(inp),
        "--psf",
        str(tmp_path / "psf.npy"),
        "-o",
        str(out),
        "--method",
        method,
        "--chunk",
        "1",
        "--no-progress",
    ]
    args += ["--iterations", "7"] if method == "rl" else ["--balance", "0.01"]
    assert main(["deconvolve", *args]) == 0
    got = tifffile.imread(out) if dst == ".tif" else h5py.File(out, "r")["exchange/data"][()]
    if method == "rl":
        want = deconv.richardson_lucy(y, kernel, iterations=7)
    else:
        want = deconv.wiener(y, kernel, balance=0.01)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert (
        main(
            [
                "deconvolve",
                str(tmp_path / "missing.tif"),
                "--psf",
                str(tmp_path / "psf.npy"),
                "-o",
                str(out),
            ]
        )
        == 2
    )
