"""Deconvolution speed against scikit-image, measured in the same run.

Sizes from issue 4: 2048 x 2048 float32 images, a 63 x 63 PSF, single
images and a stack of 32 (``SCINTOMO_BENCH_STACK`` to change it). Run with
``python -m pytest benches/test_bench_deconv.py -s``; about a minute and a
half on the 2-core machine. Timings are medians of 3, and each case's
runs alternate with scikit-image's (reference, case, reference, case, ...):
this VM's speed drifts by up to 2x within a minute with the host's load, so
only ratios taken under the same conditions mean anything.

scikit-image works on one image at a time (its loop is per image, single
threaded), so its time per image is measured on one image and compared with
scintomo's time per image on the whole stack. RL time per iteration is the
difference between runs of 1 + ITER and 1 iterations divided by ITER: it
excludes the once-per-call set-up (PSF spectra, H^T of the mask, fresh
buffers), which is reported separately. ITER is 8 because the set-up's time
varies from call to call (fresh pages: 0.56 to 1.22 s for the same 8-image
call here); with 3 iterations that jitter was as large as the iterations'
own time and the per-iteration figures swung by 2x between runs.

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
ITER = 8
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


def _interleaved(*fns, repeat=3):
    """Median time of each function, run in turn ``repeat`` times (a, b, c,
    a, b, c, ...): on this VM the host's load drifts by up to 2x within a
    minute, and interleaving puts the reference and scintomo in the same
    conditions, so their ratio holds even when the absolute times do not."""
    ws = [[] for _ in fns]
    cs = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t, c = time.perf_counter(), _cpu()
            fn()
            ws[i].append(time.perf_counter() - t)
            cs[i].append(_cpu() - c)
    return [T(statistics.median(w), statistics.median(c)) for w, c in zip(ws, cs, strict=True)]


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
    """scikit-image's RL, 2 iterations (it has no set-up worth subtracting:
    it allocates one array); timed interleaved with each scintomo case."""
    img, k = data
    return lambda: skr.richardson_lucy(img, k, num_iter=2, clip=False)


@pytest.fixture(scope="module")
def sk_wiener(data):
    img, k = data
    return lambda: skr.wiener(img, k, 0.01, clip=False)


def _rl_per_iteration(x, k, boundary, acc, n_threads, sk_rl):
    """(scintomo per iteration, set-up + 1 iteration, scikit-image per
    iteration), all from one interleaved series."""
    out = np.empty_like(x)

    def run(it):
        deconv.richardson_lucy(
            x, k, iterations=it, boundary=boundary, accelerate=acc, out=out, n_threads=n_threads
        )

    t1, tn, sk = _interleaved(lambda: run(1), lambda: run(1 + ITER), sk_rl)
    return (tn - t1) / ITER, t1, sk / 2


@pytest.mark.parametrize("n_threads", [1, 2])
def test_rl_per_iteration_2048(data, sk_rl, n_threads):
    img, k = data
    for boundary, acc, what in MODES:
        per, t1, sk = _rl_per_iteration(img, k, boundary, acc, n_threads, sk_rl)
        print(
            f"\nRL {N}x{N}, PSF 63x63, {n_threads} thread(s), boundary={boundary} ({what}), "
            f"per iteration: {_vs(per, sk)}; set-up + 1 iteration {t1.wall * 1e3:.0f} ms"
        )


@pytest.mark.parametrize("n_threads", [1, 2])
def test_rl_10_iterations_whole_call_2048(data, n_threads):
    """Issue 19: a 10-iteration call as a whole (set-up included, a fresh
    output each time, as a user calls it) against scikit-image's
    ``richardson_lucy(num_iter=10)``, interleaved; the set-up in iterations'
    worth (target < 2) and the whole-call ratio (target >= 8x).
    ``python -m pytest benches/test_bench_deconv.py -s -k whole_call``."""
    img, k = data
    for boundary, acc, what in MODES:

        def run(it, b=boundary, a=acc):
            deconv.richardson_lucy(img, k, iterations=it, boundary=b, accelerate=a,
                                   n_threads=n_threads)  # fmt: skip

        t10, t1, t9, sk = _interleaved(
            lambda: run(10),
            lambda: run(1),
            lambda: run(1 + ITER),
            lambda: skr.richardson_lucy(img, k, num_iter=10, clip=False),
        )
        per = (t9 - t1) / ITER
        setup = t1 - per
        print(
            f"\nRL {N}x{N}, PSF 63x63, {n_threads} thread(s), boundary={boundary} ({what}), "
            f"10 iterations, whole call: {_vs(t10, sk)}; set-up {setup.wall * 1e3:.0f} ms ="
            f" {setup.wall / per.wall:.1f} iterations' worth (CPU {setup.cpu / per.cpu:.1f})"
        )


@pytest.mark.parametrize("n_threads", [1, 2])
def test_wiener_2048(data, sk_wiener, n_threads):
    img, k = data
    out = np.empty_like(img)
    for boundary in ("periodic", "reflect"):
        t, sk = _interleaved(
            lambda b=boundary: deconv.wiener(
                img, k, balance=0.01, boundary=b, out=out, n_threads=n_threads
            ),
            sk_wiener,
        )
        print(
            f"\nWiener {N}x{N}, PSF 63x63, {n_threads} thread(s), boundary={boundary}: {_vs(t, sk)}"
        )


@pytest.fixture(scope="module")
def stack(data):
    img, _ = data
    return np.stack([np.roll(img, 7 * i, axis=0) for i in range(STACK)])


def test_rl_stack(data, stack, sk_rl):
    _, k = data
    for boundary, acc, what in MODES:
        per, t1, sk = _rl_per_iteration(stack, k, boundary, acc, None, sk_rl)
        per_img = per / STACK
        print(
            f"\nRL stack {STACK}x{N}x{N}, PSF 63x63, all threads, boundary={boundary} ({what}), "
            f"per image-iteration: {_vs(per_img, sk)}; "
            f"set-up + 1 iteration {t1.wall / STACK * 1e3:.0f} ms per image"
        )


def test_wiener_stack(data, stack, sk_wiener):
    _, k = data
    out = np.empty_like(stack)
    for boundary in ("periodic", "reflect"):
        t, sk = _interleaved(
            lambda b=boundary: deconv.wiener(stack, k, balance=0.01, boundary=b, out=out),
            sk_wiener,
        )
        print(
            f"\nWiener stack {STACK}x{N}x{N}, PSF 63x63, all threads, boundary={boundary}, "
            f"per image: {_vs(t / STACK, sk)}"
        )
