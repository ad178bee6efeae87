"""Cone-beam FDK speed against RTK's CPU FDK (``itk-rtk``) in the same run,
and where the back-projection stands against this machine's bounds.

Run everything: ``python benches/test_bench_cone.py`` (or ``python -m pytest
benches/test_bench_cone.py -s``); ``--quick`` runs the 128^3 case and the
roofline only; ``-k 128`` / ``-k 256`` / ``-k microscope`` / ``-k roofline``
pick one under pytest.

- 128^3 and 256^3 volumes from 360 projections on a detector 1.5x the volume
  (192^2 and 384^2 pixels), 1 and 2 threads. Projections of the 3-D
  Shepp-Logan come from the built-in Joseph projector (both codes reconstruct
  the same data).
- The microscope case: 720 projections of 2048 x 2048 pixels into a 2048 x
  2048 x 64 slab of the 2048^3 volume the detector sees (voxel rows
  1536:1600, off the central plane so the cone matters). Only the detector
  rows the slab's cone needs are made and fed (as the pipeline's z-slabs
  do: :func:`scintomo.pipeline.geometry.slab_detector_rows`), analytic line
  integrals of a Shepp-Logan. RTK is timed on the first ``--rtk-angles``
  (default 24) of the 720 angles and its time scaled linearly to 720, which
  this output says on the RTK row. ``--rtk-cube-angles N`` does the same
  for the 256^3 case (default: RTK on all 360 angles).
- Roofline: a STREAM-like copy and triad in numpy (memory bandwidth) and a
  float32 matrix product through BLAS (a practical peak FMA rate), one
  thread, against the bytes and flops the back-projection's inner loop
  spends per voxel update.

Printed per code and thread count: the median wall time, the median process
CPU time (all threads), voxel updates (nz ny nx n_angles) per wall second per
thread and per CPU second, the correlation with the phantom over the central
slab, the least-squares intensity scale and the ratio RTK / scintomo. RTK runs
with ITK's global thread count and the filter's work units set to the same
number of threads; its CPU / wall ratio is printed to show it obeys. Without
itk-rtk the RTK rows are skipped with a message.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import os
import subprocess
import sys
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
    """Correlation and least-squares scale of ``rec`` against ``truth`` over
    the central 2 half + 1 slices, inside 85% of the field's radius."""
    nz, ny, nx = truth.shape
    yy, xx = np.mgrid[:ny, :nx] - (ny - 1) / 2.0
    m = xx**2 + yy**2 <= (0.85 * nx / 2) ** 2
    k = (nz - 1) // 2
    half = min(half, k)
    r = np.asarray(rec, np.float64)[k - half : k + half + 1][:, m]
    t = np.asarray(truth, np.float64)[k - half : k + half + 1][:, m]
    return np.corrcoef(r.ravel(), t.ravel())[0, 1], (r * t).sum() / (t * t).sum()


def rtk_fdk(p, theta, geo, shape, vox_um, threads, *, row0=0, n_rows=None, z_offset=0.0):
    """RTK's CPU FDK (ramp filter) of ``p`` (angle, row, column) in our
    conventions (RTK's y is our z, RTK's z our -y): rows ``row0:row0 + len``
    of a detector of ``n_rows`` rows; the volume's centre ``z_offset`` voxels
    above the source plane. Returns (nz, ny, nx) attenuation per voxel."""
    import itk
    from itk import RTK as rtk

    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)
    na, nr, nc = p.shape
    cc, cr = geo.centers(n_rows or nr, nc)
    px, vox = geo.pixel_size * 1e-3, vox_um * 1e-3
    g = rtk.ThreeDCircularProjectionGeometry.New()
    for t in theta:
        g.AddProjection(geo.source_object, geo.source_detector, math.degrees(t))
    proj = itk.image_from_array(np.ascontiguousarray(p, dtype=np.float32))
    proj.SetOrigin([-cc * px, (row0 - cr) * px, 0.0])
    proj.SetSpacing([px, px, 1.0])
    nz, ny, nx = shape
    vol = itk.image_from_array(np.zeros((ny, nz, nx), np.float32))
    vol.SetOrigin([-(nx - 1) / 2 * vox, (z_offset - (nz - 1) / 2) * vox, -(ny - 1) / 2 * vox])
    vol.SetSpacing([vox, vox, vox])
    f = rtk.FDKConeBeamReconstructionFilter[itk.Image[itk.F, 3]].New()
    f.SetInput(0, vol)
    f.SetInput(1, proj)
    f.SetGeometry(g)
    f.SetNumberOfWorkUnits(threads)
    f.Update()
    return np.transpose(itk.array_from_image(f.GetOutput()), (1, 0, 2)) * vox


