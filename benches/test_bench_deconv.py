"""Deconvolution speed against scikit-image, measured in the same run.

Sizes from issue 4: 2048 x 2048 float32 images, a 63 x 63 PSF, single
images and a stack of 32 (``SCINTOMO_BENCH_STACK`` to change it). Run with
``python -m pytest benches/test_bench_deconv.py -s``; about a minute and a
half on a quiet 2-core machine. Timings are medians of 3; the ratios are
what matters (the machine may be shared).

scikit-image works on one image at a time (its loop is per image, single
threaded), so its time per image is measured on one image and compared with
scintomo's time per image on the whole stack. RL time per iteration is the
difference between runs of 1 + ITER and 1 iterations divided by ITER: it
excludes the once-per-stack set-up (PSF spectra, H^T of the mask), which is
reported separately.

Each line also gives the ratio of process CPU times (all threads added up):
on a loaded machine wall times of a 2-thread run suffer more than those of
scikit-image's single thread, CPU times much less. With free cores, the
wall-time ratio of a 2-thread run is about twice its CPU-time ratio (both
stacks and single images scale nearly linearly).
"""

from __future__ import annotations

import os
import resource
import statistics
import time

import numpy as np
import pytest

from scintomo import deconv, psf

skr = pytest.importorskip("skimage.restoration")

N = 2048
STACK = int(os.environ.get("SCINTOMO_BENCH_STACK", "32"))
ITER = 3
MODES = (("zero", False, "scikit-image's model"), ("padded", True, "default: BB + Biggs-Andrews"))


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class T:
    """Median wall and CPU time (s) of a few runs."""

    def __init__(self, wall, cpu):
        self.wall, self.cpu = wall, cpu

    def __sub__(self, o):
        return T(self.wall - o.wall, self.cpu - o.cpu)

    def __truediv__(self, k):
        return T(self.wall / k, self.cpu / k)

    def __mul__(self, k):
        return T(self.wall * k, self.cpu * k)


def _median_time(fn, repeat=3):
    ws, cs = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), _cpu()
        fn()
        ws.append(time.perf_counter() - t)
        cs.append(_cpu() - c)
    return T(statistics.median(ws), statistics.median(cs))


def _vs(ours: T, ref: T) -> str:
    return (
        f"scintomo {ours.wall * 1e3:.1f} ms (CPU {ours.cpu * 1e3:.1f} ms), "
        f"scikit-image {ref.wall * 1e3:.1f} ms (CPU {ref.cpu * 1e3:.1f} ms) -> "
        f"x{ref.wall / ours.wall:.1f} (CPU-time ratio x{ref.cpu / ours.cpu:.1f})"
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    img = (rng.random((N, N)) * 100 + 50).astype(np.float32)
    k = psf.model(sigma_um=3.0, tail_um=8.0, tail_weight=0.2, size=63).array
    return img, k


@pytest.fixture(scope="module")
def sk_rl(data):
    img, k = data
    # scikit-image has no set-up worth subtracting (it allocates one array)
    return _median_time(lambda: skr.richardson_lucy(img, k, num_iter=2, clip=False)) / 2


@pytest.fixture(scope="module")
def sk_wiener(data):
    img, k = data
    return _median_time(lambda: skr.wiener(img, k, 0.01, clip=False))


def _rl_per_iteration(x, k, boundary, acc, n_threads):
    out = np.empty_like(x)

    def run(it):
        deconv.richardson_lucy(
            x, k, iterations=it, boundary=boundary, accelerate=acc, out=out, n_threads=n_threads
        )

    t1 = _median_time(lambda: run(1))
    tn = _median_time(lambda: run(1 + ITER))
    return (tn - t1) / ITER, t1


@pytest.mark.parametrize("n_threads", [1, 2])
def test_rl_per_iteration_2048(data, sk_rl, n_threads):
    img, k = data
    for boundary, acc, what in MODES:
        per, t1 = _rl_per_iteration(img, k, boundary, acc, n_threads)
        print(
            f"\nRL {N}x{N}, PSF 63x63, {n_threads} thread(s), boundary={boundary} ({what}), "
            f"per iteration: {_vs(per, sk_rl)}; set-up + 1 iteration {t1.wall * 1e3:.0f} ms"
        )


@pytest.mark.parametrize("n_threads", [1, 2])
def test_wiener_2048(data, sk_wiener, n_threads):
    img, k = data
    out = np.empty_like(img)
    for boundary in ("periodic", "reflect"):
        t = _median_time(
            lambda b=boundary: deconv.wiener(
                img, k, balance=0.01, boundary=b, out=out, n_threads=n_threads
            )
        )
        print(
            f"\nWiener {N}x{N}, PSF 63x63, {n_threads} thread(s), boundary={boundary}: "
            f"{_vs(t, sk_wiener)}"
        )


@pytest.fixture(scope="module")
def stack(data):
    img, _ = data
    return np.stack([np.roll(img, 7 * i, axis=0) for i in range(STACK)])


def test_rl_stack(data, stack, sk_rl):
    _, k = data
    for boundary, acc, what in MODES:
        per, t1 = _rl_per_iteration(stack, k, boundary, acc, None)
        per_img = per / STACK
        print(
            f"\nRL stack {STACK}x{N}x{N}, PSF 63x63, all threads, boundary={boundary} ({what}), "
            f"per image-iteration: {_vs(per_img, sk_rl)}; "
            f"set-up + 1 iteration {t1.wall / STACK * 1e3:.0f} ms per image"
        )


def test_wiener_stack(data, stack, sk_wiener):
    _, k = data
    out = np.empty_like(stack)
    for boundary in ("periodic", "reflect"):
        t = _median_time(
            lambda b=boundary: deconv.wiener(stack, k, balance=0.01, boundary=b, out=out)
        )
        print(
            f"\nWiener stack {STACK}x{N}x{N}, PSF 63x63, all threads, boundary={boundary}, "
            f"per image: {_vs(t / STACK, sk_wiener)}"
        )
