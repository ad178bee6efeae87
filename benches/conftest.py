"""Benchmarks compare each kernel with its reference in the same run and print
the ratio. Run with ``python3 -m pytest benches -s``. Timings are medians of
repeated runs; the machine is shared and noisy, so ratios matter more than
absolute times."""

from __future__ import annotations

import os
import time

import numpy as np


def median_time(fn, *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def report(title: str, rows: list[tuple[str, float]], *, baseline: str | None = None) -> None:
    """Print a table of times and ratios to the baseline row."""
    base = dict(rows)[baseline] if baseline else None
    print(f"\n== {title} (cpus: {os.cpu_count()})")
    for name, t in rows:
        ratio = f"  x{base / t:6.2f} vs {baseline}" if base else ""
        print(f"  {name:<48s} {t * 1e3:10.1f} ms{ratio}")