def _row(name, threads, t, cpu, work, corr, scale, extra=""):
    c = f"corr {corr:.4f} scale {scale:.3f}" if corr is not None else "corr    -   scale   -  "
    print(
        f"  {name:<9}{threads} thr {t:9.2f} s wall {cpu:9.2f} s CPU (CPU/wall {cpu / t:4.2f}) "
        f"{work / t / threads / 1e6:7.0f} M upd/s/thread {work / cpu / 1e6:7.0f} M upd/CPU-s  "
        f"{c}{extra}"
    )


def _import_rtk():
    """Load ITK / RTK and instantiate the FDK filter once, outside the timing:
    ITK's lazy loading costs seconds (~14 s CPU here) on the first call."""
    if HAVE_RTK:
        geo = ConeGeometry(30.0, 90.0, "0.5mm")
        theta = np.linspace(0, 2 * np.pi, 4, endpoint=False)
        rtk_fdk(np.zeros((4, 8, 8), np.float32), theta, geo, (4, 4, 4), geo.voxel_size, 1)


def bench_cube(n, repeat=None, rtk_angles=None):
    """``rtk_angles``: time RTK on the first that many angles and scale its
    time linearly to all (on a machine too loaded to wait for it); its
    correlation is then not comparable and not printed."""
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
    _import_rtk()
    repeat = repeat or (3 if n <= 128 else 1)
    ra = min(rtk_angles or N_ANG, N_ANG)
    print(f"\n== FDK {n}^3 from {N_ANG} x {nd}^2 projections (median of {repeat})")
    for threads in (1, 2):
        t, cpu, rec = median_time(
            lambda threads=threads: reconstruct(
                p, theta, geometry=geo, shape=shape, filter="ramp", n_threads=threads
            ),
            repeat,
        )
        c, s = slab_corr(rec, truth)
        _row("scintomo", threads, t, cpu, work, c, s)
        if not HAVE_RTK:
            print("  RTK: itk-rtk not installed, not timed")
            continue
        tr, cpur, rr = median_time(
            lambda threads=threads: rtk_fdk(p[:ra], theta[:ra], geo, shape, vox, threads), repeat
        )
        if ra == N_ANG:
            cr, sr = slab_corr(rr, truth)
            _row("RTK", threads, tr, cpur, work, cr, sr)
        else:
            f = N_ANG / ra
            note = f"  (timed on {ra} of {N_ANG} angles: {tr:.1f} s wall, scaled x{f:g})"
            tr, cpur = tr * f, cpur * f
            _row("RTK", threads, tr, cpur, work, None, None, note)
        print(f"  RTK / scintomo, {threads} thr: wall {tr / t:.1f}x, CPU {cpur / cpu:.1f}x")


