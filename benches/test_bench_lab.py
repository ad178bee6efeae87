"""Lab corrections (issue 18) on one block of a scan, each against the obvious
numpy/scipy implementation in the same run (accuracy and time), and as a share of
the same block's reconstruction (gridrec, same run, same threads): the issue's
measure, target "together under 25% of the reconstruction's time".

Block: SCINTOMO_BENCH_N projections x SCINTOMO_BENCH_ROWS rows x
SCINTOMO_BENCH_W columns; the default is a block of the issue's 720 x 2048 x
2048 scan as the planner cuts it (720 x 16 x 2048: nsino_per_chunk 16). Threads:
SCINTOMO_BENCH_THREADS (default "1,2"). One command::

    python -m pytest benches/test_bench_lab.py -s -q -p no:cacheprovider

The references are single-threaded (numpy polyval, scipy.ndimage per frame with
the coordinates computed once); the reconstruction and the scintomo kernels run
with the row's thread count.
"""

from __future__ import annotations

import os

import numpy as np

import scintomo.beamhardening as bh
from conftest import median_time
from scintomo.alignment import shift_projections
from scintomo.distortion import DistortionModel, undistort
from scintomo.recon import reconstruct

N = int(os.environ.get("SCINTOMO_BENCH_N", "720"))
R = int(os.environ.get("SCINTOMO_BENCH_ROWS", "16"))
W = int(os.environ.get("SCINTOMO_BENCH_W", "2048"))
THREADS = [int(t) for t in os.environ.get("SCINTOMO_BENCH_THREADS", "1,2").split(",")]


def _block():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.0, 2.0, (N, R, W)).astype(np.float32)
    theta = np.linspace(0, np.pi, N, endpoint=False)
    corr = bh.from_spectrum(kvp=80, material="Al", density=2.699, max_thickness=20.0)
    # ~3 px of barrel distortion at the frame's corners; the block a middle band of rows
    model = DistortionModel((W / 2, W / 2), (0.0, 3e-9), 10.0, 0.0, 0.0, 0, shape=(W, W))
    shifts = rng.uniform(-2, 2, (N, 2))
    return p, theta, corr, model, shifts


def test_lab_corrections_share_of_reconstruction():
    from scipy import ndimage

    p, theta, corr, model, shifts = _block()
    first_row = W // 2 - R // 2
    c = np.concatenate([[0.0], corr.coefficients])
    rows, cols = np.mgrid[0:R, 0:W].astype(np.float64)
    src = model.distort_points(np.stack([rows.ravel() + first_row, cols.ravel()], axis=1))
    coords = [src[:, 0].reshape(R, W) - first_row, src[:, 1].reshape(R, W)]

    def polyval():
        x = p.astype(np.float64)
        y = np.polynomial.polynomial.polyval(x, c)
        return np.where(x > corr.p_max, np.nan, y).astype(np.float32)  # the tangent's test

    def map_coordinates():
        return np.stack([ndimage.map_coordinates(f, coords, order=1, mode="nearest") for f in p])

    def scipy_shift():
        return np.stack(
            [ndimage.shift(f, -s, order=1, mode="nearest") for f, s in zip(p, shifts, strict=True)]
        )

    refs = {
        "beam hardening": (polyval, lambda nt: corr.apply(p, n_threads=nt), "numpy polyval"),
        "undistortion": (
            map_coordinates,
            lambda nt: undistort(p, model, first_row=first_row, n_threads=nt),
            "scipy map_coordinates",
        ),
        "drift shifts": (
            scipy_shift,
            lambda nt: shift_projections(p, shifts, order=1, n_threads=nt),
            "scipy ndimage.shift",
        ),
    }
    print(f"\n== lab corrections on a {N} x {R} x {W} block (cpus: {os.cpu_count()})")
    ref_times, ref_out = {}, {}
    for name, (ref, _, ref_name) in refs.items():
        ref_out[name] = ref()
        ref_times[name] = median_time(ref, repeat=3, warmup=0)
        print(f"  {name + ': ' + ref_name + ' (1 thread)':<52s} {ref_times[name] * 1e3:9.1f} ms")
    for nt in THREADS:
        t_rec = median_time(lambda nt=nt: reconstruct(p, theta, n_threads=nt), repeat=3)
        print(f"  -- {nt} thread(s): reconstruction (gridrec) {t_rec * 1e3:.1f} ms")
        total = 0.0
        for name, (_, fast, ref_name) in refs.items():
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # values beyond the calibration, counted
                got = fast(nt)
                t = median_time(lambda f=fast, nt=nt: f(nt), repeat=5)
            want = ref_out[name]
            ok = np.isfinite(want)
            err = float(np.abs(got[ok] - want[ok]).max())
            total += t
            print(
                f"  {name + ': scintomo':<52s} {t * 1e3:9.1f} ms  x{ref_times[name] / t:6.1f} vs "
                f"{ref_name}  max |diff| {err:.1e}  {100 * t / t_rec:5.1f}% of recon"
            )
            assert err <= 1e-5 * max(1.0, float(np.abs(want[ok]).max())), name
        verdict = "met" if total < 0.25 * t_rec else "NOT met"
        print(
            f"  three corrections together: {total * 1e3:.1f} ms = {100 * total / t_rec:.1f}% of "
            f"the reconstruction (target < 25%: {verdict})"
        )


