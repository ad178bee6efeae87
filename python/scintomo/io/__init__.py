"""Reading scans and writing results.

- :func:`read_dxchange`: DXchange HDF5 (``/exchange/data``, ``data_white``,
  ``data_dark``, ``theta`` in degrees) as a lazy :class:`Scan`.
- :mod:`scintomo.io.atomic`: every file is written under a temporary name and
  renamed when complete, so an interrupted run never leaves a file that looks
  whole.
"""

from __future__ import annotations

from .atomic import atomic_path
from .dxchange import read_dxchange, write_dxchange
from .scan import Scan
from .writers import write_hdf5, write_tiff_stack

__all__ = [
    "Scan",
    "atomic_path",
    "read_dxchange",
    "write_dxchange",
    "write_hdf5",
    "write_tiff_stack",
]