def bench_microscope(n_angles=720, rtk_angles=24, threads_list=(1, 2), n=2048, slab=(1536, 1600)):
    from scintomo.pipeline.geometry import slab_detector_rows
    from scintomo.simulate.cone import ellipsoid_cone_projections

    # A film microscope: 0.325 um pixels at the film (6.5 um camera pixels
    # behind a 20x objective), the object 20 mm from the source, the film
    # 100 mm: magnification 5, 65 nm voxels, a 0.13 mm field, +-0.8 degree fan.
    geo = ConeGeometry(20.0, 100.0, "0.325um")
    vox = geo.voxel_size
    shape = (n, n, n)
    k0, k1 = slab
    a0, a1 = slab_detector_rows(geo, n, n, shape, vox, k0, k1)
    theta = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    ell = shepp_logan_ellipsoids(0.8 * n / 2 * vox, value=1 / vox)
    cc, cr = geo.centers(n, n)
    sub = ConeGeometry(20.0, 100.0, "0.325um", center_column=cc, center_row=cr - a0)
    t0 = time.perf_counter()
    p = np.empty((n_angles, a1 - a0, n), np.float32)
    for a in range(n_angles):
        p[a] = ellipsoid_cone_projections(ell, [theta[a]], sub, (a1 - a0, n), supersample=1)[0]
    print(
        f"\n== FDK microscope: {n_angles} x {n}^2 projections into the {n} x {n} x {k1 - k0} slab "
        f"{k0}:{k1} of {n}^3; fed detector rows {a0}:{a1} ({a1 - a0} of {n}, the slab's cone; "
        f"{p.nbytes / 1e9:.2f} GB; made in {time.perf_counter() - t0:.0f} s)"
    )
    # The truth on the slab's three middle slices (the phantom moved down by their height).
    km = (k0 + k1) // 2
    zc = (km - (n - 1) / 2.0) * vox
    ell_t = np.array(ell, dtype=np.float64)
    ell_t[:, 6] -= zc
    truth = ellipsoids_volume(ell_t, (3, n, n), vox, supersample=1)
    work = n * n * (k1 - k0) * n_angles
    z_offset = k0 + (k1 - k0 - 1) / 2.0 - (n - 1) / 2.0
    from scintomo.recon._cone import reconstruct_cone

    for threads in threads_list:
        t, cpu, rec = median_time(
            lambda threads=threads: reconstruct_cone(
                p,
                theta,
                geo,
                shape=shape,
                filter="ramp",
                n_threads=threads,
                _rows=(a0, n),
                _z_range=(k0, k1),
            )[0],
            1,
        )
        c, s = slab_corr(rec[km - k0 - 1 : km - k0 + 2], truth, half=1)
        _row("scintomo", threads, t, cpu, work, c, s)
        del rec
    if not HAVE_RTK:
        print("  RTK: itk-rtk not installed, not timed")
        return
    _import_rtk()
    ra = min(rtk_angles, n_angles)
    scale = n_angles / ra
    for threads in threads_list[-1:]:
        tr, cpur, rr = median_time(
            lambda threads=threads: rtk_fdk(
                p[:ra],
                theta[:ra],
                geo,
                (k1 - k0, n, n),
                vox,
                threads,
                row0=a0,
                n_rows=n,
                z_offset=z_offset,
            ),
            1,
        )
        del rr
        _row(
            "RTK",
            threads,
            tr * scale,
            cpur * scale,
            work,
            None,
            None,
            f"  (timed on {ra} of {n_angles} angles: {tr:.1f} s wall, scaled x{scale:g})",
        )


# Bytes, flops and instructions per voxel update (one voxel, one angle) of the
# AVX2 z loop (rust/core/recon/fdk.rs), 8 voxels of a column at a time, 4 angles
# per load of their accumulators, about 1 detector row per voxel (m ~ 1):
#   z and the accumulator (load + store) once per 4 angles: 3 B; the 16-row
#   window of the blended column: 2 x 32 B per 8 voxels: 8 B; the blend of
#   the two detector columns, m rows per voxel: 2 reads + 1 write: 12 B.
#   All from L1/L2: 23 B.
#   flops: row r0 + z m (2), its fraction (1), the row interpolation (3),
#   weight and accumulate (2), the blend (3 m): 11.
#   instructions: ~33 per 8 updates in the z loop (the flops above plus the
#   clamps, conversions, window index, 4 permutes and 2 blends), ~4 per update.
# From memory: each (z, 16, 16) tile reads its footprint of every filtered
# projection once, about (16 sqrt 2 + 2) columns of m nz rows for 256 nz
# voxel updates: ~0.4 B per update.
FLOPS_PER_UPDATE = 11
L1_BYTES_PER_UPDATE = 23
INSTR_PER_UPDATE = 33 / 8
DRAM_BYTES_PER_UPDATE = 4 * (16 * math.sqrt(2) + 2) / 256


