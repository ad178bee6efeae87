"""Offset-axis 360-degree scans (half acquisition): finding the axis and
stitching to a 180-degree sinogram of double width, against TomoPy's
``sino_360_to_180`` (given the overlap; it does not find it) timed in the same
run where TomoPy is installed (TomoPy lives in its own environment here:
``SCINTOMO_TOMOPY_PYTHON=/tmp/venv-tomopy/bin/python``, with
``LD_LIBRARY_PATH`` for its libraries, runs it in a subprocess on the same
data saved as .npy).

    python -m pytest benches/test_bench_halfacq.py -s

Prints medians (wall) and CPU seconds, and the ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import median_time
from scintomo.recon import find_center_360, sino_360_to_180, stitched_width
from scintomo.simulate import ellipse_projections, shepp_logan_ellipses

N_DET, N_ROWS, N_ANG = 2048, 8, 1800
AXIS = 1800.3  # right side, overlap ~ 494 px

_TOMOPY_SCRIPT = r"""
import json, sys, time
import numpy as np
import tomopy
data = np.load(sys.argv[1])
overlap, side = int(sys.argv[2]), sys.argv[3]
times, cpu = [], []
for _ in range(4):
    t0, c0 = time.perf_counter(), time.process_time()
    out = tomopy.sino_360_to_180(data, overlap=overlap, rotation=side)
    times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
print(json.dumps({"wall": sorted(times[1:])[1], "cpu": sorted(cpu[1:])[1], "shape": out.shape}))
"""


def _tomopy_python() -> str | None:
    exe = os.environ.get("SCINTOMO_TOMOPY_PYTHON", "/tmp/venv-tomopy/bin/python")
    if os.path.exists(exe):
        return exe
    try:
        import tomopy  # noqa: F401
    except Exception:
        return None
    return sys.executable


@pytest.fixture(scope="module")
def scan():
    theta = np.linspace(0, 2 * np.pi, N_ANG, endpoint=False)
    e = shepp_logan_ellipses(stitched_width(N_DET, AXIS), fill=0.95)
    sino = ellipse_projections(e, theta, N_DET, center=AXIS, supersample=1)
    return theta, np.repeat(sino[:, None, :], N_ROWS, axis=1).astype(np.float32)


def _cpu(fn) -> float:
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def test_bench_half_acquisition(scan, tmp_path):
    theta, proj = scan
    ha = find_center_360(proj, theta)
    print(f"\n== half acquisition: {N_ANG} angles x {N_ROWS} rows x {N_DET} columns, axis {AXIS}")
    print(
        f"  found axis {ha.center:.3f} px (error {ha.center - AXIS:+.3f}), {ha.side}, "
        f"overlap {ha.overlap:.1f} px"
    )
    t_find = median_time(lambda: find_center_360(proj, theta), repeat=3)
    t_ours = median_time(lambda: sino_360_to_180(proj, theta, ha.center), repeat=3)
    c_ours = _cpu(lambda: sino_360_to_180(proj, theta, ha.center))
    print(f"  find_center_360                 {t_find * 1e3:9.1f} ms")
    print(f"  sino_360_to_180 (scintomo)      {t_ours * 1e3:9.1f} ms  ({c_ours:.2f} CPU-s)")
    exe = _tomopy_python()
    if exe is None:
        print("  TomoPy not installed: no reference timing")
        return
    np.save(tmp_path / "proj.npy", proj)
    overlap = int(round(ha.overlap))
    env = dict(os.environ)
    env.setdefault("LD_LIBRARY_PATH", os.path.join(os.path.dirname(os.path.dirname(exe)), "lib"))
    res = subprocess.run(
        [exe, "-c", _TOMOPY_SCRIPT, str(tmp_path / "proj.npy"), str(overlap), ha.side],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if res.returncode != 0:
        print(f"  TomoPy failed: {res.stderr.strip()[-300:]}")
        return
    t = json.loads(res.stdout.strip().splitlines()[-1])
    print(
        f"  tomopy.sino_360_to_180 (overlap {overlap}) {t['wall'] * 1e3:9.1f} ms  "
        f"({t['cpu']:.2f} CPU-s), shape {tuple(t['shape'])}"
    )
    print(
        f"  ratio TomoPy / scintomo stitching: wall x{t['wall'] / t_ours:.2f}, "
        f"CPU x{t['cpu'] / max(c_ours, 1e-9):.2f}"
    )
