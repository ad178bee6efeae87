"""Cone-beam FDK speed against RTK's CPU FDK (``itk-rtk``) in the same run.

Run: ``python -m pytest benches/test_bench_cone.py -s`` (``-k 128`` for the
small case only). 128^3 and 256^3 volumes from 360 projections on a detector
1.5x the volume (192^2 and 384^2 pixels), 1 and 2 threads. Projections of
the 3-D Shepp-Logan come from the built-in Joseph projector (both codes
reconstruct the same data). Prints the median wall time, voxel updates per
second per thread (nz ny nx n_angles / time / threads), the correlation with
the phantom over the central slab and the ratio RTK / ours. RTK runs on all
cores (ITK's global thread count set to the same number of threads).
Without itk-rtk the RTK rows are skipped with a message.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import time

import numpy as np
import pytest

from scintomo.recon import ConeGeometry, cone_project, reconstruct
from scintomo.simulate import ellipsoids_volume, shepp_logan_ellipsoids

N_ANG = 360


def _have_rtk() -> bool:
    try:
        importlib.metadata.version("itk-rtk")
    except importlib.metadata.PackageNotFoundError:
        return False
    return importlib.util.find_spec("itk") is not None


HAVE_RTK = _have_rtk()


def median_time(f, repeat):
    """Median wall seconds, median process CPU seconds (all threads), last result."""
    ts, cs = [], []
    out = None
    for _ in range(repeat):
        c, t = time.process_time(), time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return float(np.median(ts)), float(np.median(cs)), out


def slab_corr(rec, truth, half=4):
    nz, ny, nx = truth.shape
    yy, xx = np.mgrid[:ny, :nx] - (ny - 1) / 2.0
    m = xx**2 + yy**2 <= (0.85 * nx / 2) ** 2
    k = (nz - 1) // 2
    r = np.asarray(rec, np.float64)[k - half : k + half + 1][:, m]
    t = np.asarray(truth, np.float64)[k - half : k + half + 1][:, m]
    return np.corrcoef(r.ravel(), t.ravel())[0, 1], (r * t).sum() / (t * t).sum()


def rtk_fdk(p, theta, geo, shape, vox_um, threads):
    import itk
    from itk import RTK as rtk

    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)
    na, nr, nc = p.shape
    cc, cr = geo.centers(nr, nc)
    px, vox = geo.pixel_size * 1e-3, vox_um * 1e-3
    g = rtk.ThreeDCircularProjectionGeometry.New()
    for t in theta:
        g.AddProjection(geo.source_object, geo.source_detector, math.degrees(t))
    proj = itk.image_from_array(np.ascontiguousarray(p))
    proj.SetOrigin([-cc * px, -cr * px, 0.0])
    proj.SetSpacing([px, px, 1.0])
    nz, ny, nx = shape
    vol = itk.image_from_array(np.zeros((ny, nz, nx), np.float32))
    vol.SetOrigin([-(nx - 1) / 2 * vox, -(nz - 1) / 2 * vox, -(ny - 1) / 2 * vox])
    vol.SetSpacing([vox, vox, vox])
    f = rtk.FDKConeBeamReconstructionFilter[itk.Image[itk.F, 3]].New()
    f.SetInput(0, vol)
    f.SetInput(1, proj)
    f.SetGeometry(g)
    f.SetNumberOfWorkUnits(threads)
    f.Update()
    return np.transpose(itk.array_from_image(f.GetOutput()), (1, 0, 2)) * vox


@pytest.mark.parametrize("n", [128, 256])
def test_bench_fdk_vs_rtk(n):
    nd = n * 3 // 2
    geo = ConeGeometry(30.0, 90.0, f"{0.5 * 64 / nd}mm")  # a +-10 degree fan at any size
    vox = geo.voxel_size
    shape = (n, n, n)
    truth = ellipsoids_volume(
        shepp_logan_ellipsoids(0.8 * n / 2 * vox, value=1 / vox), shape, vox, supersample=1
    )
    theta = np.linspace(0, 2 * np.pi, N_ANG, endpoint=False)
    p = cone_project(truth, theta, geo, (nd, nd))
    work = n**3 * N_ANG
    if HAVE_RTK:
        from itk import RTK  # noqa: F401  (ITK's lazy import, seconds, outside the timing)
    repeat = 3 if n <= 128 else 1
    print(f"\n== FDK {n}^3 from {N_ANG} x {nd}^2 projections")
    for threads in (1, 2):
        t, cpu, rec = median_time(
            lambda threads=threads: reconstruct(
                p, theta, geometry=geo, shape=shape, filter="ramp", n_threads=threads
            ),
            repeat,
        )
        c, s = slab_corr(rec, truth)
        print(
            f"  scintomo {threads} thread(s): {t:8.2f} s wall {cpu:8.2f} s CPU "
            f"{work / t / threads / 1e6:8.1f} M voxel updates/s/thread (wall), "
            f"{work / cpu / 1e6:8.1f} per CPU-s  corr {c:.4f} ls-scale {s:.3f}"
        )
        if HAVE_RTK:
            tr, cpur, rr = median_time(
                lambda threads=threads: rtk_fdk(p, theta, geo, shape, vox, threads), repeat
            )
            cr, sr = slab_corr(rr, truth)
            print(
                f"  RTK      {threads} thread(s): {tr:8.2f} s wall {cpur:8.2f} s CPU "
                f"{work / tr / threads / 1e6:8.1f} M voxel updates/s/thread (wall), "
                f"{work / cpur / 1e6:8.1f} per CPU-s  corr {cr:.4f} ls-scale {sr:.3f}  "
                f"RTK / scintomo: wall {tr / t:.2f}x, CPU {cpur / cpu:.2f}x"
            )
        else:
            print("  RTK: itk-rtk not installed, not timed")
