"""Reading a block: the detector rows of projections, flats and darks that one
block needs (its rows plus the halo), through the lazy readers of :mod:`scintomo.io`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import FileFormatError, ParameterError
from ..io import Scan, read
from .config import PipelineConfig

__all__ = ["RawBlock", "input_corrected", "open_scan", "read_block", "read_for"]


def open_scan(cfg: PipelineConfig, path=None) -> Scan:
    fmt = None if cfg.input.format == "auto" else cfg.input.format
    return read(path or cfg.input.file, format=fmt, **cfg.input.reader_options())


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
    #: what the projections already went through: None (raw counts), 'ratio' or '-log'
    corrected: str | None = None
    #: cone beam: the voxel rows (z-slab) ``k0, k1`` these detector rows are read for
    slab: tuple | None = None

    @property
    def out_rows(self) -> tuple[int, int]:
        """The output rows this block gives: its slab (cone beam), else its detector rows."""
        return self.slab if self.slab is not None else (self.r0, self.r1)

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
    corrected = input_corrected(scan)
    if flats is None and corrected is None:
        raise ParameterError(
            f"{scan.path}: the scan has no flats; flat-field correction needs them"
        )
    return RawBlock(r0, r1, a0, a1, proj, flats, positions, darks, corrected)


def input_corrected(scan: Scan) -> str | None:
    """'ratio' or '-log' when the scan is already flat-field corrected (the output of
    ``scintomo flatfield``: a DXchange file without flats whose ``/exchange/data`` carries
    the ``log`` and ``reduce`` attributes that command writes); None for raw counts.

    Read from the file once and kept in ``scan.metadata['input_corrected']``.
    """
    key = "input_corrected"
    if key in scan.metadata:
        return scan.metadata[key] or None
    found = None
    if scan.flats is None and scan.metadata.get("format") == "dxchange":
        import h5py

        try:
            with h5py.File(scan.path, "r") as f:
                attrs = f["exchange/data"].attrs
                if "log" in attrs and "reduce" in attrs:
                    found = "-log" if int(attrs["log"]) else "ratio"
        except (OSError, KeyError, TypeError, ValueError):
            found = None
    scan.metadata[key] = found or ""
    return found


def read_for(scan: Scan, a: int, b: int, *, halo: int = 0, center=None) -> RawBlock:
    """The raw data output rows ``a:b`` need: the same detector rows (parallel beam), or the
    detector rows a cone-beam slab of voxel rows projects onto (``center`` a
    :class:`~scintomo.pipeline.geometry.ConePlan`)."""
    from .geometry import ConePlan

    if not isinstance(center, ConePlan):
        return read_block(scan, a, b, halo=halo)
    r0, r1 = center.rows(a, b)
    raw = read_block(scan, r0, r1, halo=halo)
    raw.slab = (a, b)
    return raw
