"""Flat-field + -log of 100 x 2048 x 2048 uint16 (10 flats, 10 darks) against
(a) the numpy reference written plainly and (b) the bytes-moved bound.

Bytes-moved bound: the kernel must read the projections (2 B/pixel) and write
float32 (4 B/pixel). The bound is the time numpy takes to copy a buffer of
half that many bytes (a copy reads and writes each byte: the same traffic).
Targets (issue 2): >= 4x numpy, and <= 1.5x the copy bound.

Sizes can be reduced with SCINTOMO_BENCH_N (projections) for a quick look.
"""

from __future__ import annotations

import os

import numpy as np

from conftest import median_time, report
from scintomo import flatfield as ff

N = int(os.environ.get("SCINTOMO_BENCH_N", "100"))
H = W = 2048


def numpy_reference(proj, flats, darks):
    d = darks.mean(axis=0).astype(np.float32)
    f = flats.mean(axis=0).astype(np.float32)
    return -np.log(np.clip((proj - d) / (f - d), 1e-6, None))


def test_flatfield_minus_log_throughput():
    rng = np.random.default_rng(0)
    flats = rng.integers(30000, 40000, (10, H, W), dtype=np.uint16)
    darks = rng.integers(90, 110, (10, H, W), dtype=np.uint16)
    proj = rng.integers(1000, 35000, (N, H, W), dtype=np.uint16)
    out = np.empty((N, H, W), np.float32)
    out.fill(0)  # touch the pages once so page faults are not timed
    ref = numpy_reference(proj[:2], flats, darks)
    np.testing.assert_allclose(
        ff.correct(proj[:2], flats, darks, log=True), ref, rtol=1e-5, atol=1e-5
    )
    del ref

    moved = proj.nbytes + out.nbytes
    src = np.ones(moved // 2 // 4, np.float32)
    dst = np.empty_like(src)
    dst.fill(0)
    rows = [
        (
            "numpy reference (plain, float32)",
            median_time(lambda: numpy_reference(proj, flats, darks), repeat=3),
        ),
        (
            "copy bound (np.copyto, same bytes moved)",
            median_time(lambda: np.copyto(dst, src), repeat=5),
        ),
        (
            "scintomo correct(log=True, out=...)",
            median_time(lambda: ff.correct(proj, flats, darks, log=True, out=out), repeat=5),
        ),
        (
            "scintomo correct(log=True), new output array",
            median_time(lambda: ff.correct(proj, flats, darks, log=True), repeat=3),
        ),
        (
            "scintomo correct(log=True, out=..., n_threads=1)",
            median_time(
                lambda: ff.correct(proj, flats, darks, log=True, out=out, n_threads=1), repeat=3
            ),
        ),
    ]
    report(
        f"flat-field + -log, {N} x {H} x {W} uint16 -> float32, {moved / 1e9:.2f} GB moved",
        rows,
        baseline="numpy reference (plain, float32)",
    )
    t = dict(rows)
    copy, kern = (
        t["copy bound (np.copyto, same bytes moved)"],
        t["scintomo correct(log=True, out=...)"],
    )
    print(
        f"  kernel / copy bound: {kern / copy:.2f} (target <= 1.5); "
        f"kernel bandwidth {moved / kern / 1e9:.1f} GB/s, copy {moved / copy / 1e9:.1f} GB/s"
    )
