"""End-to-end pipeline benchmark: a synthetic uint16 DXchange scan, out of core.

The issue's size is 1500 angles x 512 rows x 2048 columns (3.1 GB). On the
2-core development machine that is ~9 minutes per run (~1 s per 2048^2 slice), so by default the
bench keeps 1500 x 2048 per projection and scales the rows down
(``SCINTOMO_BENCH_ROWS``, default 24); slices/s and the per-block memory do
not depend on the number of rows. Set ``SCINTOMO_BENCH_ROWS=512`` for the
full size.

Printed (run with ``pytest benches/test_bench_pipeline.py -s``):
- throughput (slices/s) of the pipeline, single process (read / compute /
  write overlapped in threads), against the same steps run one after the
  other in memory on the whole scan (the reference) -> the ratio;
- peak memory (RSS above the baseline) against the budget, for a scan whose
  raw data alone is larger than the budget;
- 1 vs 2 Dask worker processes (LocalCluster) on the same scan;
- issue 19: ``scintomo recon --reconstruction-type full`` (the CLI, blocks of
  8 rows, 1 and 2 threads) against the gridrec kernel alone on one 8-row
  block of the same scan in memory, same run: the pipeline's slices/s as a
  fraction of the kernel's (target >= 90 %), the CLI's timeline (busy time
  of read, flat-field/-log/stripes, reconstruct, write) and the peak memory
  against one block's estimate. The issue's size:
  ``SCINTOMO_BENCH_ROWS=256 python -m pytest benches/test_bench_pipeline.py
  -s -k full_cli`` (a 1.6 GB scan under the temporary folder, deleted at
  the end).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import psutil
import pytest

from scintomo import flatfield, io, pipeline

recon = pytest.importorskip(
    "scintomo.recon", reason="scintomo.recon (issue 5) is not in this build"
)

N_ANGLES = int(os.environ.get("SCINTOMO_BENCH_ANGLES", 1500))
N_ROWS = int(os.environ.get("SCINTOMO_BENCH_ROWS", 24))
N_COLS = int(os.environ.get("SCINTOMO_BENCH_COLS", 2048))
BUDGET_MB = float(os.environ.get("SCINTOMO_BENCH_BUDGET_MB", 0)) or None


def _make_scan(path, n_angles=None, n_rows=None, n_cols=None):
    """Discs in a cylinder, Beer-Lambert, Poisson-like noise; written projection block by block."""
    N_ANGLES, N_ROWS, N_COLS = (  # noqa: N806 - the module's sizes unless given
        n_angles or globals()["N_ANGLES"],
        n_rows or globals()["N_ROWS"],
        n_cols or globals()["N_COLS"],
    )
    theta = np.linspace(0, np.pi, N_ANGLES, endpoint=False)
    s = np.arange(N_COLS) - (N_COLS - 1) / 2
    sino = np.zeros((N_ANGLES, N_COLS))
    for x0, y0, r, mu in (
        (0, 0, 0.45 * N_COLS, 0.002),
        (0.15 * N_COLS, 0.1 * N_COLS, 0.08 * N_COLS, 0.006),
        (-0.2 * N_COLS, -0.05 * N_COLS, 0.05 * N_COLS, -0.0015),
    ):
        d = s[None, :] - (x0 * np.cos(theta) + y0 * np.sin(theta))[:, None]
        sino += 2 * mu * np.sqrt(np.clip(r**2 - d**2, 0, None))
    rng = np.random.default_rng(0)
    flat = 20000.0
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "exchange/data", (N_ANGLES, N_ROWS, N_COLS), np.uint16, chunks=(1, N_ROWS, N_COLS)
        )
        for a in range(0, N_ANGLES, 100):
            b = min(a + 100, N_ANGLES)
            t = flat * np.exp(-sino[a:b, None, :]) * np.ones((1, N_ROWS, 1))
            ds[a:b] = np.clip(t + rng.normal(0, 1, t.shape) * np.sqrt(t) + 100, 0, 65535).astype(
                np.uint16
            )
        f["exchange/data_white"] = (flat + 100 + rng.normal(0, 140, (10, N_ROWS, N_COLS))).astype(
            np.uint16
        )
        f["exchange/data_dark"] = np.full((5, N_ROWS, N_COLS), 100, np.uint16)
        f["exchange/theta"] = np.rad2deg(theta)
    return path


class PeakRSS:
    """Peak resident memory of this process (and given pids) above the baseline, sampled every
    10 ms."""

    def __init__(self, pids=()):
        self.procs = [psutil.Process()] + [psutil.Process(p) for p in pids]

    def _rss(self):
        return sum(p.memory_info().rss for p in self.procs)

    def __enter__(self):
        self.base = self._rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def _loop(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def mb(self):
        return (self.peak - self.base) / 1e6


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench") / "raw"
    d.mkdir()
    t0 = time.perf_counter()
    p = _make_scan(d / "scan.h5")
    print(
        f"\nsynthetic scan {N_ANGLES} x {N_ROWS} x {N_COLS} uint16 ({p.stat().st_size / 1e6:.0f} "
        "MB) "
        f"written in {time.perf_counter() - t0:.1f} s"
    )
    yield p
    p.unlink()  # up to a few GB: not left for pytest's kept temporary folders


def _cfg(path, out, **kw):
    cfg = pipeline.PipelineConfig()
    cfg.input.file = str(path)
    cfg.output.folder = str(out)
    cfg.output.format = kw.get("fmt", "zarr")
    cfg.output.nsino_per_chunk = kw.get("nsino", 8)
    cfg.output.memory_budget_mb = kw.get("budget", 0.0)
    cfg.center.value = (N_COLS - 1) / 2
    cfg.run.progress = False
    cfg.run.n_threads = kw.get("threads", 0)
    return cfg


def test_bench_pipeline_vs_in_memory_reference(scan, tmp_path):
    cfg = _cfg(scan, tmp_path / "a", nsino=8)
    # reference: the same steps one after the other, whole scan in memory
    t0 = time.perf_counter()
    with io.read(scan) as s:
        proj, flats, darks, theta = s.projections[()], s.flats[()], s.darks[()], s.theta
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = flatfield.correct(proj, flats, darks, log=True)
    vol = recon.reconstruct(
        data,
        theta,
        center=cfg.center.value,
        algorithm=cfg.recon.algorithm,
        filter=cfg.recon.filter,
        backend=cfg.recon.backend,
    )
    t_comp = time.perf_counter() - t0
    t0 = time.perf_counter()
    io.write_zarr(tmp_path / "ref.zarr", vol, chunk_rows=8)
    t_write = time.perf_counter() - t0
    t_ref = t_read + t_comp + t_write
    del proj, data
    with PeakRSS() as mem:
        res = pipeline.run(cfg)
    import zarr

    got = zarr.open_array(res.output, mode="r")[:]
    err = float(np.max(np.abs(got - vol)) / np.max(np.abs(vol)))
    print(
        f"\npipeline, {N_ROWS} slices of {N_COLS}^2 from {N_ANGLES} angles, blocks of 8 rows: "
        f"{res.seconds:.1f} s = {res.slices_per_second:.2f} slices/s (read "
        f"{res.read_seconds:.1f} s, "
        f"compute {res.compute_seconds:.1f} s, write {res.write_seconds:.1f} s overlapped); peak "
        f"+{mem.mb:.0f} MB"
    )
    print(
        f"reference in memory (read {t_read:.1f} + compute {t_comp:.1f} + write {t_write:.1f} s): "
        f"{t_ref:.1f} s = {N_ROWS / t_ref:.2f} slices/s; pipeline / reference time ratio "
        f"{res.seconds / t_ref:.2f}; max relative difference {err:.1e}"
    )
    assert err < 1e-4


def test_bench_memory_budget_smaller_than_the_scan(tmp_path):
    """A scan whose raw data alone is larger than the budget, run under that budget.

    The budget must hold the reconstruction's work space (one (2W)^2 Fourier grid per
    thread), so for a budget below the scan size on this 2-core machine the scan is
    1500 x 128 x 1024 (393 MB raw, 786 MB as float32), one kernel thread, blocks of 2 rows."""
    n_a, n_r, n_c = 1500, int(os.environ.get("SCINTOMO_BENCH_BUDGET_ROWS", 128)), 1024
    (tmp_path / "raw").mkdir()
    p = _make_scan(tmp_path / "raw" / "tall.h5", n_a, n_r, n_c)
    raw_mb = n_a * n_r * n_c * 2 / 1e6
    budget = BUDGET_MB or 1.02 * pipeline.estimate_block_bytes(n_a, n_c, 2, n_threads=1) / 1e6
    cfg = _cfg(p, tmp_path / "b", budget=budget, threads=1)
    cfg.center.value = (n_c - 1) / 2
    cfg_path = cfg.write(tmp_path / "budget.toml")
    # a fresh process, so that no memory kept by an earlier test hides or inflates the peak:
    # its peak RSS (VmHWM, reset at exec, unlike getrusage's ru_maxrss which keeps the
    # parent's) minus its RSS once everything is imported
    script = (
        "import json, sys, psutil; from scintomo import pipeline, recon, io; "
        "base = psutil.Process().memory_info().rss; "
        "res = pipeline.run(pipeline.PipelineConfig.from_toml(sys.argv[1])); "
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]; "
        "peak = int(hwm.split()[1]) * 1024; "
        "print(json.dumps({'mb': (peak - base) / 1e6, 'nsino': res.nsino_per_chunk, "
        "'rate': res.slices_per_second}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(cfg_path)], capture_output=True, text=True, check=True
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])

    class _Res:
        nsino_per_chunk, slices_per_second = r["nsino"], r["rate"]

    class _Mem:
        mb = r["mb"]

    res, mem = _Res, _Mem
    print(
        f"\nbudget {budget:.0f} MB for a scan of {n_a} x {n_r} x {n_c} = {raw_mb:.0f} MB raw "
        f"({2 * raw_mb:.0f} MB as float32): blocks of {res.nsino_per_chunk} rows, 1 thread, "
        f"peak RSS +{mem.mb:.0f} MB above baseline ({100 * mem.mb / budget:.0f} % of the budget), "
        f"{res.slices_per_second:.2f} slices/s"
    )
    assert raw_mb > budget and mem.mb < budget


def test_bench_dask_1_vs_2_workers(scan, tmp_path):
    rates = {}
    for n in (1, 2):
        client = pipeline.make_client(f"local:{n}")
        try:
            pids = list(client.run(os.getpid).values())
            cfg = _cfg(
                scan, tmp_path / f"w{n}", nsino=4, threads=max(1, (os.cpu_count() or 1) // n)
            )
            with PeakRSS(pids) as mem:
                res = pipeline.run(cfg, client=client)
            rates[n] = res.slices_per_second
            print(
                f"\nDask LocalCluster {n} worker(s) x {cfg.run.n_threads} thread(s): "
                f"{res.seconds:.1f} s, "
                f"{res.slices_per_second:.2f} slices/s, peak RSS (client + workers) "
                f"+{mem.mb:.0f} MB"
            )
        finally:
            cluster = client.cluster
            client.close()
            cluster.close()
    print(f"scaling 1 -> 2 workers: x{rates[2] / rates[1]:.2f} (on {os.cpu_count()} cores)")


def test_bench_full_cli_vs_kernel(scan, tmp_path):
    """Issue 19: the CLI's full reconstruction against the kernel alone."""
    import contextlib
    import io as _io

    from scintomo.cli import main

    with io.read(scan) as s:
        block = flatfield.correct(s.projections[:, :8], s.flats[:, :8], s.darks[:, :8], log=True)
        theta = s.theta
    c = (N_COLS - 1) / 2
    for nt in (1, 2):
        recon.reconstruct(block, theta, center=c, n_threads=nt)  # warm-up
        ts = []
        for _ in range(2):
            t0 = time.perf_counter()
            recon.reconstruct(block, theta, center=c, n_threads=nt)
            ts.append(time.perf_counter() - t0)
        kernel = block.shape[1] / float(np.median(ts))
        out = tmp_path / f"out{nt}"
        argv = [
            "recon", "--file-name", str(scan), "--rotation-axis", str(c),
            "--reconstruction-type", "full", "--nsino-per-chunk", "8",
            "--threads", str(nt), "--output-folder", str(out), "--no-progress",
        ]  # fmt: skip
        buf = _io.StringIO()
        with PeakRSS() as mem, contextlib.redirect_stdout(buf):
            t0 = time.perf_counter()
            assert main(argv) == 0
            wall = time.perf_counter() - t0
        text = buf.getvalue()
        line = next(ln for ln in text.splitlines() if ln.startswith("timeline"))
        rate = N_ROWS / wall
        est = pipeline.estimate_block_bytes(N_ANGLES, N_COLS, 8, n_threads=nt) / 1e6
        print(
            f"\nscintomo recon full, {N_ANGLES} x {N_ROWS} x {N_COLS}, blocks of 8, {nt} thread(s):"
            f" {wall:.1f} s = {rate:.2f} slices/s; kernel alone on one block, same run:"
            f" {kernel:.2f} slices/s -> x{rate / kernel:.2f} of the kernel (target >= 0.90);"
            f" peak RSS +{mem.mb:.0f} MB (one block's estimate {est:.0f} MB)\n  {line}"
        )
        import shutil

        shutil.rmtree(out, ignore_errors=True)
