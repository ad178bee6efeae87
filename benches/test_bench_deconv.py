"""Deconvolution speed against scikit-image, measured in the same run.

Sizes from issue 4: 2048 x 2048 float32 images, a 63 x 63 PSF, and a stack
(8 images by default to keep the file under ~3 minutes on 2 cores; set
SCINTOMO_BENCH_STACK=32 for the issue's size). Run with
``python -m pytest benches/test_bench_deconv.py -s``. Timings are medians;
the ratios are what matters (the machine is shared).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest

from scintomo import deconv, psf

skr = pytest.importorskip("skimage.restoration")

N = 2048
STACK = int(os.environ.get("SCINTOMO_BENCH_STACK", "8"))


def _median_time(fn, repeat=3):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    img = (rng.random((N, N)) * 100 + 50).astype(np.float32)
    k = psf.model(sigma_um=3.0, tail_um=8.0, tail_weight=0.2, size=63).array
    return img, k


def test_rl_per_iteration_2048(data):
    img, k = data
    # per iteration = difference between 11 and 1 iterations (excludes the
    # once-per-stack set-up: PSF spectra and H^T(mask))
    for boundary, acc in (("zero", False), ("padded", True)):
        t1 = _median_time(
            lambda b=boundary, a=acc: deconv.richardson_lucy(
                img, k, iterations=1, boundary=b, accelerate=a
            )
        )
        t11 = _median_time(
            lambda b=boundary, a=acc: deconv.richardson_lucy(
                img, k, iterations=11, boundary=b, accelerate=a
            )
        )
        per = (t11 - t1) / 10
        # scikit-image has no set-up worth subtracting (it allocates one array)
        sk = _median_time(lambda: skr.richardson_lucy(img, k, num_iter=3, clip=False), repeat=2) / 3
        print(
            f"\nRL {N}x{N}, PSF 63x63, boundary={boundary} accelerate={acc}: "
            f"scintomo {per * 1e3:.1f} ms/iteration (set-up + 1 iteration {t1 * 1e3:.0f} ms), "
            f"scikit-image {sk * 1e3:.1f} ms/iteration -> x{sk / per:.1f}"
        )


def test_wiener_2048(data):
    img, k = data
    for boundary in ("periodic", "reflect"):
        t = _median_time(lambda b=boundary: deconv.wiener(img, k, balance=0.01, boundary=b))
        sk = _median_time(lambda: skr.wiener(img, k, 0.01, clip=False), repeat=2)
        print(
            f"\nWiener {N}x{N}, PSF 63x63, boundary={boundary}: scintomo {t * 1e3:.0f} ms, "
            f"scikit-image {sk * 1e3:.0f} ms -> x{sk / t:.1f}"
        )


def test_stack(data):
    img, k = data
    stack = np.stack([np.roll(img, i, axis=0) for i in range(STACK)])
    t1 = _median_time(lambda: deconv.richardson_lucy(stack, k, iterations=1), repeat=1)
    t6 = _median_time(lambda: deconv.richardson_lucy(stack, k, iterations=6), repeat=1)
    per_img_iter = (t6 - t1) / 5 / STACK
    sk = _median_time(lambda: skr.richardson_lucy(img, k, num_iter=3, clip=False), repeat=1) / 3
    print(
        f"\nRL stack {STACK}x{N}x{N}: scintomo {per_img_iter * 1e3:.1f} ms per image-iteration "
        f"(whole stack, 6 iterations: {t6:.1f} s); "
        f"scikit-image {sk * 1e3:.1f} ms per image-iteration "
        f"(one image, its loop is per image) -> x{sk / per_img_iter:.1f}"
    )
    tw = _median_time(lambda: deconv.wiener(stack, k, balance=0.01), repeat=1)
    skw = _median_time(lambda: skr.wiener(img, k, 0.01, clip=False), repeat=1) * STACK
    print(
        f"Wiener stack {STACK}x{N}x{N}: scintomo {tw:.2f} s, scikit-image {skw:.2f} s "
        f"({STACK} x one image) -> x{skw / tw:.1f}"
    )
