"""A scan as read from disk: lazy projections, flats, darks, angles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Scan:
    """A tomographic scan.

    Attributes
    ----------
    projections : (N, H, W) array-like
        Lazy (an h5py dataset or a :mod:`scintomo.io.lazy` view): slicing reads
        only what is asked, e.g. ``scan.projections[:, 10:20, :]``.
    flats, darks : (F, H, W) array-like or None
        All flats (all darks) of the scan, lazy.
    theta : (N,) ndarray of float64, radians
    path : str
    metadata : dict
        ``format`` and what the file says (energy, pixel size, ...).
    flat_series : list of (F_i, H, W) array-like, optional
        The flats split by when they were taken (e.g. before and after the
        scan), with ``flat_positions`` the projection index of each series
        (e.g. ``[-0.5, N - 0.5]``). ``None`` when the file has one series.
    open_kwargs : dict
        Keyword arguments that :func:`scintomo.io.read` needs to open this
        file again (a Dask worker re-opens the file itself).
    geometry : ConeGeometry or None
        The scan's geometry where the file holds one (lab CT formats: Nikon
        ``.xtekct``, Zeiss ``.txrm``; NXtomo and DXchange files that record a
        source distance), else ``None``.
    """

    projections: Any
    flats: Any
    darks: Any
    theta: np.ndarray
    path: str = ""
    metadata: dict = field(default_factory=dict)
    _handles: list = field(default_factory=list, repr=False)
    flat_series: list | None = None
    flat_positions: tuple[float, ...] | None = None
    open_kwargs: dict = field(default_factory=dict)
    geometry: Any = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.projections.shape)

    @property
    def n_angles(self) -> int:
        return int(self.projections.shape[0])

    def flats_for_rows(self, rows: slice):
        """Flats of detector rows ``rows`` as (flats, flat_positions) for
        :func:`scintomo.flatfield.correct`: a list of series with their
        positions when the file has several, else one array and ``None``."""
        if self.flat_series and len(self.flat_series) > 1:
            return [np.asarray(s[:, rows, :]) for s in self.flat_series], list(self.flat_positions)
        if self.flats is None:
            return None, None
        return np.asarray(self.flats[:, rows, :]), None

    def close(self) -> None:
        for h in self._handles:
            h.close()
        self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
