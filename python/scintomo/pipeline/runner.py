"""Out-of-core reconstruction: the scan in blocks of sinogram (detector) rows.

For each block of rows ``r0:r1`` (plus ``halo`` rows each side where a 2-D
filter needs them: zinger median, PSF deconvolution, phase retrieval):

    read rows      projections, flats, darks of those rows only (lazy readers)
    zingers        optional median-based outlier removal (TomoPy remove_outlier)
    flat-field     (P - D) / (F - D), flats before/after interpolated (scintomo.flatfield)
    deconvolution  optional, the film's PSF (scintomo.deconv)
    -log or phase  -ln, or Paganin phase retrieval (scintomo.recon.paganin)
    stripes        optional ring removal on the sinograms (scintomo.recon.remove_stripes)
    reconstruct    scintomo.recon.reconstruct -> (rows, y, x) slices
    write          one block of the volume (scintomo.io writers), atomically

Memory is bounded by the block size, not the scan size: one reader thread
reads block k+1 while block k is computed and block k-1 is written (queues
of one block each). A block already on disk completely is skipped, so an
interrupted run resumes where it stopped. With a Dask client the blocks go
to the workers; each opens the scan itself (h5py handles do not pickle).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import flatfield
from ..exceptions import FileFormatError, ParameterError
from ..io import Scan, read, volume_writer
from .config import PipelineConfig

log = logging.getLogger("scintomo.pipeline")

__all__ = [
    "RawBlock",
    "RunResult",
    "TryResult",
    "block_ranges",
    "compute_block",
    "estimate_block_bytes",
    "halo_rows",
    "nsino_for_budget",
    "open_scan",
    "output_paths",
    "preprocess",
    "read_block",
    "remove_zingers",
    "run",
    "try_centers",
]


# ----------------------------------------------------------------- planning


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


# ------------------------------------------------------------------ steps


def remove_zingers(stack, *, threshold_counts: float, size: int = 3) -> np.ndarray:
    """Replace pixels brighter than their ``size`` x ``size`` median by more than
    ``threshold_counts`` with that median, frame by frame (TomoPy ``remove_outlier``).

    Parameters
    ----------
    stack : (N, H, W) array_like
        Raw frames, counts.

    Returns
    -------
    (N, H, W) ndarray, float32 (the input is not modified)
    """
    from scipy import ndimage

    a = np.asarray(stack, dtype=np.float32)
    med = ndimage.median_filter(a, size=(1, size, size), mode="reflect")
    return np.where(a - med > threshold_counts, med, a).astype(np.float32, copy=False)


_PSF_CACHE: dict = {}


def _load_psf(path: str):
    if path not in _PSF_CACHE:
        from .. import psf as psf_mod  # issue 4

        _PSF_CACHE[path] = psf_mod.load(path)
    return _PSF_CACHE[path]


def _cpus() -> int:
    return os.cpu_count() or 1


def _n_threads(cfg: PipelineConfig):
    return cfg.run.n_threads or None


@dataclass
class RawBlock:
    """What :func:`read_block` read for rows ``r0:r1`` (with ``a0:a1`` the rows read, halo
    included)."""

    r0: int
    r1: int
    a0: int
    a1: int
    projections: np.ndarray
    flats: object
    flat_positions: list | None
    darks: np.ndarray | None

    @property
    def nbytes(self) -> int:
        fl = self.flats if isinstance(self.flats, list) else [self.flats]
        return int(
            self.projections.nbytes
            + sum(np.asarray(f).nbytes for f in fl if f is not None)
            + (0 if self.darks is None else self.darks.nbytes)
        )


def read_block(scan: Scan, r0: int, r1: int, *, halo: int = 0) -> RawBlock:
    """Read rows ``r0 - halo : r1 + halo`` (clipped to the detector) of projections, flats,
    darks."""
    h = scan.shape[1]
    a0, a1 = max(0, r0 - halo), min(h, r1 + halo)
    rows = slice(a0, a1)
    try:
        proj = np.asarray(scan.projections[:, rows, :])
        flats, positions = scan.flats_for_rows(rows)
        darks = None if scan.darks is None else np.asarray(scan.darks[:, rows, :])
    except OSError as e:  # h5py reports a truncated file only when the data is read
        raise FileFormatError(
            f"{scan.path}: cannot read detector rows {a0}:{a1}; truncated or damaged file? ({e})"
        ) from None
    if flats is None:
        raise ParameterError(
            f"{scan.path}: the scan has no flats; flat-field correction needs them"
        )
    return RawBlock(r0, r1, a0, a1, proj, flats, positions, darks)


def _deconvolve_intensities(proj, flats, darks, cfg: PipelineConfig, n_threads):
    """(P - D, [F_i - D]) deconvolved by the film's PSF, float32; flats reduced per series."""
    from .. import deconv  # issue 4

    psf = _load_psf(cfg.deconv.psf)
    method = getattr(deconv, cfg.deconv.method)
    nt = n_threads
    dark = None
    if darks is not None:
        dark = flatfield.reduce_frames(
            darks, method=cfg.flatfield.reduce, n_threads=nt, what="darks"
        )
    series = flats if isinstance(flats, list) else [flats]
    reduced = [
        flatfield.reduce_frames(f, method=cfg.flatfield.reduce, n_threads=nt, what="flats")
        for f in series
    ]
    p = np.asarray(proj, dtype=np.float32)
    if dark is not None:
        p = p - dark
        reduced = [f - dark for f in reduced]
    opts = dict(cfg.deconv.options)
    p = method(p, psf, n_threads=nt, **opts)
    fl = [method(f, psf, n_threads=nt, **opts) for f in reduced]
    return p, (fl if isinstance(flats, list) else fl[0])


