"""Speed of the built-in reconstruction and its steps on a 1501 x 2048 sinogram.

Run: ``python -m pytest benches/test_bench_recon.py -s``; issue 19's figures
alone (gridrec against TomoPy's fastest mode, the TomoPy backend's overhead):
``python -m pytest benches/test_bench_recon.py -s -k gridrec_vs_tomopy``,
with TomoPy importable (``LD_LIBRARY_PATH=/tmp/venv-tomopy/lib
PYTHONPATH=python /tmp/venv-tomopy/bin/python -m pytest ...`` on the 2-core
machine). Every reference is
timed directly in the same run, interleaved with ours (one call of each in
turn, medians over the rounds): TomoPy's own functions (``tomopy.recon``,
``find_center_vo``, ``remove_all_stripe``, ``remove_stripe_fw``,
``retrieve_phase``) called themselves, not through scintomo's TomoPy
backend, and scikit-image's ``iradon``. TomoPy's gridrec is given the same
padded length as the built-in one (4096, edge values; the padding is done
before the clock starts) and is timed unpadded too, each with its accuracy.
Where TomoPy is not installed (it is conda-only) its rows are skipped and
the figures REFERENCES.md records for the 2-core machine are printed,
labelled as such. scikit-image's iradon needs ~110 s per 2048-wide slice:
it is timed on the same problem scaled down 4x in columns and angles
(work / 64), where our FBP is timed too, so the ratio compares like with
like. The first call of each kernel (page faults of ~200 MB of buffers) is
a warm-up, not timed.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from scintomo.recon import (
    find_center,
    padded_length,
    paganin,
    reconstruct,
    remove_stripes,
    tomopy_available,
)
from scintomo.simulate import ellipse_projections, ellipses_image, shepp_logan_ellipses

N_ANG, N_DET = 1501, 2048
# REFERENCES.md, the 2-core machine, 1501 x 2048: printed only without TomoPy.
TOMOPY_FIND_CENTER_VO_S = 66.0
TOMOPY_REMOVE_ALL_STRIPE_S = 6.2


def tomopy_or_none():
    if not tomopy_available():
        return None
    import tomopy

    return tomopy


def interleaved(calls: dict, rounds: int, warmup: bool = True) -> dict:
    """Median wall and process-CPU seconds per call of each callable, the
    callables run in turn in each round (so a change in the machine's load
    hits all of them alike). One untimed warm-up call each first, unless
    ``warmup`` is False."""
    for f in calls.values() if warmup else ():
        f()
    wall = {k: [] for k in calls}
    cpu = {k: [] for k in calls}
    for _ in range(rounds):
        for k, f in calls.items():
            c, t = time.process_time(), time.perf_counter()
            f()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {k: (float(np.median(wall[k])), float(np.median(cpu[k]))) for k in calls}


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


def on_grid(truth, axis_pixel):
    """The phantom resampled onto a slice whose rotation axis is at
    ``axis_pixel`` (row, column), and each pixel's radius / (n / 2)."""
    from scipy.ndimage import shift

    n = truth.shape[0]
    dy, dx = (a - (n - 1) / 2 for a in axis_pixel)
    t = shift(truth, (dy, dx), order=1) if (dy or dx) else truth
    yy, xx = np.mgrid[:n, :n] - np.asarray(axis_pixel, float)[:, None, None]
    return np.asarray(t, np.float64), np.hypot(xx, yy) / (n / 2.0)


def accuracy(rec, truth, axis_pixel):
    """Correlation with the phantom and scale (least-squares gain) inside
    the field of view."""
    t, rr = on_grid(truth, axis_pixel)
    r = np.asarray(rec, np.float64)
    m = rr < 1 - 8.0 / truth.shape[0]
    return float(np.corrcoef(r[m], t[m])[0, 1]), float((r[m] * t[m]).sum() / (t[m] ** 2).sum())


