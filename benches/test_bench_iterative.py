"""SIRT per-iteration time against ASTRA's CPU SIRT (and TomoPy's ``sirt``)
in the same run.

Run: ``python -m pytest benches/test_bench_iterative.py -s``. A 512^2 slice
(Shepp-Logan, analytic projections) from 360 angles over 180 degrees, 1 and
2 threads. The per-iteration time is (t(4 iterations) - t(1)) / 3 for every
code, so set-up (row and column sums, first projection) is left out; each
is the median of 3 runs, wall and process CPU time (the machine may be shared). ASTRA (pip ``astra-toolbox``, CPU, ``linear``
projector) is single-threaded; TomoPy's ``sirt`` runs in the interpreter
given by ``SCINTOMO_TOMOPY_PYTHON`` (default /tmp/venv-tomopy/bin/python)
with ``ncore`` = threads, timed inside that process. Missing references are
skipped with a message. Peak memory (max RSS of a child process running 5
iterations) is printed for ours.

``SCINTOMO_BENCH_LARGE=1`` adds 2048^2 from 1501 angles (ours only, one
iteration's time from t(3) - t(1), 2 threads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

from scintomo import recon, simulate

TOMOPY_PY = os.environ.get("SCINTOMO_TOMOPY_PYTHON", "/tmp/venv-tomopy/bin/python")


def _sino(n, n_ang):
    ell = simulate.shepp_logan_ellipses(n, scale=0.02 * 128 / n)
    th = np.linspace(0, np.pi, n_ang, endpoint=False)
    return th, simulate.ellipse_projections(ell, th, n, supersample=1).astype(np.float32)


def _per_iteration(run, k1=1, k2=4, repeat=3):
    """Medians over `repeat` of (t(k2) - t(k1)) / (k2 - k1): wall seconds and
    process CPU seconds (all threads of this process)."""
    wall, cpu = [], []
    for _ in range(repeat):
        c, t = time.process_time(), time.perf_counter()
        run(k1)
        a, ac = time.perf_counter() - t, time.process_time() - c
        c, t = time.process_time(), time.perf_counter()
        run(k2)
        b, bc = time.perf_counter() - t, time.process_time() - c
        wall.append((b - a) / (k2 - k1))
        cpu.append((bc - ac) / (k2 - k1))
    return float(np.median(wall)), float(np.median(cpu))


def _ours(sino, th, threads):
    def run(k):
        recon.iterative(
            sino, th, algorithm="sirt", iterations=k, n_threads=threads, progress_bar=False
        )

    return run


def _astra(sino, th):
    import astra

    n = sino.shape[1]
    vg = astra.create_vol_geom(n, n)
    pg = astra.create_proj_geom("parallel", 1.0, n, th)
    pid = astra.create_projector("linear", pg, vg)
    sid = astra.data2d.create("-sino", pg, sino)

    def run(k):
        rid = astra.data2d.create("-vol", vg, 0)
        cfg = astra.astra_dict("SIRT")
        cfg.update(ReconstructionDataId=rid, ProjectionDataId=sid, ProjectorId=pid)
        aid = astra.algorithm.create(cfg)
        astra.algorithm.run(aid, k)
        astra.algorithm.delete(aid)
        astra.data2d.delete(rid)

    return run


def _tomopy(sino, th, threads):
    if not os.path.exists(TOMOPY_PY):
        return None
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "s.npy"), sino[:, None, :])
        np.save(os.path.join(d, "t.npy"), th)
        code = textwrap.dedent(f"""
            import json, time, numpy as np, tomopy
            s = np.load("{d}/s.npy"); th = np.load("{d}/t.npy")
            def run(k):
                tomopy.recon(s, th, algorithm="sirt", num_iter=k, ncore={threads})
            out = []
            for _ in range(3):
                t = time.perf_counter(); run(1); a = time.perf_counter() - t
                t = time.perf_counter(); run(4); b = time.perf_counter() - t
                out.append((b - a) / 3)
            print(json.dumps(float(np.median(out))))
        """)
        env = dict(
            os.environ, LD_LIBRARY_PATH=os.path.join(os.path.dirname(TOMOPY_PY), "..", "lib")
        )
        p = subprocess.run([TOMOPY_PY, "-c", code], capture_output=True, text=True, env=env)
        if p.returncode != 0:
            print("  TomoPy failed:", p.stderr.strip().splitlines()[-1:])
            return None
        return json.loads(p.stdout.strip().splitlines()[-1])


def _peak_rss_mib(n, n_ang, threads):
    code = textwrap.dedent(f"""
        import resource, numpy as np
        from scintomo import recon
        th = np.linspace(0, np.pi, {n_ang}, endpoint=False)
        s = np.ones(({n_ang}, {n}), np.float32)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        recon.iterative(s, th, algorithm="sirt", iterations=5, n_threads={threads},
                        progress_bar=False)
        print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    base, peak = (int(v) for v in p.stdout.split())
    return base / 1024, peak / 1024


@pytest.mark.parametrize("threads", [1, 2])
def test_sirt_512_from_360(threads):
    n, n_ang = 512, 360
    th, sino = _sino(n, n_ang)
    ours, ours_cpu = _per_iteration(_ours(sino, th, threads))
    print(f"\n== SIRT per iteration, {n}^2 from {n_ang} angles, {threads} thread(s)")
    print(f"  scintomo        {ours * 1e3:9.1f} ms wall, {ours_cpu * 1e3:9.1f} ms CPU")
    try:
        import astra  # noqa: F401

        ast, ast_cpu = _per_iteration(_astra(sino, th))
        print(
            f"  ASTRA CPU       {ast * 1e3:9.1f} ms wall, {ast_cpu * 1e3:9.1f} ms CPU (1 thread); "
            f"ratio ASTRA/ours x{ast / ours:.1f} wall, x{ast_cpu / ours_cpu:.1f} CPU"
        )
    except ImportError:
        print("  ASTRA not installed: skipped")
    tp = _tomopy(sino, th, threads)
    if tp is not None:
        print(f"  TomoPy sirt     {tp * 1e3:9.1f} ms   ratio TomoPy/ours x{tp / ours:.1f}")
    else:
        print(f"  TomoPy not found at {TOMOPY_PY}: skipped")
    base, peak = _peak_rss_mib(n, n_ang, threads)
    print(f"  scintomo peak RSS {peak:.0f} MiB (interpreter + numpy before: {base:.0f} MiB)")


@pytest.mark.skipif(not os.environ.get("SCINTOMO_BENCH_LARGE"), reason="SCINTOMO_BENCH_LARGE=1")
def test_sirt_2048_from_1501():
    n, n_ang = 2048, 1501
    th, sino = _sino(n, n_ang)
    ours, _ = _per_iteration(_ours(sino, th, 2), k1=1, k2=3, repeat=1)
    base, peak = _peak_rss_mib(n, n_ang, 2)
    print(
        f"\n== SIRT per iteration, {n}^2 from {n_ang} angles, 2 threads: {ours:.2f} s "
        f"(target < 1 s); peak RSS {peak:.0f} MiB"
    )