def preprocess(raw: RawBlock, cfg: PipelineConfig, *, n_threads=None) -> np.ndarray:
    """Raw rows -> -log (or phase-retrieved) projections of rows ``r0:r1``, (angle, row, column)
    float32."""
    import warnings

    proj, flats = raw.projections, raw.flats
    if cfg.zinger.enabled:
        z = {"threshold_counts": cfg.zinger.threshold_counts, "size": cfg.zinger.size}
        proj = remove_zingers(proj, **z)
        flats = (
            [remove_zingers(f, **z) for f in flats]
            if isinstance(flats, list)
            else remove_zingers(flats, **z)
        )
    darks = raw.darks
    positions = raw.flat_positions
    if cfg.deconv.psf:
        # The film blurs the light reaching the camera, i.e. P - D and F - D, not their
        # ratio: deconvolve those, then divide (scintomo.deconv's module notes).
        proj, flats = _deconvolve_intensities(proj, flats, darks, cfg, n_threads)
        darks = None
    need_ratio = bool(cfg.phase.method)
    with warnings.catch_warnings():
        # bad-pixel counts are per block; the run does not repeat them block after block
        warnings.simplefilter("ignore")
        data = flatfield.correct(
            proj,
            flats,
            darks,
            flat_positions=positions,
            reduce=cfg.flatfield.reduce,
            bad_flat=cfg.flatfield.bad_flat,
            clip=(cfg.flatfield.clip_low, None) if not need_ratio else None,
            log=not need_ratio,
            n_threads=n_threads,
        )
    if cfg.phase.method == "paganin":
        from .. import recon  # issue 5

        data = recon.paganin(data, **cfg.phase.options)
    data = data[:, raw.r0 - raw.a0 : raw.r1 - raw.a0, :]
    if cfg.stripes.method:
        from .. import recon  # issue 5

        opts = {"n_threads": n_threads, **cfg.stripes.options}
        data = recon.remove_stripes(data, method=cfg.stripes.method, **opts)
    return np.ascontiguousarray(data, dtype=np.float32)


