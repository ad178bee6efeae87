"""Planning a run: blocks of sinogram rows, the halo each block reads, and the
block size that keeps one process within a memory budget."""

from __future__ import annotations

import os

import numpy as np

from ..exceptions import ParameterError
from .config import PipelineConfig

__all__ = [
    "RUN_OVERHEAD_BYTES",
    "block_ranges",
    "estimate_block_bytes",
    "halo_rows",
    "nsino_for_budget",
]


def block_ranges(start: int, stop: int, nsino: int) -> list[tuple[int, int]]:
    """Rows ``start:stop`` cut into blocks of ``nsino`` rows (the last may be shorter)."""
    if nsino < 1:
        raise ParameterError(f"nsino_per_chunk must be >= 1, got {nsino}")
    return [(r, min(r + nsino, stop)) for r in range(start, stop, nsino)]


def halo_rows(cfg: PipelineConfig, psf=None) -> int:
    """Rows read beyond each side of a block so that 2-D filters see their neighbours."""
    h = 0
    if cfg.zinger.enabled:
        h = max(h, cfg.zinger.size // 2)
    if cfg.deconv.psf:
        if cfg.deconv.halo_rows >= 0:
            h = max(h, cfg.deconv.halo_rows)
        else:
            k = _psf_kernel_shape(psf)
            # Richardson-Lucy spreads information by the PSF radius per iteration; 2 radii
            # (at least 8 rows) keeps the block edges within float32 noise in practice.
            h = max(h, 8, 2 * (k[0] // 2 + 1) if k else 16)
    if cfg.phase.method:
        h = max(h, cfg.phase.halo_rows)
    if cfg.recon.psf:
        # The model's PSF couples slices: a block is reconstructed with this many rows
        # of neighbours each side (2 PSF radii, at least 8) and cropped.
        from .compute import _load_psf

        k = _load_psf(cfg.recon.psf).array.shape
        h = max(h, 8, 2 * (k[0] // 2 + 1))
    if cfg.distortion.model:
        # the undistorted rows of a block come from rows up to the largest vertical shift
        # away; the filters above then need their halo of undistorted rows
        from .compute import distortion_model

        h += int(np.ceil(distortion_model(cfg).max_row_shift())) + 2
    if cfg.alignment.shifts:
        from .compute import alignment_shifts

        h += int(np.ceil(np.abs(alignment_shifts(cfg)[:, 0]).max(initial=0.0))) + 1
    return h


def _psf_kernel_shape(psf):
    for name in ("array", "kernel", "image", "data", "values"):
        a = getattr(psf, name, None)
        if a is not None and np.ndim(a) == 2:
            return np.shape(a)
    if psf is not None and np.ndim(psf) == 2:
        return np.shape(psf)
    return None


#: What a run adds whatever its block size: libraries loaded on first use (zarr, the
#: reconstruction's plans), thread stacks, allocator arenas. Measured ~100 MB in a fresh
#: process (peak RSS of a 1-row run minus the estimate of its blocks).
RUN_OVERHEAD_BYTES = 100_000_000


def estimate_block_bytes(
    n_angles: int,
    width: int,
    nsino: int,
    *,
    raw_itemsize: int = 2,
    halo: int = 0,
    n_threads: int | None = None,
) -> int:
    """Bytes one process holds at its peak with blocks of ``nsino`` rows.

    Counts the blocks in flight (one being read, one computed, one written):
    raw data x3, float32 working copies x4 (ratio, -log, sinogram, padded
    sinogram), the slices x3; and the reconstruction's own work space, one
    slice per thread at once: a (2W)^2 complex64 Fourier grid and as much
    scratch (gridrec; measured 150-220 MB per 2048^2 slice); and
    :data:`RUN_OVERHEAD_BYTES`. Measured peaks (fresh process, 1500 angles) stay
    at 60-90 % of it.
    """
    rows_in = nsino + 2 * halo
    raw = n_angles * width * rows_in * raw_itemsize
    work = n_angles * width * rows_in * 4
    vol = width * width * nsino * 4
    threads = n_threads or os.cpu_count() or 1
    grid = min(nsino, threads) * 2 * 8 * (2 * width) ** 2
    return 3 * raw + 4 * work + 3 * vol + grid + RUN_OVERHEAD_BYTES


def nsino_for_budget(
    budget_mb: float,
    n_angles: int,
    width: int,
    *,
    raw_itemsize: int = 2,
    halo: int = 0,
    n_threads: int | None = None,
) -> int:
    """Largest block size whose :func:`estimate_block_bytes` stays within ``budget_mb``."""
    budget = budget_mb * 1e6
    kw = {"raw_itemsize": raw_itemsize, "halo": halo, "n_threads": n_threads}
    if estimate_block_bytes(n_angles, width, 1, **kw) > budget:
        need = estimate_block_bytes(n_angles, width, 1, **kw) / 1e6
        raise ParameterError(
            f"a memory budget of {budget_mb:g} MB cannot hold one sinogram row of this scan "
            f"({n_angles} angles x {width} columns needs about {need:.0f} MB)"
        )
    lo, hi = 1, 2
    while estimate_block_bytes(n_angles, width, hi, **kw) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # the estimate grows with nsino: bisect
        mid = (lo + hi) // 2
        if estimate_block_bytes(n_angles, width, mid, **kw) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def _cpus() -> int:
    return os.cpu_count() or 1


def _choose_nsino(cfg, scan, halo, n_threads=None) -> int:
    n, _, w = scan.shape
    if cfg.geometry.half_acquisition:
        # the stitched sinogram and its slices are up to twice as wide (slices and the
        # Fourier grid 4x): sized as a scan of 2 w columns (the raw part over-counted 2x)
        w = 2 * w
    if cfg.output.memory_budget_mb > 0:
        return nsino_for_budget(
            cfg.output.memory_budget_mb,
            n,
            w,
            raw_itemsize=np.dtype(scan.projections.dtype).itemsize,
            halo=halo,
            n_threads=n_threads,
        )
    return cfg.output.nsino_per_chunk
