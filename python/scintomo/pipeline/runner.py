"""Out-of-core reconstruction: the scan in blocks of sinogram (detector) rows.

For each block of rows ``r0:r1`` (plus ``halo`` rows each side where a 2-D
filter needs them: zinger median, PSF deconvolution, phase retrieval):

    read rows      projections, flats, darks of those rows only (lazy readers)
    zingers        optional median-based outlier removal (TomoPy remove_outlier)
    flat-field     (P - D) / (F - D), flats before/after interpolated (scintomo.flatfield)
    deconvolution  optional, the film's PSF (scintomo.deconv)
    distortion     optional, the detector's radial distortion undone (scintomo.distortion)
    drift shifts   optional, per-view shifts undone; given, or found first on a band of
                   rows by :mod:`.align` (scintomo.alignment)
    -log or phase  -ln, or Paganin phase retrieval (scintomo.recon.paganin)
    stripes        optional ring removal on the sinograms (scintomo.recon.remove_stripes)
    reconstruct    scintomo.recon.reconstruct -> (rows, y, x) slices
    write          one block of the volume (scintomo.io writers), atomically

Memory is bounded by the block size, not the scan size: one reader thread
reads block k+1 while block k is computed and block k-1 is written (queues
of one block each). A block already on disk completely is skipped, so an
interrupted run resumes where it stopped. With a Dask client the blocks go
to the workers; each opens the scan itself (h5py handles do not pickle).

Each stage has its own module: :mod:`.plan` (blocks, halo, memory budget),
:mod:`.read` (a block's rows), :mod:`.compute` (the steps above up to the
reconstruction, and the centre), :mod:`.write` (output layout), :mod:`.threads`
and :mod:`.dask` (the two drivers), :mod:`.results`. This module strings them
together.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings

import numpy as np

from ..exceptions import ParameterError, ScintomoWarning
from ..io import Scan, volume_writer
from . import provenance
from .align import resolve_alignment
from .compute import (
    _center,
    _load_psf,
    _n_threads,
    _reconstruct,
    compute_block,
    half_acquisition,
    preprocess,
    remove_zingers,
)
from .config import PipelineConfig
from .dask import _run_dask, make_client
from .dynflat import resolve_dynamic_flat
from .geometry import cone_plan
from .plan import (
    _choose_nsino,
    _cpus,
    block_ranges,
    estimate_block_bytes,
    halo_rows,
    nsino_for_budget,
)
from .read import RawBlock, input_corrected, open_scan, read_block
from .results import RunResult, TryResult
from .threads import _run_threads
from .write import output_paths, pixel_size_um, prepare_output

log = logging.getLogger("scintomo.pipeline")

__all__ = [
    "RawBlock",
    "RunResult",
    "TryResult",
    "block_ranges",
    "compute_block",
    "estimate_block_bytes",
    "halo_rows",
    "make_client",
    "nsino_for_budget",
    "open_scan",
    "output_paths",
    "preprocess",
    "read_block",
    "remove_zingers",
    "run",
    "try_centers",
]


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
        cone = cone_plan(cfg, scan)
        if cone is not None:
            return _try_cone(cfg, scan, cone, t0)
        nt = _n_threads(cfg)
        cfg = resolve_dynamic_flat(cfg, scan, progress=None if cfg.run.progress else False)
        cfg = resolve_alignment(cfg, scan, n_threads=nt)
        psf = _load_psf(cfg.deconv.psf) if cfg.deconv.psf else None
        halo = halo_rows(cfg, psf)
        c0 = _center(scan, cfg, halo, nt)
        ha = half_acquisition(cfg, scan, c0)
        # half acquisition: every candidate's slice as wide as the first guess's double field
        n_out = None if ha is None else ha.width
        row = min(scan.shape[1] - 1, int(round(cfg.center.row * (scan.shape[1] - 1))))
        data = preprocess(read_block(scan, row, row + 1, halo=halo), cfg, n_threads=nt)
        w, s = cfg.center.search_width, cfg.center.search_step
        centers = c0 + np.arange(-w, w + s / 2, s) if w > 0 else np.array([c0])
        # reconstruct refuses an axis off the detector: candidates beyond it are dropped
        n_det = scan.shape[2]
        on = (centers >= 0) & (centers <= n_det - 1)
        if not on.any():
            raise ParameterError(
                f"every candidate centre ({centers[0]:.2f} .. {centers[-1]:.2f} px) lies off "
                f"the detector (columns 0 .. {n_det - 1})"
            )
        if not on.all():
            warnings.warn(
                f"try: {int((~on).sum())} candidate centre(s) off the detector (columns "
                f"0 .. {n_det - 1}) skipped",
                ScintomoWarning,
                stacklevel=2,
            )
            centers = centers[on]
        folder = output_paths(cfg, scan.path)["try"]
        folder.mkdir(parents=True, exist_ok=True)
        from .._progress import progress

        files = []
        for c in progress(
            centers, desc="try centre", unit="slice", enabled=None if cfg.run.progress else False
        ):
            sl = _reconstruct(data, scan.theta, float(c), cfg, recon_fn, nt, n_out)[0]
            p = folder / f"recon_slice{row:04d}_center{c:05.2f}.tiff"  # tomocupy's names
            with atomic_path(p) as tmp:
                tifffile.imwrite(
                    tmp, sl, photometric="minisblack", **_try_tags(cfg, scan, float(c), row)
                )
            files.append(str(p))
        # Each candidate scored (sharpness) and the best marked, in try_scores.json beside
        # the slices: this run's files only, not those an earlier try left in the folder;
        # read back one at a time (from the page cache) so memory stays at one slice.
        from .._json import write_json
        from ..recon._score import SCORES_FILE, score_centers

        scores = dataclasses.replace(
            score_centers((tifffile.imread(f) for f in files), centers), files=tuple(files)
        )
        write_json(folder / SCORES_FILE, scores.to_dict())
        return TryResult(
            str(folder),
            row,
            tuple(float(c) for c in centers),
            tuple(files),
            time.perf_counter() - t0,
            best_center=float(scores.best_center),
            best_at_edge=bool(scores.at_edge),
            scores_file=str(folder / SCORES_FILE),
        )
    finally:
        if own:
            scan.close()


def _candidates(value: float, width: float, step: float) -> np.ndarray:
    return value + np.arange(-width, width + step / 2, step) if width > 0 else np.array([value])


def _try_cone(cfg: PipelineConfig, scan: Scan, cone, t0: float) -> TryResult:
    """try for a cone-beam scan: the volume's row ``[center] row`` (a fraction of its
    height) reconstructed by FDK for each candidate central-ray column (the geometry's
    ``center_column`` +- ``search_width``) and, with ``tilt_search_width`` > 0, each
    candidate detector tilt; each set scored for sharpness like the parallel-beam one."""
    import tifffile

    from .._json import write_json
    from .._progress import progress
    from ..io import atomic_path
    from ..recon._score import SCORES_FILE, score_centers
    from .geometry import ConePlan

    nt = _n_threads(cfg)
    psf = _load_psf(cfg.deconv.psf) if cfg.deconv.psf else None
    halo = halo_rows(cfg, psf)
    g = cone.geometry
    c0, _ = g.centers(cone.n_rows, cone.n_cols)
    k = min(cone.shape[0] - 1, int(round(cfg.center.row * (cone.shape[0] - 1))))
    centers = _candidates(c0, cfg.center.search_width, cfg.center.search_step)
    centers = centers[(centers >= 0) & (centers <= cone.n_cols - 1)]
    tw, ts = cfg.center.tilt_search_width, cfg.center.tilt_search_step
    tilts = _candidates(g.tilt, tw, ts) if tw > 0 else np.array([])
    if centers.size == 0:
        raise ParameterError(
            f"every candidate central-ray column lies off the detector (0 .. {cone.n_cols - 1})"
        )

    def plan(**kw) -> ConePlan:
        geo = dataclasses.replace(g, **kw)
        return ConePlan(geo, cone.shape, cone.voxel_size, cone.n_rows, cone.n_cols)

    plans = [("center", float(c), plan(center_column=float(c))) for c in centers]
    plans += [("tilt", float(t), plan(center_column=c0, tilt=float(t))) for t in tilts]
    # one read: the detector rows every candidate's cone needs for voxel row k
    spans = [p.rows(k, k + 1) for _, _, p in plans]
    a0, a1 = min(s[0] for s in spans), max(s[1] for s in spans)
    raw = read_block(scan, a0, a1, halo=halo)
    data = preprocess(raw, cfg, n_threads=nt)
    folder = output_paths(cfg, scan.path)["try"]
    folder.mkdir(parents=True, exist_ok=True)
    files: dict = {"center": [], "tilt": []}
    for kind, value, p in progress(
        plans, desc="try", unit="slice", enabled=None if cfg.run.progress else False
    ):
        sl = p.reconstruct(data, scan.theta, k, k + 1, a0, cfg, nt)[0]
        name = f"center{value:05.2f}" if kind == "center" else f"tilt{value:+06.3f}"
        path = folder / f"recon_slice{k:04d}_{name}.tiff"
        tags = _try_tags(cfg, scan, float(p.geometry.centers(cone.n_rows, cone.n_cols)[0]), k)
        tags["metadata"] |= {
            "geometry": p.geometry.to_dict(),
            "algorithm": "fdk",
            "pixel_size_um": cone.voxel_size,
        }
        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, sl, photometric="minisblack", **tags)
        files[kind].append(str(path))

    def scored(values, paths, fname):
        sc = dataclasses.replace(
            score_centers((tifffile.imread(f) for f in paths), values), files=tuple(paths)
        )
        write_json(folder / fname, sc.to_dict())
        return sc

    sc = scored(centers, files["center"], SCORES_FILE)
    extra: dict = {}
    if tilts.size:
        st = scored(tilts, files["tilt"], "try_tilt_scores.json")
        extra = {
            "tilts": tuple(float(t) for t in tilts),
            "tilt_files": tuple(files["tilt"]),
            "best_tilt": float(st.best_center),
            "tilt_scores_file": str(folder / "try_tilt_scores.json"),
        }
    return TryResult(
        str(folder),
        k,
        tuple(float(c) for c in centers),
        tuple(files["center"]),
        time.perf_counter() - t0,
        best_center=float(sc.best_center),
        best_at_edge=bool(sc.at_edge),
        scores_file=str(folder / SCORES_FILE),
        **extra,
    )


def _try_tags(cfg: PipelineConfig, scan: Scan, center: float, row: int) -> dict:
    """A try slice's ImageDescription JSON (centre, row, algorithm, filter, pixel size, scan,
    version; tifffile's shaped metadata) and resolution tags when the pixel size is known."""
    from .. import __version__

    px = pixel_size_um(cfg, scan)
    meta = {
        "center_px": center,
        "row": row,
        "algorithm": cfg.recon.algorithm,
        "filter": cfg.recon.filter,
        "pixel_size_um": px,
        "scan": str(scan.path),
        "scintomo_version": __version__,
    }
    kw: dict = {"metadata": meta}
    if px:
        kw |= {"resolution": (1e4 / px, 1e4 / px), "resolutionunit": "CENTIMETER"}
    return kw