def _reconstruct(data, theta, center, cfg: PipelineConfig, recon_fn, n_threads):
    if recon_fn is None:
        try:
            from ..recon import reconstruct as recon_fn
        except ImportError as e:
            raise ParameterError(
                "reconstruction needs scintomo.recon (not in this build of scintomo): " + str(e)
            ) from None
    vol = recon_fn(
        data,
        theta,
        center=center,
        algorithm=cfg.recon.algorithm,
        filter=cfg.recon.filter,
        backend=cfg.recon.backend,
        n_threads=n_threads,
    )
    return np.asarray(vol, dtype=np.float32)


def compute_block(
    raw: RawBlock, theta, center, cfg: PipelineConfig, *, recon_fn=None, n_threads=None
):
    """Raw rows -> reconstructed slices (rows, y, x) float32."""
    return _reconstruct(
        preprocess(raw, cfg, n_threads=n_threads), theta, center, cfg, recon_fn, n_threads
    )


# ------------------------------------------------------------ output naming


def output_paths(cfg: PipelineConfig, scan_path) -> dict:
    """tomopy-cli's layout: ``<scan folder>_rec/<name>_rec`` (full) and
    ``<scan folder>_rec/try_center/<name>/`` (try)."""
    p = Path(scan_path).resolve()
    name = p.stem if p.is_file() else p.name
    base = Path(cfg.output.folder) if cfg.output.folder else Path(str(p.parent) + "_rec")
    suffix = {"tiff": "", "h5": ".h5", "zarr": ".zarr"}[cfg.output.format]
    return {
        "folder": base,
        "full": base / f"{name}_rec{suffix}",
        "try": base / "try_center" / name,
        "name": name,
        "log": base / f"{name}_rec.log",
    }


def open_scan(cfg: PipelineConfig, path=None) -> Scan:
    fmt = None if cfg.input.format == "auto" else cfg.input.format
    return read(path or cfg.input.file, format=fmt, **cfg.input.reader_options())


