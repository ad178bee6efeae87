"""Where a run writes: tomopy-cli's output layout. The volume writers
themselves (TIFF slices, Zarr, HDF5; atomic, resumable) are in
:mod:`scintomo.io.writers`."""

from __future__ import annotations

from pathlib import Path

from .config import PipelineConfig

__all__ = ["output_paths"]


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