# ---------------------------------------------------------------------- full


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
        # pre-passes on a band of rows, before the blocks: the dynamic flat-field's weights
        # and [alignment] compute's shifts, each to a file beside the volume (its content
        # in the provenance) that every block then applies
        prog = None if cfg.run.progress else False
        cfg = resolve_dynamic_flat(cfg, scan, progress=prog)
        cfg = resolve_alignment(cfg, scan, n_threads=_n_threads(cfg))
        psf = _load_psf(cfg.deconv.psf) if cfg.deconv.psf else None
        halo = halo_rows(cfg, psf)
        # cone beam: output rows are the volume's z rows, each slab reads the detector rows
        # its cone needs; parallel beam: output rows are detector rows
        cone = cone_plan(cfg, scan)
        if cone is None and cfg.recon.algorithm == "fdk":
            raise ParameterError(
                'recon.algorithm fdk is for cone-beam scans: give [geometry] type = "cone" '
                "and its distances (--geometry cone ...), or use gridrec / fbp"
            )
        if cone is not None and cfg.recon.algorithm in ("sirt", "cgls", "tv"):
            # A z-slab's rays also cross the voxels above and below it, so slab-by-slab
            # iterations are not the whole volume's; not in the pipeline yet.
            raise ParameterError(
                f"recon.algorithm {cfg.recon.algorithm} runs on parallel-beam scans in the "
                "pipeline; for cone beam call scintomo.recon.iterative on the whole volume"
            )
        height = h if cone is None else cone.shape[0]
        start = cfg.output.start_row
        stop = height if cfg.output.end_row < 0 else min(cfg.output.end_row, height)
        if not 0 <= start < stop:
            what = "the detector" if cone is None else "the cone-beam volume"
            raise ParameterError(
                f"rows {start}:{stop} are empty or outside {what} (height {height})"
            )
        # a budget is per process: per Dask worker, whose kernels use cores / workers threads
        n_procs = max(1, len(client.scheduler_info()["workers"])) if client is not None else 1
        nsino = _choose_nsino(cfg, scan, halo, cfg.run.n_threads or max(1, _cpus() // n_procs))
        nt = _n_threads(cfg)
        if cone is not None and cfg.geometry.half_acquisition:
            raise ParameterError(
                "[geometry] half_acquisition is for parallel-beam scans, and this one is cone "
                "beam (its own geometry, or [geometry]); a cone-beam FDK weights a displaced "
                'detector by itself. Give [geometry] type = "parallel" to treat it as parallel'
            )
        center = _center(scan, cfg, halo, nt) if cone is None else cone.center
        ha = half_acquisition(cfg, scan, center) if cone is None else None
        paths = output_paths(cfg, scan.path)
        if ha is not None:  # the double field of view
            w = ha.width
        shape = (stop - start, w, w) if cone is None else (stop - start, *cone.shape[1:])
        prov = provenance.record(
            cfg,
            scan,
            center=center,
            rows=(start, stop),
            shape=shape,
            corrected=input_corrected(scan),
            recon_fn=recon_fn,
            geometry=None if cone is None else cone.to_dict(),
            half_acquisition=None if ha is None else ha.to_dict(),
        )
        # refuses (or, told to overwrite, removes) a volume that another run produced
        recorded = prepare_output(
            cfg.output.format, paths["full"], prov, overwrite=cfg.output.overwrite
        )
        kept = (recorded or {}).get("nsino_per_chunk")
        if isinstance(kept, int) and kept >= 1 and kept != nsino:
            # the block edges where they were: filters that reach across rows (deconvolution,
            # phase) then give what an uninterrupted run gives
            log.info("resuming into %s: blocks of %d rows, as before", paths["full"], kept)
            nsino = kept
        meta = {
            "center_px": center,
            "algorithm": cfg.recon.algorithm,
            "filter": cfg.recon.filter,
            "pixel_size_um": pixel_size_um(cfg, scan),
            "start_row": start,
            "scan": str(scan.path),
            "scintomo_version": prov["scintomo_version"],
            "nsino_per_chunk": nsino,
            "provenance": prov,
        }
        if ha is not None:
            meta["half_acquisition"] = ha.to_dict()
        if cone is not None:
            meta |= {
                "algorithm": "fdk",
                "pixel_size_um": cone.voxel_size,
                "geometry": cone.to_dict(),
                "voxel_size_um": cone.voxel_size,
            }
        writer = volume_writer(
            cfg.output.format, paths["full"], shape, chunk_rows=nsino, metadata=meta
        )
        writer.begin()
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
        work_center = center if cone is None else cone
        extra: dict = {}
        if client is not None:
            times = _run_dask(
                client,
                cfg,
                scan,
                todo,
                start,
                work_center,
                halo,
                writer,
                paths["full"],
                shape,
                nsino,
                recon_fn,
            )
            n_workers = len(client.scheduler_info()["workers"])
        else:
            *times, prep = _run_threads(
                cfg, scan, todo, start, work_center, halo, writer, recon_fn, nt
            )
            extra["preprocess_seconds"] = prep
            n_workers = 1
        seconds = time.perf_counter() - t_start
        attrs = {
            "center": center,
            "algorithm": cfg.recon.algorithm if cone is None else "fdk",
            "filter": cfg.recon.filter,
            "start_row": start,
            "scan": str(scan.path),
        }
        computed = sum(b - a for a, b in todo)
        if computed:  # the pace of this run, for a later run that finds nothing left to do
            attrs |= {"slices_computed": computed, "run_seconds": seconds}
            attrs["slices_per_second"] = computed / seconds if seconds > 0 else math.inf
        out = writer.finish(attrs)
        if hasattr(writer, "close"):
            writer.close()
        resolution, resolution_line = None, ""
        if cfg.report.resolution:
            if cone is not None:
                warnings.warn(
                    "[report] resolution: the FRC of half reconstructions and the radial MTF "
                    "are measured for parallel-beam runs only; no report for this cone-beam run",
                    ScintomoWarning,
                    stacklevel=2,
                )
            else:
                from .report import resolution_report

                rep = resolution_report(
                    scan,
                    cfg,
                    center=center,
                    rows=(start, stop),
                    halo=halo,
                    recon_fn=recon_fn,
                    n_threads=nt,
                    pixel_size_um=pixel_size_um(cfg, scan),
                    paths=paths,
                )
                resolution, resolution_line = rep.to_dict(), rep.summary()
        rate = (recorded or {}).get("slices_per_second")
        return RunResult(
            str(out),
            center,
            shape,
            len(ranges),
            skipped,
            nsino,
            seconds,
            *times,
            n_workers=n_workers,
            extra={"halo_rows": halo, **extra},
            recorded_slices_per_second=float(rate) if isinstance(rate, (int, float)) else None,
            resolution=resolution,
            resolution_summary=resolution_line,
        )
    finally:
        scan.close()