def _single_thread_peaks():
    """(copy GB/s, triad GB/s, sgemm GFLOP/s) on one thread, per CPU-second
    (best of 5), measured in a subprocess so that BLAS starts with one thread."""
    code = r"""
import time, numpy as np
n = 1 << 25  # 128 MB per float32 array: well past the caches
a = np.zeros(n, np.float32); b = np.ones(n, np.float32); c = np.full(n, 2.0, np.float32)
def best(f, k=5):
    # CPU time: on a shared machine the wall clock also counts other jobs.
    ts = []
    for _ in range(k):
        t = time.process_time(); f(); ts.append(time.process_time() - t)
    return min(ts)
tc = best(lambda: np.copyto(a, b))
# triad a = b + s c in two in-place passes: 5 array sweeps of 4 bytes.
tt = best(lambda: (np.multiply(c, 3.0, out=a), np.add(a, b, out=a)))
m = 2048
x = np.random.default_rng(0).random((m, m), dtype=np.float32); y = x.copy()
tg = best(lambda: x @ y, 3)
print(2 * 4 * n / tc / 1e9, 5 * 4 * n / tt / 1e9, 2 * m**3 / tg / 1e9)
"""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return tuple(float(v) for v in out.stdout.split())


def bench_roofline(n=128):
    copy_gbs, triad_gbs, gflops = _single_thread_peaks()
    nd = n * 3 // 2
    rng = np.random.default_rng(0)
    p = rng.random((N_ANG, nd, nd), dtype=np.float32)
    theta = np.linspace(0, 2 * np.pi, N_ANG, endpoint=False)
    geo = ConeGeometry(30.0, 90.0, f"{0.5 * 64 / nd}mm")
    _, cpu, _ = median_time(
        lambda: reconstruct(p, theta, geometry=geo, shape=(n,) * 3, filter="ramp", n_threads=1),
        3,
    )
    ups = n**3 * N_ANG / cpu
    print(f"\n== Roofline, one thread (FDK {n}^3 from {N_ANG} x {nd}^2, random data)")
    print(
        f"  memory: copy {copy_gbs:.1f} GB/s, triad {triad_gbs:.1f} GB/s (numpy, 128 MB arrays, "
        f"per CPU-second); "
        f"sgemm {gflops:.0f} GFLOP/s (BLAS, a practical FMA peak)"
    )
    print(
        f"  FDK: {ups / 1e6:.0f} M voxel updates per CPU-second (filtering included); per update "
        f"{FLOPS_PER_UPDATE} flops, {L1_BYTES_PER_UPDATE} B from L1/L2, "
        f"~{DRAM_BYTES_PER_UPDATE:.2f} B from memory"
    )
    print(
        f"  bounds: flops {gflops * 1e9 / FLOPS_PER_UPDATE / 1e6:.0f} M upd/s "
        f"(at {100 * ups * FLOPS_PER_UPDATE / (gflops * 1e9):.0f}%), memory "
        f"{triad_gbs * 1e9 / DRAM_BYTES_PER_UPDATE / 1e6:.0f} M upd/s "
        f"(at {100 * ups * DRAM_BYTES_PER_UPDATE / (triad_gbs * 1e9):.1f}%): neither binds. "
        f"The z loop's ~{INSTR_PER_UPDATE:.1f} instructions per update (clamps, conversions, "
        f"the window's permutes and blends) run at {ups * INSTR_PER_UPDATE / 1e9:.1f} G/s"
    )


@pytest.mark.parametrize("n", [128, 256])
def test_bench_fdk_vs_rtk(n):
    bench_cube(n)


def test_bench_fdk_microscope():
    bench_microscope()


def test_bench_fdk_roofline():
    bench_roofline()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="128^3 and the roofline only")
    ap.add_argument("--angles", type=int, default=720, help="microscope angles (720)")
    ap.add_argument("--rtk-angles", type=int, default=24, help="microscope angles RTK runs")
    ap.add_argument(
        "--rtk-cube-angles", type=int, default=None, help="256^3 angles RTK runs (all 360)"
    )
    args = ap.parse_args(argv)
    bench_cube(128)
    bench_roofline()
    if not args.quick:
        bench_cube(256, rtk_angles=args.rtk_cube_angles)
        bench_microscope(args.angles, args.rtk_angles)


if __name__ == "__main__":
    main()