# -------------------------------------------------------------------- results


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` did. Times in seconds."""

    output: str
    center: float
    shape: tuple
    n_blocks: int
    n_skipped: int
    nsino_per_chunk: int
    seconds: float
    read_seconds: float
    compute_seconds: float
    write_seconds: float
    n_workers: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def slices_per_second(self) -> float:
        done = self.shape[0] * (self.n_blocks - self.n_skipped) / max(self.n_blocks, 1)
        return done / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict:
        d = asdict(self)
        d["slices_per_second"] = self.slices_per_second
        return d


@dataclass(frozen=True)
class TryResult:
    """Slices written by :func:`try_centers`: one TIFF per candidate centre (pixels)."""

    folder: str
    row: int
    centers: tuple
    files: tuple
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


# -------------------------------------------------------------------- centre


def _find_center(scan: Scan, cfg: PipelineConfig, halo: int, n_threads) -> float:
    row = min(scan.shape[1] - 1, int(round(cfg.center.row * (scan.shape[1] - 1))))
    r0, r1 = max(0, row - 4), min(scan.shape[1], row + 4)
    data = preprocess(read_block(scan, r0, r1, halo=halo), cfg, n_threads=n_threads)
    try:
        from ..recon import find_center
    except ImportError as e:
        raise ParameterError(
            "no rotation axis given and scintomo.recon (to find it) is not in this build: "
            f"{e}; pass --rotation-axis"
        ) from None
    c = float(find_center(data, scan.theta, method=cfg.center.method))
    log.info("centre found by %s on rows %d:%d: %.2f px", cfg.center.method, r0, r1, c)
    return c


def _center(scan, cfg, halo, n_threads) -> float:
    c = cfg.center.value
    return _find_center(scan, cfg, halo, n_threads) if math.isnan(c) else float(c)


# ----------------------------------------------------------------------- try


def try_centers(cfg: PipelineConfig, *, recon_fn=None, scan: Scan | None = None) -> TryResult:
    """Reconstruct one row for each candidate centre and write one TIFF per centre
    (tomopy-cli ``--reconstruction-type try``)."""
    import tifffile

    from ..io import atomic_path

    t0 = time.perf_counter()
    own = scan is None
    scan = scan or open_scan(cfg)
    try:
        nt = _n_threads(cfg)
        psf = _load_psf(cfg.deconv.psf) if cfg.deconv.psf else None
        halo = halo_rows(cfg, psf)
        c0 = _center(scan, cfg, halo, nt)
        row = min(scan.shape[1] - 1, int(round(cfg.center.row * (scan.shape[1] - 1))))
        data = preprocess(read_block(scan, row, row + 1, halo=halo), cfg, n_threads=nt)
        w, s = cfg.center.search_width, cfg.center.search_step
        centers = c0 + np.arange(-w, w + s / 2, s) if w > 0 else np.array([c0])
        folder = output_paths(cfg, scan.path)["try"]
        folder.mkdir(parents=True, exist_ok=True)
        from .._progress import progress

        files = []
        for c in progress(
            centers, desc="try centre", unit="slice", enabled=None if cfg.run.progress else False
        ):
            sl = _reconstruct(data, scan.theta, float(c), cfg, recon_fn, nt)[0]
            p = folder / f"recon_slice{row:04d}_center{c:05.2f}.tiff"  # tomocupy's names
            with atomic_path(p) as tmp:
                tifffile.imwrite(tmp, sl, photometric="minisblack", description=f"center={c:.3f}")
            files.append(str(p))
        return TryResult(
            str(folder),
            row,
            tuple(float(c) for c in centers),
            tuple(files),
            time.perf_counter() - t0,
        )
    finally:
        if own:
            scan.close()


# ---------------------------------------------------------------------- full


class _Stop(Exception):
    pass


def _choose_nsino(cfg, scan, halo, n_threads=None) -> int:
    n, _, w = scan.shape
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


def run(cfg: PipelineConfig, *, recon_fn=None, client=None, scan_path=None) -> RunResult:
    """Reconstruct the rows ``cfg.output.start_row:end_row`` of the scan into
    ``output_paths(cfg, scan)['full']``, block by block.

    Parameters
    ----------
    cfg : PipelineConfig
    recon_fn : callable, optional
        ``recon_fn(projections, theta, *, center, algorithm, filter, backend, n_threads)``;
        default :func:`scintomo.recon.reconstruct`.
    client : dask.distributed.Client, optional
        Distribute the blocks over its workers (``cfg.run.cluster`` makes one).
    scan_path : str, optional
        Overrides ``cfg.input.file``.
    """
    if scan_path is not None:
        cfg.input.file = str(scan_path)
    t_start = time.perf_counter()
    scan = open_scan(cfg)
    try:
        n, h, w = scan.shape
        psf = _load_psf(cfg.deconv.psf) if cfg.deconv.psf else None
        halo = halo_rows(cfg, psf)
        start = cfg.output.start_row
        stop = h if cfg.output.end_row < 0 else min(cfg.output.end_row, h)
        if not 0 <= start < stop:
            raise ParameterError(
                f"rows {start}:{stop} are empty or outside the detector (height {h})"
            )
        # a budget is per process: per Dask worker, whose kernels use cores / workers threads
        n_procs = max(1, len(client.scheduler_info()["workers"])) if client is not None else 1
        nsino = _choose_nsino(cfg, scan, halo, cfg.run.n_threads or max(1, _cpus() // n_procs))
        nt = _n_threads(cfg)
        center = _center(scan, cfg, halo, nt)
        paths = output_paths(cfg, scan.path)
        shape = (stop - start, w, w)
        writer = volume_writer(cfg.output.format, paths["full"], shape, chunk_rows=nsino)
        if getattr(writer, "chunk_rows", nsino) != nsino:
            log.info(
                "resuming into %s: blocks of %d rows, as its chunks",
                paths["full"],
                writer.chunk_rows,
            )
            nsino = writer.chunk_rows
        ranges = block_ranges(start, stop, nsino)
        todo = [(a, b) for a, b in ranges if not writer.done(a - start, b - start)]
        skipped = len(ranges) - len(todo)
        if skipped:
            log.info(
                "resuming: %d of %d blocks already written to %s",
                skipped,
                len(ranges),
                paths["full"],
            )
        log.info(
            "scan %s: %d angles x %d rows x %d columns; rows %d:%d in %d blocks of %d (halo %d); "
            "centre %.2f px",
            scan.path,
            n,
            h,
            w,
            start,
            stop,
            len(ranges),
            nsino,
            halo,
            center,
        )
        if client is not None:
            times = _run_dask(
                client,
                cfg,
                scan,
                todo,
                start,
                center,
                halo,
                writer,
                paths["full"],
                shape,
                nsino,
                recon_fn,
            )
            n_workers = len(client.scheduler_info()["workers"])
        else:
            times = _run_threads(cfg, scan, todo, start, center, halo, writer, recon_fn, nt)
            n_workers = 1
        attrs = {
            "center": center,
            "algorithm": cfg.recon.algorithm,
            "filter": cfg.recon.filter,
            "start_row": start,
            "scan": str(scan.path),
        }
        out = writer.finish(attrs)
        if hasattr(writer, "close"):
            writer.close()
        return RunResult(
            str(out),
            center,
            shape,
            len(ranges),
            skipped,
            nsino,
            time.perf_counter() - t_start,
            *times,
            n_workers=n_workers,
            extra={"halo_rows": halo},
        )
    finally:
        scan.close()


def _run_threads(cfg, scan, todo, start, center, halo, writer, recon_fn, nt):
    """Read (thread) -> compute (this thread) -> write (thread), one block in each queue."""
    from .._progress import progress

    show = None if cfg.run.progress else False
    t = {"read": 0.0, "compute": 0.0, "write": 0.0}
    read_q: queue.Queue = queue.Queue(maxsize=1)
    write_q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(q, item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def reader():
        try:
            with progress(
                total=len(todo), desc="read", unit="block", enabled=show, position=0
            ) as bar:
                for a, b in todo:
                    t0 = time.perf_counter()
                    raw = read_block(scan, a, b, halo=halo)
                    t["read"] += time.perf_counter() - t0
                    put(read_q, raw)
                    bar.update()
            put(read_q, None)
        except _Stop:
            pass
        except BaseException as e:  # handed to the main thread
            errors.append(e)
            stop.set()

    def writer_loop():
        try:
            with progress(
                total=len(todo), desc="write", unit="block", enabled=show, position=2
            ) as bar:
                while True:
                    try:
                        item = write_q.get(timeout=0.1)
                    except queue.Empty:
                        if stop.is_set():
                            return
                        continue
                    if item is None:
                        return
                    a, b, vol = item
                    t0 = time.perf_counter()
                    writer.write(a - start, b - start, vol)
                    t["write"] += time.perf_counter() - t0
                    bar.update()
        except BaseException as e:
            errors.append(e)
            stop.set()

    threads = [
        threading.Thread(target=reader, name="scintomo-read", daemon=True),
        threading.Thread(target=writer_loop, name="scintomo-write", daemon=True),
    ]
    for th in threads:
        th.start()
    try:
        with progress(
            total=len(todo), desc="reconstruct", unit="block", enabled=show, position=1
        ) as bar:
            while True:
                try:
                    raw = read_q.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        break
                    continue
                if raw is None:
                    break
                t0 = time.perf_counter()
                a, b = raw.r0, raw.r1
                vol = compute_block(raw, scan.theta, center, cfg, recon_fn=recon_fn, n_threads=nt)
                del raw
                t["compute"] += time.perf_counter() - t0
                put(write_q, (a, b, vol))
                bar.update()
            if not stop.is_set():
                put(write_q, None)
    except _Stop:
        pass
    except BaseException:
        stop.set()
        raise
    finally:
        if not stop.is_set():
            threads[1].join()  # let the writer drain its queue
        stop.set()
        for th in threads:
            th.join()
    if errors:
        raise errors[0]
    return t["read"], t["compute"], t["write"]


# ---------------------------------------------------------------------- dask

_WORKER_SCANS: dict = {}


def _worker_block(
    scan_path,
    open_kwargs,
    cfg_dict,
    a,
    b,
    start,
    center,
    halo,
    out,
    shape,
    nsino,
    write,
    recon_fn,
    n_threads,
):
    """Run on a Dask worker: open the scan (once per worker process), compute a block, write it
    (TIFF, Zarr) or return it (HDF5: the client writes)."""
    cfg = PipelineConfig.from_dict(cfg_dict)
    key = (scan_path, tuple(sorted((k, str(v)) for k, v in open_kwargs.items())))
    scan = _WORKER_SCANS.get(key)
    if scan is None:
        scan = _WORKER_SCANS[key] = read(scan_path, **open_kwargs)
    t0 = time.perf_counter()
    raw = read_block(scan, a, b, halo=halo)
    t1 = time.perf_counter()
    vol = compute_block(raw, scan.theta, center, cfg, recon_fn=recon_fn, n_threads=n_threads)
    t2 = time.perf_counter()
    if write:
        volume_writer(cfg.output.format, out, shape, chunk_rows=nsino).write(
            a - start, b - start, vol
        )
        vol = None
    return a, b, vol, (t1 - t0, t2 - t1, time.perf_counter() - t2)


def _run_dask(client, cfg, scan, todo, start, center, halo, writer, out, shape, nsino, recon_fn):
    from distributed import as_completed

    from .._progress import progress

    n_workers = max(1, len(client.scheduler_info()["workers"]))
    nt = cfg.run.n_threads or max(1, (os.cpu_count() or 1) // n_workers)
    cfg_dict = cfg.to_dict()
    write_here = not writer.parallel_safe
    t = [0.0, 0.0, 0.0]
    pending = list(todo)
    in_flight = 2 * n_workers  # bounds what waits in worker (and, for HDF5, client) memory

    def submit(a, b):
        return client.submit(
            _worker_block,
            scan.path,
            scan.open_kwargs,
            cfg_dict,
            a,
            b,
            start,
            center,
            halo,
            str(out),
            shape,
            nsino,
            not write_here,
            recon_fn,
            nt,
            pure=False,
        )

    futures = as_completed([submit(*pending.pop(0)) for _ in range(min(in_flight, len(pending)))])
    with progress(
        total=len(todo),
        desc=f"reconstruct ({n_workers} workers)",
        unit="block",
        enabled=None if cfg.run.progress else False,
    ) as bar:
        for fut in futures:
            a, b, vol, dt = fut.result()
            fut.release()
            for i in range(3):
                t[i] += dt[i]
            if write_here:
                t0 = time.perf_counter()
                writer.write(a - start, b - start, vol)
                t[2] += time.perf_counter() - t0
            bar.update()
            if pending:
                futures.add(submit(*pending.pop(0)))
    return tuple(t)


def make_client(address: str):
    """``local:N`` -> a LocalCluster of N single-threaded worker processes; else a scheduler
    address."""
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        try:
            n = int(address.split(":", 1)[1])
        except ValueError:
            raise ParameterError(
                f"--cluster local:N needs a number of workers, got {address!r}"
            ) from None
        if n < 1:
            raise ParameterError("--cluster local:N needs N >= 1")
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        return Client(cluster)
    return Client(address)