def test_dynamic_flatfield_share_of_reconstruction():
    """The dynamic flat-field as the pipeline runs it: weights fitted once on a band of
    rows (SCINTOMO_BENCH_BAND rows, default 64), then each block only divides by its flats
    (``weights=``, ``basis=``); against the fit on every block's own rows (the previous
    pipeline step) and the numpy per-projection division, as a share of the block's
    reconstruction. The band fit is counted per block as its share of the scan's
    SCINTOMO_BENCH_HEIGHT / ROWS blocks (default 2048 / 16 = 128)."""
    from scintomo.flatfield import correct, dynamic

    band = int(os.environ.get("SCINTOMO_BENCH_BAND", "64"))
    height = int(os.environ.get("SCINTOMO_BENCH_HEIGHT", "2048"))
    n_blocks = max(1, height // R)
    rng = np.random.default_rng(1)
    x = np.arange(W)
    drift = 300 * np.sin(2 * np.pi * x / 37.0)

    def scan(rows):
        flats = 30000 + rng.uniform(-1, 1, (20, 1, 1)) * drift + rng.normal(0, 100, (20, rows, W))
        w_true = np.sin(np.linspace(0, 3, N))[:, None, None]
        p = rng.uniform(0.0, 2.0, (N, rows, W))
        counts = (30000 + w_true * drift) * np.exp(-p)
        return counts.astype(np.float32), flats.astype(np.float32)

    counts, flats = scan(R)
    band_counts, band_flats = scan(band)
    theta = np.linspace(0, np.pi, N, endpoint=False)
    t_rec = median_time(lambda: reconstruct(-np.log(counts / 30000), theta, n_threads=1), repeat=1)
    t_fit_band = median_time(
        lambda: dynamic(band_counts, band_flats, None, n_components=3), repeat=1, warmup=0
    )
    kept = {}

    def fit_block():  # the previous pipeline step: the fit on the block's own rows
        kept["model"] = dynamic(counts, flats, None, n_components=3, return_model=True)[1]

    t_fit_block = median_time(fit_block, repeat=1, warmup=0)
    fitted = kept["model"]
    weights, basis = fitted.weights, fitted.basis

    def numpy_division():  # the obvious way: one flat per projection, float64
        m = fitted
        return np.stack([(counts[j] - m.dark) / m.flat(weights[j]) for j in range(N)])

    got = dynamic(counts, flats, None, weights=weights, basis=basis)
    err = float(np.abs(got - numpy_division()).max())
    rows = [
        ("conventional flat-field (1 thread)", median_time(lambda: correct(counts, flats, None,
                                                                           n_threads=1))),
        ("dynamic, TV fit on the block's rows (before)", t_fit_block),
        ("dynamic, numpy division per projection", median_time(numpy_division, repeat=3)),
        ("dynamic, given weights (each block)", median_time(
            lambda: dynamic(counts, flats, None, weights=weights, basis=basis), repeat=3)),
    ]  # fmt: skip
    print(f"\n== dynamic flat-field on a {N} x {R} x {W} block (cpus: {os.cpu_count()})")
    print(f"  reconstruction (gridrec, 1 thread) {t_rec * 1e3:.1f} ms")
    for name, t in rows:
        print(f"  {name:<52s} {t * 1e3:9.1f} ms  {100 * t / t_rec:6.1f}% of recon")
    per_block = rows[-1][1] + t_fit_band / n_blocks
    print(
        f"  band fit ({N} x {band} x {W}) {t_fit_band:.2f} s once = {t_fit_band / n_blocks * 1e3:.1f}"
        f" ms per block of {n_blocks}; per block with it: {per_block * 1e3:.1f} ms = "
        f"{100 * per_block / t_rec:.1f}% of recon (before: {100 * rows[1][1] / t_rec:.0f}%); "
        f"max |diff| vs numpy {err:.1e}"
    )
    assert err < 1e-5
