"""find_cone_center on a larger simulated lab scan: the centre column and tilt
found, their errors, and the CPU time (no reference implementation exists in
RTK, ASTRA or TomoPy: they take the geometry as given).

    python -m pytest benches/test_bench_cone_center.py -s
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from scintomo.recon import ConeGeometry, find_cone_center
from scintomo.simulate import ellipsoid_cone_projections, shepp_logan_ellipsoids

N = 128
N_ANG = 360


@pytest.mark.parametrize(("cc", "tilt"), [(66.4, 0.6), (61.2, -1.7)])
def test_bench_find_cone_center(cc, tilt):
    g = ConeGeometry(30.0, 90.0, "0.25mm", center_column=cc, center_row=60.3, tilt=tilt)
    vox = g.voxel_size
    radius = 0.8 * (N / 2) * vox
    rng = np.random.default_rng(1)
    beads = [
        [
            1.0 / vox,
            2 * vox,
            2 * vox,
            2 * vox,
            *(rng.uniform(-0.6, 0.6, 2) * radius),
            rng.uniform(-0.4, 0.4) * radius,
            0.0,
        ]
        for _ in range(20)
    ]
    e = np.vstack([shepp_logan_ellipsoids(radius, value=1.0 / vox), np.array(beads)])
    theta = np.linspace(0, 2 * np.pi, N_ANG, endpoint=False)
    p = ellipsoid_cone_projections(e, theta, g, (N, N)).astype(np.float32)
    p += rng.normal(0, 0.005 * p.max(), p.shape).astype(np.float32)
    nominal = ConeGeometry(30.0, 90.0, "0.25mm", center_row=60.3)
    c0 = time.process_time()
    cal = find_cone_center(p, theta, nominal)
    cpu = time.process_time() - c0
    print(
        f"\n== find_cone_center, {N_ANG} angles x {N} x {N}, 0.5 % noise: column {cal.center_column:.4f} "
        f"(true {cc}, error {cal.center_column - cc:+.4f} px), tilt {cal.tilt:.4f} deg "
        f"(true {tilt}, error {cal.tilt - tilt:+.4f}), {cpu:.2f} CPU-s"
    )
