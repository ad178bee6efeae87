"""Where a run writes: tomopy-cli's output layout. The volume writers
themselves (TIFF slices, Zarr, HDF5; atomic, resumable) are in
:mod:`scintomo.io.writers`."""

from __future__ import annotations

import os
from pathlib import Path

from .config import PipelineConfig

__all__ = ["output_paths", "pixel_size_um", "prepare_output"]


def output_paths(cfg: PipelineConfig, scan_path) -> dict:
    """tomopy-cli's layout: ``<scan folder>_rec/<name>_rec`` (full) and
    ``<scan folder>_rec/try_center/<name>/`` (try)."""
    p = Path(os.path.abspath(scan_path))  # beside the path given, not a symlink's target
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


def pixel_size_um(cfg: PipelineConfig, scan) -> float | None:
    """The detector pixel size at the sample, micrometres, if the run knows it: the phase
    retrieval's ``pixel_size``, else a ``pixel_size`` the scan file states with its unit."""
    px = cfg.phase.options.get("pixel_size")
    if isinstance(px, (int, float)) and not isinstance(px, bool) and px > 0:
        return float(px)
    from ..units import parse_length_um

    for k, v in getattr(scan, "metadata", {}).items():
        if str(k).lower().rsplit("/", 1)[-1] in ("pixel_size", "x_pixel_size", "pixel_size_um"):
            if not isinstance(v, str) and not str(k).endswith("_um"):
                continue  # a bare number of unknown unit
            try:
                return parse_length_um(v)
            except ValueError:
                continue
    return None


def prepare_output(fmt: str, path, prov: dict, *, overwrite: bool = False) -> dict | None:
    """Make ``path`` ready for a run whose provenance is ``prov``; return the record of the
    volume already there when this run resumes it (None: a fresh volume).

    A volume with blocks on disk is resumed only when its recorded provenance equals
    ``prov``. Otherwise :class:`~scintomo.exceptions.StaleOutputError` names what differs,
    or, with ``overwrite``, the old volume is removed first (before any new block is
    written; the same run's volume is still resumed, not recomputed). Leftovers with no
    block (an array created, nothing written) are removed.
    """
    from ..io.writers import read_volume_record, remove_volume
    from .provenance import differences, stale_message

    has_data, rec = read_volume_record(fmt, path)
    old = rec.get("provenance") if isinstance(rec, dict) else None
    if has_data and isinstance(old, dict) and not differences(old, prov):
        return rec
    if has_data and not overwrite:
        from ..exceptions import StaleOutputError

        diffs = differences(old, prov) if isinstance(old, dict) else None
        raise StaleOutputError(stale_message(path, diffs))
    remove_volume(fmt, path)
    return None