def radial_gain(rec, truth, axis_pixel):
    """Mean of slice / truth at the centre (r < 0.1 R) and towards the edge
    (0.8 R < r < 0.9 R) of a uniform disc."""
    t, rr = on_grid(truth, axis_pixel)
    r = np.asarray(rec, np.float64)
    return tuple(float(r[m].mean() / t[m].mean()) for m in (rr < 0.1, (rr > 0.8) & (rr < 0.9)))


def test_bench_gridrec_vs_tomopy(data):
    """Built-in gridrec against tomopy.recon(algorithm="gridrec") itself,
    padded to the same length and unpadded, interleaved; and scintomo's
    TomoPy backend against the direct call it wraps (issue 19: the built-in
    at least as many slices/s as TomoPy unpadded, the wrapper's overhead
    under 10 % of TomoPy's own time)."""
    theta, center, stack = data
    truth = ellipses_image(shepp_logan_ellipses(N_DET, fill=0.8), N_DET, supersample=2)
    tp = tomopy_or_none()
    pad_len = padded_length(N_DET, True)
    left = (pad_len - N_DET) // 2
    th32 = theta.astype(np.float32)
    print(f"\ngridrec, {N_ANG} angles x {N_DET} columns, shepp filter: median s per call")
    if tp is None:
        print("  TomoPy not installed: no reference timed (REFERENCES.md: 0.33-0.41 s/slice)")
    for rows in (1, 8):
        sub = np.ascontiguousarray(stack[:, :rows])
        padded = np.pad(sub, ((0, 0), (0, 0), (left, pad_len - N_DET - left)), mode="edge")
        for nt in (1, 2):
            calls = {
                "built-in (pad 4096)": lambda s=sub, n=nt: reconstruct(
                    s, theta, center=center, backend="builtin", n_threads=n
                ),
            }
            if tp is not None:
                calls["TomoPy direct (pad 4096)"] = lambda a=padded, n=nt, r=rows: tp.recon(
                    a,
                    th32,
                    center=np.full(r, center + left, np.float32),
                    algorithm="gridrec",
                    filter_name="shepp",
                    ncore=n,
                )
                calls["TomoPy direct (no pad)"] = lambda a=sub, n=nt, r=rows: tp.recon(
                    a,
                    th32,
                    center=np.full(r, center, np.float32),
                    algorithm="gridrec",
                    filter_name="shepp",
                    ncore=n,
                )
                calls["TomoPy via scintomo"] = lambda s=sub, n=nt: reconstruct(
                    s, theta, center=center, backend="tomopy", n_threads=n
                )
            times = interleaved(calls, rounds=3 if rows == 1 else 2)
            ours = times["built-in (pad 4096)"][0]
            for name, (t, cpu) in times.items():
                ratio = (
                    "" if name.startswith("built-in") else f"  time / built-in's x{t / ours:.2f}"
                )
                print(
                    f"  {name:26s} {rows} slice(s) {nt} thread(s): {t:6.2f} s"
                    f" {rows / t:6.2f} slices/s (CPU {cpu / rows:6.3f} s/slice){ratio}"
                )
            if tp is not None:
                fast = times["TomoPy direct (no pad)"][0]
                direct, wrapped = times["TomoPy direct (pad 4096)"], times["TomoPy via scintomo"]
                print(
                    f"  -> issue 19, {rows} slice(s) {nt} thread(s): built-in slices/s /"
                    f" TomoPy unpadded's x{fast / ours:.2f} (target >= 1); TomoPy backend's"
                    f" overhead over the direct call {100 * (wrapped[0] / direct[0] - 1):+.1f} %"
                    f" wall, {100 * (wrapped[1] / direct[1] - 1):+.1f} % CPU (target < 10 %)"
                )
    # Accuracy of each, one slice of the phantom, and the gain across the
    # field on a uniform disc of radius 0.95 R (noise-free, same geometry).
    # TomoPy's gridrec puts the axis on row W // 2 - 1 and column W // 2 of
    # its W-wide slice.
    disc = np.array([[1.0, 0.95 * N_DET / 2, 0.95 * N_DET / 2, 0.0, 0.0, 0.0]])
    p_disc = ellipse_projections(disc, theta, N_DET, supersample=1, center=center)
    p_disc = p_disc.astype(np.float32)[:, None, :]
    t_disc = ellipses_image(disc, N_DET, supersample=2)

    def slices(arr):
        out = {
            "built-in (pad 4096)": (
                reconstruct(arr, theta, center=center, backend="builtin")[0],
                ((N_DET - 1) / 2,) * 2,
            )
        }
        if tp is not None:
            for name, c, lft in (
                ("TomoPy direct (pad 4096)", center + left, left),
                ("TomoPy direct (no pad)", center, 0),
            ):
                w = N_DET + 2 * lft
                a = np.pad(arr, ((0, 0), (0, 0), (lft, w - N_DET - lft)), mode="edge")
                rec = tp.recon(
                    a,
                    th32,
                    center=np.array([c], np.float32),
                    algorithm="gridrec",
                    filter_name="shepp",
                )[0, lft : lft + N_DET, lft : lft + N_DET]
                out[name] = (rec, (w // 2 - 1 - lft, w // 2 - lft))
        return out

    phantom, uniform = slices(np.ascontiguousarray(stack[:, :1])), slices(p_disc)
    for name, (rec, axis) in phantom.items():
        corr, scale = accuracy(rec, truth, axis)
        rec_d, axis_d = uniform[name]
        g0, g1 = radial_gain(rec_d, t_disc, axis_d)
        print(
            f"  {name:26s} accuracy: corr {corr:.4f} scale {scale:.3f};"
            f" gain on a uniform disc {g0:.3f} at the centre, {g1:.3f} at 0.8-0.9 R"
        )


def test_bench_reconstruct_fbp(data):
    theta, center, stack = data
    print(f"\nbuilt-in FBP, {N_ANG} angles x {N_DET} columns (padded to 4096)")
    calls = {
        nt: lambda nt=nt: reconstruct(
            stack[:, :1], theta, center=center, algorithm="fbp", n_threads=nt, backend="builtin"
        )
        for nt in (1, 2)
    }
    for nt, (t, _) in interleaved(calls, rounds=1).items():
        print(f"  fbp 1 slice {nt} thread(s): {t:7.2f} s")


def test_bench_fbp_vs_skimage(data):
    iradon = pytest.importorskip("skimage.transform").iradon
    theta, _, stack = data
    sub = stack[::4, 0, ::4]  # 376 angles x 512 columns: 1/64 of the work
    th = theta[::4]
    c = (512 - 1) / 2 + 3.7 / 4
    calls = {
        "skimage": lambda: iradon(
            sub.T.astype(np.float64), np.rad2deg(th), filter_name="shepp-logan", circle=True
        )
    }
    for nt in (1, 2):
        calls[f"ours {nt} thread(s)"] = lambda nt=nt: reconstruct(
            sub, th, center=c, algorithm="fbp", n_threads=nt, backend="builtin"
        )
    times = interleaved(calls, rounds=3)
    t_sk = times["skimage"][0]
    print(f"\nFBP vs skimage iradon on {sub.shape[0]} angles x {sub.shape[1]} columns")
    for name, (t, _) in times.items():
        print(f"  {name:18s} {t:.3f} s" + ("" if name == "skimage" else f": x{t_sk / t:.0f}"))


def test_bench_find_center(data):
    theta, center, stack = data
    tp = tomopy_or_none()
    find_center(stack[:, :1], theta)  # warm-up
    calls = {"ours": lambda: find_center(stack[:, :1], theta)}
    if tp is not None:
        # One call (~5 min on the loaded 2-core machine): no warm-up.
        calls["TomoPy find_center_vo"] = lambda: tp.find_center_vo(stack[:, :1], ncore=2)
    times = interleaved(calls, rounds=1, warmup=False)
    t = times["ours"][0]
    found = float(find_center(stack[:, :1], theta))
    print(
        f"\nfind_center vo, one {N_ANG} x {N_DET} sinogram (true {center:.2f}, ours {found:.2f}):"
    )
    print(f"  ours {t:.2f} s")
    if tp is not None:
        ref = times["TomoPy find_center_vo"][0]
        print(f"  TomoPy find_center_vo (ncore=2), same run: {ref:.1f} s: x{ref / t:.0f}")
    else:
        print(
            f"  TomoPy not installed; REFERENCES.md's figure {TOMOPY_FIND_CENTER_VO_S} s:"
            f" x{TOMOPY_FIND_CENTER_VO_S / t:.0f}"
        )


def test_bench_remove_stripes(data):
    _, _, stack = data
    sino = stack[:, 0]
    tp = tomopy_or_none()
    print(f"\nremove_stripes, one {N_ANG} x {N_DET} sinogram")
    for method in ("all", "sort", "filter", "fw"):
        for nt in (1, 2):
            calls = {"ours": lambda m=method, nt=nt: remove_stripes(sino, method=m, n_threads=nt)}
            if tp is not None and method == "all":
                calls["TomoPy"] = lambda nt=nt: tp.remove_all_stripe(stack[:, :1], ncore=nt)
            if tp is not None and method == "fw":
                calls["TomoPy"] = lambda nt=nt: tp.remove_stripe_fw(
                    stack[:, :1], level=4, wname="db5", ncore=nt
                )
            times = interleaved(calls, rounds=3)
            t = times["ours"][0]
            line = f"  {method:6s} {nt} thread(s): {t:.3f} s"
            if "TomoPy" in times:
                ref = times["TomoPy"][0]
                line += f"; TomoPy's own (ncore={nt}), same run: {ref:.3f} s: x{ref / t:.1f}"
            elif method == "all":
                line += (
                    f"; TomoPy not installed, REFERENCES.md's {TOMOPY_REMOVE_ALL_STRIPE_S} s:"
                    f" x{TOMOPY_REMOVE_ALL_STRIPE_S / t:.1f}"
                )
            print(line)
    # fw over a stack of 8 sinograms: n_threads runs them in parallel.
    calls = {nt: lambda nt=nt: remove_stripes(stack, method="fw", n_threads=nt) for nt in (1, 2)}
    times = interleaved(calls, rounds=1)
    print(
        f"  fw, 8 sinograms: {times[1][0]:.2f} s (1 thread), {times[2][0]:.2f} s (2 threads):"
        f" x{times[1][0] / times[2][0]:.2f}"
    )


def test_bench_paganin():
    """Paganin on 4 projections of 2048 x 2048 against TomoPy's
    retrieve_phase with the same filter (alpha = 1 / (4 pi^2 delta/beta),
    lengths in cm); both pad to 4096 x 4096 here."""
    rng = np.random.default_rng(1)
    n, k = 2048, 4
    t = np.exp(-0.5 * rng.random((k, n, n), dtype=np.float32)).astype(np.float32)
    ps_um, z_mm, e_kev, db = 0.65, 30.0, 25.0, 300.0
    tp = tomopy_or_none()
    work = t.copy()
    print(f"\npaganin, {k} x {n} x {n} (padded to 4096^2)")
    for nt in (1, 2):
        calls = {
            "ours": lambda nt=nt: paganin(
                t,
                pixel_size=ps_um,
                distance=z_mm,
                energy=e_kev,
                delta_beta=db,
                log=False,
                n_threads=nt,
            )
        }
        if tp is not None:
            # retrieve_phase filters in place: its own copy, made once.
            calls["TomoPy"] = lambda nt=nt: tp.retrieve_phase(
                work,
                pixel_size=ps_um * 1e-4,
                dist=z_mm * 0.1,
                energy=e_kev,
                alpha=1.0 / (4 * np.pi**2 * db),
                ncore=nt,
            )
        times = interleaved(calls, rounds=3)
        ours = times["ours"][0]
        line = f"  {nt} thread(s): ours {ours:.2f} s ({ours / k * 1e3:.0f} ms per image)"
        if tp is not None:
            ref = times["TomoPy"][0]
            line += (
                f"; TomoPy retrieve_phase (ncore={nt}), same run: {ref:.2f} s: x{ref / ours:.1f}"
            )
        print(line)
