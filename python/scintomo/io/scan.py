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
        Lazy where the format allows it (an h5py dataset): slicing reads only
        what is asked, e.g. ``scan.projections[:, 10:20, :]``.
    flats, darks : (F, H, W) array-like or None
    theta : (N,) ndarray of float64, radians
    path : str
    metadata : dict
    """

    projections: Any
    flats: Any
    darks: Any
    theta: np.ndarray
    path: str = ""
    metadata: dict = field(default_factory=dict)
    _handles: list = field(default_factory=list, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.projections.shape)

    def close(self) -> None:
        for h in self._handles:
            h.close()
        self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
