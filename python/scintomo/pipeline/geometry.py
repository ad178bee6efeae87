"""The scan geometry of a run and the cone-beam plan: which volume, and which
detector rows each z-slab of it needs.

A cone-beam voxel at height z (voxel units, 0 on the central plane) lands on
row ``cr + sdd z / (L p)`` with L = sod + (its depth towards the detector), p
the detector pitch in voxels; over all angles L runs through
[sod - R, sod + R], R the largest distance of a voxel from the axis. So a slab
of voxel rows ``k0:k1`` needs the detector rows between the extremes of that
expression at its first and last rows, plus the bilinear interpolation's
neighbour and whatever the detector tilt moves rows by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..exceptions import ParameterError
from .config import PipelineConfig

__all__ = [
    "ConePlan",
    "cone_plan",
    "cone_volume",
    "resolve_geometry",
    "slab_detector_rows",
]


def resolve_geometry(cfg: PipelineConfig, scan):
    """The run's :class:`~scintomo.recon.ConeGeometry`, or None for parallel beam.

    ``[geometry] type = "cone"`` builds one from the section, taking what it
    leaves empty from the scan's own geometry (``scan.geometry``, Nikon and Zeiss
    readers); an empty ``type`` uses the scan's geometry when it has one (with the
    section's values over it), else parallel beam; ``"parallel"`` is parallel beam
    whatever the scan records.
    """
    g = cfg.geometry
    own = getattr(scan, "geometry", None)
    own = own if getattr(own, "source_object", None) is not None else None  # a ConeGeometry
    if g.type == "parallel" or (g.type == "" and own is None):
        return None
    from ..recon._geometry import ConeGeometry

    kw = {}
    for key, attr in (
        ("source_object", "source_object"),
        ("source_detector", "source_detector"),
        ("pixel_size", "pixel_size"),
    ):
        v = getattr(g, key)
        if v != "":
            kw[attr] = v
        elif own is not None:
            kw[attr] = getattr(own, attr)
    missing = [k for k in ("source_object", "source_detector", "pixel_size") if k not in kw]
    if missing:
        raise ParameterError(
            "a cone-beam geometry needs "
            + ", ".join(f"[geometry] {k}" for k in missing)
            + " (--source-object-distance, --source-detector-distance, --detector-pixel-size); "
            "the scan records none"
        )
    for key in ("center_column", "center_row"):
        v = getattr(g, key)
        kw[key] = None if math.isnan(v) else v
        if kw[key] is None and own is not None:
            kw[key] = getattr(own, key)
    kw["tilt"] = g.tilt if g.tilt != 0.0 or own is None else own.tilt
    return ConeGeometry(
        kw.pop("source_object"), kw.pop("source_detector"), kw.pop("pixel_size"), **kw
    )


def cone_volume(cfg: PipelineConfig, geometry, n_rows: int, n_cols: int):
    """(shape (nz, ny, nx), voxel size um) of the cone-beam volume: ``[geometry] shape`` and
    ``voxel_size``, else what :func:`scintomo.recon.reconstruct` takes by default (the
    detector's rows x columns x columns at pixel_size / magnification)."""
    from ..recon._geometry import _length

    g = cfg.geometry
    shape = tuple(int(v) for v in g.shape) if g.shape else (n_rows, n_cols, n_cols)
    vox = geometry.voxel_size if g.voxel_size == "" else _length(g.voxel_size, "voxel_size", "um")
    return shape, float(vox)


def slab_detector_rows(geometry, n_rows: int, n_cols: int, shape, voxel_size: float, k0, k1):
    """Detector rows ``(a0, a1)`` (half-open, clipped to the detector) that voxel rows
    ``k0:k1`` of a volume of ``shape`` project onto over all angles, with one row of margin
    for the bilinear interpolation and the rows the tilt correction mixes in."""
    nz, ny, nx = shape
    cc, cr = geometry.centers(n_rows, n_cols)
    p = geometry.pixel_size / voxel_size  # detector pitch, voxels
    sod = geometry.source_object * 1e3 / voxel_size
    sdd = geometry.source_detector * 1e3 / voxel_size
    r = math.hypot((nx - 1) / 2.0 + 0.5, (ny - 1) / 2.0 + 0.5)
    zc = (nz - 1) / 2.0
    rows = [
        cr + sdd * z / (depth * p)
        for z in (k0 - zc - 0.5, k1 - 1 - zc + 0.5)
        for depth in (sod - r, sod + r)
    ]
    tilt_rows = abs(math.sin(math.radians(geometry.tilt))) * max(cc, n_cols - 1 - cc)
    lo = math.floor(min(rows) - tilt_rows) - 1
    hi = math.ceil(max(rows) + tilt_rows) + 2
    if sod - r <= 0:
        raise ParameterError("source_object puts the source inside the volume")
    return max(0, lo), min(n_rows, hi)


@dataclass(frozen=True)
class ConePlan:
    """What each z-slab of a cone-beam run needs (picklable: it goes to Dask workers in
    place of the parallel-beam centre)."""

    geometry: object
    shape: tuple
    voxel_size: float
    n_rows: int
    n_cols: int

    @property
    def center(self) -> float:
        """Column of the central ray, pixels (recorded where a parallel run has its centre)."""
        return float(self.geometry.centers(self.n_rows, self.n_cols)[0])

    def rows(self, k0: int, k1: int) -> tuple[int, int]:
        """Detector rows voxel rows ``k0:k1`` need (:func:`slab_detector_rows`)."""
        return slab_detector_rows(
            self.geometry, self.n_rows, self.n_cols, self.shape, self.voxel_size, k0, k1
        )

    def to_dict(self) -> dict:
        return {
            **self.geometry.to_dict(),
            "volume_shape": [int(v) for v in self.shape],
            "volume_voxel_size_um": float(self.voxel_size),
        }

    def reconstruct(self, data, theta, k0: int, k1: int, a0: int, cfg, n_threads):
        """FDK of voxel rows ``k0:k1`` from the -log detector rows ``a0:a0 + len(data)``."""
        from ..recon._cone import reconstruct_cone

        vol, _ = reconstruct_cone(
            data,
            theta,
            self.geometry,
            shape=self.shape,
            voxel_size=self.voxel_size,
            filter=cfg.recon.filter,
            n_threads=n_threads,
            _rows=(a0, self.n_rows),
            _z_range=(k0, k1),
        )
        return np.asarray(vol, dtype=np.float32)


def cone_plan(cfg: PipelineConfig, scan):
    """A :class:`ConePlan` for the scan, or None for parallel beam."""
    geometry = resolve_geometry(cfg, scan)
    if geometry is None:
        return None
    _, n_rows, n_cols = scan.shape
    shape, vox = cone_volume(cfg, geometry, n_rows, n_cols)
    return ConePlan(geometry, shape, vox, int(n_rows), int(n_cols))
