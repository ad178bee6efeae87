"""Bad parameters get a clear Python exception, never a panic, an abort, a
runaway thread start or a silent inf/NaN (issue 17, items 3 and 6-9).

Each test pins one failure seen before the fix (the message in the comment);
the property tests in ``test_properties.py`` sweep the same ground at random.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from scintomo import _core, deconv, detector, flatfield, psf, recon
from scintomo._validate import max_threads
from scintomo.exceptions import MemoryLimitError, NumericalError, ParameterError, ScintomoError
from scintomo.pipeline import PipelineConfig
from scintomo.simulate import ellipse_projections, shepp_logan_ellipses

F32MAX = float(np.finfo(np.float32).max)


def sino(n=64, n_ang=90, rows=1, span=np.pi):
    theta = np.linspace(0, span, n_ang, endpoint=False)
    p = ellipse_projections(shepp_logan_ellipses(n), theta, n).astype(np.float32)
    return np.repeat(p[:, None, :], rows, axis=1), theta


# --- centre on the detector (items 2 and 7) ---------------------------------


@pytest.mark.parametrize("algorithm", ["fbp", "gridrec"])
@pytest.mark.parametrize("center", [200.0, 2000.0, -0.5, -300.0, 63.01, 1e300])
def test_a_centre_off_the_detector_is_refused(algorithm, center):
    # before: fbp panicked ("index out of bounds" at fbp.rs:83) for 200 and
    # 2000; gridrec returned garbage for all of them
    p = np.ones((10, 1, 64), np.float32)
    th = np.linspace(0, np.pi, 10, endpoint=False)
    with pytest.raises(ParameterError, match=r"center .* outside the detector.*\[0, 63\]"):
        recon.reconstruct(p, th, center=center, algorithm=algorithm, backend="builtin")


@pytest.mark.parametrize("algorithm", ["fbp", "gridrec"])
def test_centres_at_the_detector_ends_are_accepted_and_finite(algorithm):
    p, th = sino(32, 40)
    for c in (0.0, 31.0, [0.0]):
        rec = recon.reconstruct(p, th, center=c, algorithm=algorithm, backend="builtin")
        assert rec.dtype == np.float32 and np.all(np.isfinite(rec))


def test_the_rust_kernel_refuses_an_off_detector_centre_itself():
    # the check is in the core too, for callers of _core
    p = np.ones((4, 1, 16), np.float32)
    th = np.linspace(0, np.pi, 4, endpoint=False).tolist()
    with pytest.raises(ParameterError, match="outside the detector"):
        _core.recon_builtin(
            p, th, [np.pi / 4] * 4, [40.0], algorithm="fbp", filter="ramp", n_out=16, pad_len=32
        )


def test_find_center_search_range_must_overlap_the_detector():
    p, th = sino(64, 180, span=2 * np.pi)
    # before: 127.5, a centre off the 64-column detector
    with pytest.raises(ParameterError, match="does not overlap the detector"):
        recon.find_center(p, th, search_range=(100, 200))
    with pytest.raises(ParameterError, match="does not overlap"):
        recon.find_center(p, th, search_range=(-50, -1))
    # a range sticking out is cut to the detector; the answer is the true axis
    c = recon.find_center(p, th, search_range=(-40, 100))
    assert 0 <= c <= 63 and abs(c - 31.5) < 1.0


def test_pipeline_refuses_a_negative_centre():
    cfg = PipelineConfig()
    cfg.center.value = -300.0
    with pytest.raises(ParameterError, match="center.value"):
        cfg.validate()


# --- threads (item 9) -------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda nt: recon.reconstruct(*sino(16, 8), backend="builtin", n_threads=nt),
        lambda nt: deconv.wiener(np.ones((8, 8), np.float32), np.ones((3, 3)), n_threads=nt),
        lambda nt: flatfield.correct(
            np.ones((1, 4, 4), np.float32), np.ones((1, 4, 4)), None, n_threads=nt
        ),
        lambda nt: _core.median_rows(np.ones((4, 8), np.float32), 3, n_threads=nt),
    ],
)
def test_too_many_threads_is_a_quick_parameter_error(call):
    # before: n_threads=10**6 spent 97 s starting threads; 10**7 hung
    for nt in (max_threads() + 1, 10**6, 10**9):
        t = time.perf_counter()
        with pytest.raises(ParameterError, match="n_threads must be at most"):
            call(nt)
        assert time.perf_counter() - t < 10.0  # before: 97 s
    call(1)  # the bound leaves ordinary counts alone


def test_the_thread_bound_is_64_per_core():
    # Rust's available_parallelism: the affinity mask, or a smaller cgroup quota
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert max_threads() % 64 == 0 and 64 <= max_threads() <= 64 * cores


def test_pipeline_and_cli_thread_counts_use_the_same_bound():
    cfg = PipelineConfig()
    cfg.run.n_threads = 100000
    with pytest.raises(ParameterError, match=r"run\.n_threads must be at most"):
        cfg.validate()
    cfg.run.n_threads = max_threads()
    cfg.validate()


# --- memory (item 8) --------------------------------------------------------


def test_memory_check_raises_a_memory_error_naming_the_parameter():
    with pytest.raises(MemoryLimitError, match="^n_out: .*needs about .* but only"):
        _core.check_memory(1e15, "n_out")
    assert issubclass(MemoryLimitError, MemoryError) and issubclass(MemoryLimitError, ScintomoError)
    _core.check_memory(1e3, "small")
    avail = _core.available_memory()
    assert avail is None or avail > 0


@pytest.mark.parametrize("algorithm", ["fbp", "gridrec"])
def test_a_huge_n_out_is_a_memory_error_not_an_abort(algorithm):
    # before: the process aborted allocating the (200000, 200000) slice
    p, th = sino(16, 8)
    with pytest.raises(MemoryLimitError, match="n_out = 200000"):
        recon.reconstruct(p, th, n_out=200000, algorithm=algorithm, backend="builtin")


def test_the_rust_recon_checks_memory_before_allocating():
    p = np.ones((4, 1, 16), np.float32)
    th = np.linspace(0, np.pi, 4, endpoint=False).tolist()
    with pytest.raises(MemoryLimitError, match="n_out = 1000000"):
        _core.recon_builtin(
            p, th, [np.pi / 4] * 4, [7.5], algorithm="fbp", filter="ramp", n_out=10**6, pad_len=32
        )


def test_wiener_pad_is_bounded_by_the_data():
    # before: pad=10**7 aborted the process allocating the FFT grid
    img = np.random.default_rng(0).random((32, 40)).astype(np.float32)
    k = np.ones((5, 5), np.float32)
    for pad in (10**7, (3, 41), (33, 0)):
        with pytest.raises(ParameterError, match="pad .* must be at most the image size"):
            deconv.wiener(img, k, balance=0.01, pad=pad)
    out = deconv.wiener(img, k, balance=0.01, pad=(32, 40))
    assert np.all(np.isfinite(out))


def test_the_rust_wiener_refuses_a_wide_pad_itself():
    img = np.ones((1, 8, 8), np.float32)
    with pytest.raises(ParameterError, match="pad"):
        _core.wiener(
            img,
            np.ones((3, 3), np.float32) / 9,
            np.empty_like(img),
            balance=0.1,
            boundary="reflect",
            pad=(10**7, 10**7),
        )


def test_edge_mtf_bootstrap_is_bounded():
    # before: n_bootstrap=10**7 aborted; `scintomo mtf --bootstrap 10**8` filled 24 GB
    from scintomo import mtf

    y, x = np.mgrid[0:64, 0:64]
    img = (x > 32 + 0.08 * (y - 32)).astype(np.float32) + 0.1
    with pytest.raises(ParameterError, match=r"n_bootstrap must be an integer in \[0, 10000\]"):
        mtf.edge_mtf(img, n_bootstrap=10**7)
    res = mtf.edge_mtf(img, n_bootstrap=5)
    assert np.all(np.isfinite(res.values))


def test_the_rust_bootstrap_checks_memory_and_bins():
    img = np.ones((16, 16), np.float32)
    edges = np.full(16, 8.0)
    with pytest.raises(ParameterError, match="bins"):
        _core.mtf_bootstrap_esf(img, edges, 1, -8.0, 10**6, 4, 2, 0)
    with pytest.raises(ParameterError, match="oversampling"):
        _core.mtf_bootstrap_esf(img, edges, 1, -8.0, 64, 10**9, 2, 0)
    with pytest.raises(MemoryLimitError, match="n_bootstrap"):
        _core.mtf_bootstrap_esf(img, edges, 1, -8.0, 128, 4, 10**15, 0)


# --- float32 extremes (item 5/6) --------------------------------------------


@pytest.mark.parametrize("algorithm", ["fbp", "gridrec"])
def test_reconstruct_near_the_float32_maximum_is_exact_scaling(algorithm):
    # before: finite input near 3e38 came back as inf/NaN. Reconstruction is
    # linear, so scaled data must give the scaled slice (analytic property).
    p, th = sino(32, 60)
    ref = recon.reconstruct(p, th, algorithm=algorithm, backend="builtin")
    s = 2.0**100
    big = recon.reconstruct(p * np.float32(s), th, algorithm=algorithm, backend="builtin")
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big / s, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_reconstruct_refuses_a_result_beyond_float32():
    # columns of alternating sign: the ramp filter's gain at Nyquist (1/2)
    # summed over the half turn (pi) puts 0.5 pi x 0.9 max > max at the axis
    th = np.linspace(0, np.pi, 60, endpoint=False)
    row = np.float32(0.9 * F32MAX) * (-1.0) ** np.arange(33)
    p = np.tile(row.astype(np.float32), (60, 1, 1))
    with pytest.raises(NumericalError, match="overflows float32"):
        recon.reconstruct(p, th, algorithm="fbp", filter="ramp", backend="builtin")


@pytest.mark.parametrize("boundary", ["reflect", "periodic"])
def test_wiener_near_the_float32_maximum(boundary):
    rng = np.random.default_rng(1)
    img = rng.random((24, 30)).astype(np.float32) + 0.5
    k = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32)
    ref = deconv.wiener(img, k, balance=0.05, boundary=boundary)
    s = 2.0**120
    big = deconv.wiener(img * np.float32(s), k, balance=0.05, boundary=boundary)
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big / s, ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(NumericalError, match="overflows float32"):
        deconv.wiener(img * np.float32(2.0**127), k, balance=1e-6, boundary=boundary)


def test_nps_near_the_float32_maximum_equals_the_ordinary_nnps():
    rng = np.random.default_rng(2)
    f = (1000 + 10 * rng.standard_normal((2, 64, 64))).astype(np.float32)
    ref = detector.nps(f, pixel_size=10.0, roi=32)
    s = 2.0**110
    big = detector.nps(f * np.float32(s), pixel_size=10.0, roi=32)
    assert np.all(np.isfinite(big.nnps_2d))
    np.testing.assert_allclose(big.nnps_2d, ref.nnps_2d, rtol=1e-5)
    assert big.mean_signal == pytest.approx(ref.mean_signal * s, rel=1e-6)


def test_psf_model_refuses_a_core_wider_than_its_grid_and_underflow():
    # before: sigma_um=1e6 gave a flat 255 x 255 box; 1e200 gave NaN
    with pytest.raises(ParameterError, match="does not fit the default 255 px grid"):
        psf.model(sigma_um=1e6)
    with pytest.raises(ParameterError, match="no finite PSF"):
        psf.model(sigma_um=1e200, size=5)
    with pytest.raises(ParameterError, match="no finite PSF"):
        psf.model(sigma_um=1e-200, size=5)
    p = psf.model(sigma_um=40.0, pixel_size_um=1.0)  # 3 sigma = 120 px still fits
    assert np.all(np.isfinite(p.array)) and abs(p.array.sum() - 1) < 1e-5


def test_richardson_lucy_needs_iterations_and_a_positive_image():
    img = np.random.default_rng(3).random((16, 16)).astype(np.float32) + 0.1
    k = np.ones((3, 3), np.float32)
    # before: iterations=0 returned the start image
    with pytest.raises(ParameterError, match="iterations must be an integer >= 1"):
        deconv.richardson_lucy(img, k, iterations=0)
    # before: an all-negative image returned zeros
    with pytest.raises(ParameterError, match="no positive value"):
        deconv.richardson_lucy(-img, k, iterations=3)
    stack = np.stack([img, -img])
    with pytest.raises(ParameterError, match="image 1 of the stack"):
        deconv.richardson_lucy(stack, k, iterations=3)


@pytest.mark.parametrize("method", ["all", "sort", "filter", "large", "dead", "fw"])
def test_remove_stripes_near_the_float32_maximum_scales_with_the_data(method):
    # found by the property tests: values near 3e38 came back as inf. Every
    # method is positively homogeneous, so 2^100 x the data gives 2^100 x
    # the result.
    q = (np.random.default_rng(4).random((30, 1, 20)) + 0.5).astype(np.float32)
    ref = recon.remove_stripes(q, method=method, level=2)
    big = recon.remove_stripes(q * np.float32(2.0**100), method=method, level=2)
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big / 2.0**100, ref, rtol=1e-6)


@pytest.mark.parametrize("pad", [True, False])
def test_paganin_near_the_float32_maximum(pad):
    # found by the property tests: pad=False filtered in float32 and gave inf;
    # the filter is linear, so -ln of 2^100 x the data is 100 ln 2 less
    t = (0.5 + 0.4 * np.random.default_rng(5).random((12, 16))).astype(np.float32)
    kw = dict(pixel_size=1.0, distance=10.0, energy=20.0, delta_beta=100.0, pad=pad)
    ref = recon.paganin(t, **kw)
    big = recon.paganin(t * np.float32(2.0**100), **kw)
    np.testing.assert_allclose(big, ref - 100 * np.log(2.0), rtol=0, atol=2e-4)


def test_flatfield_reports_a_ratio_beyond_float32():
    # found by the property tests: P / F = 8e37 / 0.1 came back as inf with
    # no warning and a zero nonfinite count
    from scintomo.exceptions import ScintomoWarning

    p = np.full((1, 2, 2), 8e37, np.float32)
    f = np.full((1, 2, 2), 0.1, np.float32)
    with pytest.warns(ScintomoWarning, match="beyond the float32 range"):
        out, rep = flatfield.correct(p, f, None, return_report=True)
    assert rep.nonfinite == 4 == np.count_nonzero(np.isinf(out))
    out = flatfield.correct(p, f, None, clip=(None, 1e30))  # a bound clips instead
    assert np.all(out == np.float32(1e30))
