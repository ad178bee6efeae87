"""Speed of the detector kernels against numpy implementations of the same
algorithms, measured in the same run (run with ``pytest benches/test_bench_detector.py -s``).

Sizes (the issue's): NPS of 20 flat frames of 2048 x 2048 (IEC ROIs 256 x 256,
50% overlap, degree-2 detrend per frame); per-pixel exponential decay fit of
50 frames. The numpy decay fit (the same variable-projection golden-section
search, vectorised over pixels) needs ~1.6 GB per temporary at 2048 x 2048,
so both are timed on 50 x 512 x 512 and Rust alone also on 50 x 2048 x 2048.
Set SCINTOMO_BENCH_SMALL=1 for a quick run on smaller sizes.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from scintomo import _core
from scintomo import detector as D

SMALL = bool(os.environ.get("SCINTOMO_BENCH_SMALL"))
INV_PHI = 0.6180339887498949


def _median_time(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def numpy_nps_sum(frames, roi=256, step=128, order=2):
    """IEC NPS in vectorised numpy: pinv detrend per frame, rfft2 of all ROIs."""
    nf, h, w = frames.shape
    y, x = np.mgrid[0:h, 0:w]
    xs, ys = 2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1
    cols = [xs**a * ys**b for t in range(order + 1) for b in range(t + 1) for a in [t - b]]
    m = np.stack([c.ravel() for c in cols], axis=1)
    pinv = np.linalg.pinv(m)
    acc = np.zeros((roi, roi // 2 + 1))
    total, n = 0.0, 0
    for f in frames:
        f = f.astype(np.float64)
        res = f - (m @ (pinv @ f.ravel())).reshape(h, w)
        rois = sliding_window_view(res, (roi, roi))[::step, ::step]
        acc += (np.abs(np.fft.rfft2(rois)) ** 2).sum(axis=(0, 1))
        total += sliding_window_view(f, (roi, roi))[::step, ::step].sum()
        n += rois.shape[0] * rois.shape[1]
    return acc, n, total / (n * roi * roi)


def numpy_decay_fit(frames, t, k_min, k_max, rel_tol):
    """Same algorithm as the Rust kernel, vectorised over pixels."""
    nt = t.size
    y = frames.reshape(nt, -1).astype(np.float64)
    sy, syy = y.sum(0), (y * y).sum(0)

    def rss(lnk):
        g = np.exp(-np.exp(lnk)[None, :] * t[:, None])
        se, see, sey = g.sum(0), (g * g).sum(0), (g * y).sum(0)
        det = see * nt - se * se
        a = (sey * nt - se * sy) / det
        b = (see * sy - se * sey) / det
        return np.maximum(syy - a * sey - b * sy, 0), a, b

    lo, hi = np.log(k_min), np.log(k_max)
    n_iter = int(np.ceil((np.log(rel_tol) - np.log(hi - lo)) / np.log(INV_PHI)))
    a = np.full(y.shape[1], lo)
    b = np.full(y.shape[1], hi)
    x1, x2 = b - INV_PHI * (b - a), a + INV_PHI * (b - a)
    f1, f2 = rss(x1)[0], rss(x2)[0]
    for _ in range(n_iter):
        left = f1 <= f2
        b = np.where(left, x2, b)
        a = np.where(left, a, x1)
        nx1 = np.where(left, b - INV_PHI * (b - a), x2)
        nx2 = np.where(left, x1, a + INV_PHI * (b - a))
        newx = np.where(left, nx1, nx2)
        fnew = rss(newx)[0]
        f1, f2 = np.where(left, fnew, f2), np.where(left, f1, fnew)
        x1, x2 = nx1, nx2
    k = np.exp(0.5 * (a + b))
    _, amp, off = rss(np.log(k))
    return amp, 1.0 / k, off


def test_bench_nps():
    n, size = (4, 1024) if SMALL else (20, 2048)
    frames = np.random.default_rng(0).poisson(1000.0, (n, size, size)).astype(np.float32)
    times = {}
    for nt in (1, 2):
        times[nt], (p_rust, nr, m_rust) = _median_time(
            lambda nt=nt: _core.nps_sum(
                frames, roi=256, step=128, order=2, per_roi=False, n_threads=nt
            ),
            repeat=5,
        )
    t_np, (p_np, nn, m_np) = _median_time(lambda: numpy_nps_sum(frames), repeat=3)
    assert nr == nn
    np.testing.assert_allclose(p_rust, p_np, rtol=1e-3)
    assert m_rust == pytest.approx(m_np, rel=1e-9)
    print(f"\nNPS {n} x {size} x {size}, {nr} ROIs of 256 px, 50% overlap, median of 5 (numpy 3):")
    print(f"  numpy (pocketfft rfft2 of all ROIs, 1 thread): {t_np:.3f} s")
    for nt, t in times.items():
        print(f"  rust, {nt} thread(s): {t:.3f} s, ratio {t_np / t:.1f}x")
    # the Python API on top (cuts, scaling) costs little
    t_api, _ = _median_time(lambda: D.nps(frames, pixel_size=50.0), repeat=1)
    print(f"  scintomo.detector.nps: {t_api:.3f} s")


def test_bench_decay_fit():
    nt = 50
    size = 256 if SMALL else 512
    t = np.arange(nt, dtype=float)
    rng = np.random.default_rng(1)
    tau = rng.uniform(3, 15, (size, size))
    frames = rng.poisson(500 * np.exp(-t[:, None, None] / tau) + 5).astype(np.float32)
    kw = dict(k_min=1 / 2500.0, k_max=20.0, rel_tol=1e-4)
    t_rust, (a_r, tau_r, _, _) = _median_time(
        lambda: _core.decay_fit(
            frames, t.tolist(), model="exponential", exponent=1.0, offset=True, **kw
        )
    )
    t_np, (a_n, tau_n, _) = _median_time(lambda: numpy_decay_fit(frames, t, **kw), repeat=1)
    # same algorithm: the same minimum (float32 vs float64 sums may flip a golden step)
    assert np.median(np.abs(tau_r - tau_n.reshape(size, size)) / tau) < 1e-3
    print(
        f"\ndecay fit {nt} x {size} x {size}, {os.cpu_count()} cores: rust {t_rust:.3f} s, "
        f"numpy {t_np:.3f} s, ratio {t_np / t_rust:.1f}x"
    )
    if not SMALL:
        big = np.tile(frames, (1, 4, 4))  # 50 x 2048 x 2048
        t_big, _ = _median_time(
            lambda: _core.decay_fit(
                big, t.tolist(), model="exponential", exponent=1.0, offset=True, **kw
            ),
            repeat=1,
        )
        print(f"  rust alone, {nt} x 2048 x 2048: {t_big:.2f} s")
