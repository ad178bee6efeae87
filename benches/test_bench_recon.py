"""Speed of the built-in reconstruction and its steps on a 1501 x 2048 sinogram.

Run: ``python -m pytest benches/test_bench_recon.py -s``. Prints timings and
ratios against references measured in the same run (scikit-image's iradon;
TomoPy's gridrec, padded as scintomo pads and unpadded, when TomoPy is
installed) or, where the reference is not installed, against the figures
measured for the issue on the 2-core machine (REFERENCES.md), labelled as
such. Each timing is the median of repeated calls after one warm-up call
(the first call of a process pays the first touch of ~200 MB of buffers). scikit-image's iradon needs ~110 s per 2048-wide slice: it is timed on
the same problem scaled down 4x in columns and angles (work / 64), where our
FBP is timed too, so the ratio compares like with like.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from scintomo.recon import find_center, reconstruct, remove_stripes, tomopy_available
from scintomo.simulate import ellipse_projections, ellipses_image, shepp_logan_ellipses

N_ANG, N_DET = 1501, 2048
TOMOPY_FIND_CENTER_VO_S = 66.0  # REFERENCES.md, same machine, 1501 x 2048
TOMOPY_REMOVE_ALL_STRIPE_S = 6.2
TOMOPY_GRIDREC_S = 0.37  # 0.33-0.41 s per slice
SKIMAGE_IRADON_S = 110.0  # 108-115 s per slice


def timed(f, repeat=1):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def timed_cpu(f, repeat=1):
    """Median wall and process CPU seconds (all threads) per call: on a
    loaded machine the CPU time still says what a call costs."""
    ws, cs = [], []
    for _ in range(repeat):
        c, t = time.process_time(), time.perf_counter()
        f()
        ws.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return float(np.median(ws)), float(np.median(cs))


@pytest.fixture(scope="module")
def data():
    theta = np.linspace(0, np.pi, N_ANG, endpoint=False)
    center = (N_DET - 1) / 2 + 3.7
    p = ellipse_projections(
        shepp_logan_ellipses(N_DET, fill=0.8), theta, N_DET, supersample=1, center=center
    )
    rng = np.random.default_rng(0)
    stack = p[:, None, :] + rng.normal(0, 0.005 * p.max(), (N_ANG, 8, N_DET))
    return theta, center, stack.astype(np.float32)


def accuracy(rec, truth):
    """Correlation with the phantom and scale inside the field of view, the
    phantom resampled onto the slice's grid (``meta["axis_pixel"]``)."""
    from scipy.ndimage import shift

    n = truth.shape[0]
    dy, dx = (a - (n - 1) / 2 for a in rec.meta["axis_pixel"])
    t = shift(truth, (dy, dx), order=1) if (dy or dx) else truth
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2.0
    m = xx**2 + yy**2 < (n / 2.0 - 4) ** 2
    r, t = np.asarray(rec, np.float64)[m], np.asarray(t, np.float64)[m]
    return np.corrcoef(r, t)[0, 1], (r * t).sum() / (t * t).sum()


def test_bench_gridrec_vs_tomopy(data):
    """Built-in gridrec vs TomoPy's gridrec on the same stack, same run."""
    theta, center, stack = data
    truth = ellipses_image(shepp_logan_ellipses(N_DET, fill=0.8), N_DET, supersample=2)
    runs = [("builtin", {}, "built-in gridrec (pad 4096)")]
    if tomopy_available():
        runs += [
            ("tomopy", {}, "TomoPy gridrec (pad 4096)"),
            ("tomopy", {"pad": False}, "TomoPy gridrec (no pad)"),
        ]
    else:
        print(f"\nTomoPy not installed: its gridrec ref {TOMOPY_GRIDREC_S} s/slice (REFERENCES.md)")
    print(f"\ngridrec, {N_ANG} angles x {N_DET} columns: median s per call, slices/s, accuracy")
    for backend, opts, name in runs:

        def run(rows, nt, b=backend, o=opts):
            return reconstruct(stack[:, :rows], theta, center=center, backend=b, n_threads=nt, **o)

        rec = run(1, 2)  # warm-up, and the accuracy
        c, s = accuracy(rec[0], truth)
        for rows in (1, 8):
            for nt in (1, 2):
                t, cpu = timed_cpu(
                    lambda r=rows, n=nt, f=run: f(r, n), repeat=3 if rows == 1 else 1
                )
                print(
                    f"  {name:28s} {rows} slice(s) {nt} thread(s): {t:6.2f} s"
                    f" {t / rows:6.3f} s/slice {rows / t:6.2f} slices/s"
                    f" (CPU {cpu / rows:6.3f} s/slice)  corr {c:.4f} scale {s:.3f}"
                )


def test_bench_reconstruct(data):
    theta, center, stack = data
    print(f"\nreconstruct, {N_ANG} angles x {N_DET} columns (padded to 4096)")
    reconstruct(stack[:, :1], theta, center=center, backend="builtin", algorithm="fbp")  # warm-up
    for alg in ("fbp",):  # gridrec: test_bench_gridrec_vs_tomopy
        for rows in (1,):  # 8 slices: ~40 s, 8 x the 1-slice time
            for nt in (1, 2):
                t, _ = timed(
                    lambda rows=rows, alg=alg, nt=nt: reconstruct(
                        stack[:, :rows],
                        theta,
                        center=center,
                        algorithm=alg,
                        n_threads=nt,
                        backend="builtin",
                    )
                )
                ref = TOMOPY_GRIDREC_S if alg == "gridrec" else SKIMAGE_IRADON_S
                name = "TomoPy gridrec" if alg == "gridrec" else "skimage iradon"
                print(
                    f"  {alg:8s} {rows} slice(s) {nt} thread(s): {t:7.2f} s"
                    f"  {rows / t:6.2f} slices/s  ({name} ref {ref} s/slice:"
                    f" x{ref * rows / t:.1f})"
                )


def test_bench_fbp_vs_skimage(data):
    iradon = pytest.importorskip("skimage.transform").iradon
    theta, _, stack = data
    sub = stack[::4, 0, ::4]  # 376 angles x 512 columns: 1/64 of the work
    th = theta[::4]
    c = (512 - 1) / 2 + 3.7 / 4
    t_sk, _ = timed(
        lambda: iradon(
            sub.T.astype(np.float64), np.rad2deg(th), filter_name="shepp-logan", circle=True
        )
    )
    print(f"\nFBP vs skimage iradon on {sub.shape[0]} angles x {sub.shape[1]} columns")
    for nt in (1, 2):
        t, _ = timed(
            lambda nt=nt: reconstruct(
                sub, th, center=c, algorithm="fbp", n_threads=nt, backend="builtin"
            ),
            repeat=3,
        )
        print(f"  skimage {t_sk:.2f} s, ours {nt} thread(s) {t:.3f} s: x{t_sk / t:.0f}")


def test_bench_find_center(data):
    theta, center, stack = data
    t, c = timed(lambda: find_center(stack[:, :1], theta))
    print(
        f"\nfind_center vo, one {N_ANG} x {N_DET} sinogram: {t:.2f} s"
        f" (found {c:.2f}, true {center:.2f}); TomoPy find_center_vo ref"
        f" {TOMOPY_FIND_CENTER_VO_S} s: x{TOMOPY_FIND_CENTER_VO_S / t:.0f}"
    )


def test_bench_remove_stripes(data):
    _, _, stack = data
    sino = stack[:, 0]
    ref_s, ref_name = TOMOPY_REMOVE_ALL_STRIPE_S, "ref (REFERENCES.md)"
    if tomopy_available():
        import tomopy

        ref_s, _ = timed(lambda: tomopy.remove_all_stripe(stack[:, :1], ncore=1))
        ref_name = "measured now, ncore=1"
    for method in ("all", "sort", "filter", "fw"):
        for nt in (1, 2):
            t, _ = timed(
                lambda m=method, nt=nt: remove_stripes(sino, method=m, n_threads=nt), repeat=3
            )
            ref = f"; TomoPy remove_all_stripe {ref_name} {ref_s:.2f} s: x{ref_s / t:.0f}"
            print(
                f"\nremove_stripes {method:6s} {nt} thread(s) {N_ANG} x {N_DET}: {t:.3f} s"
                + (ref if method == "all" else "")
            )
