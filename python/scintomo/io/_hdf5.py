"""Opening HDF5 files with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path

import h5py

from ..exceptions import FileFormatError


def open_hdf5(path: Path) -> h5py.File:
    """Open ``path`` read-only; FileNotFoundError if it is missing,
    FileFormatError if it is not a readable HDF5 file (or truncated)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise FileFormatError(f"{path}: not a readable HDF5 file ({e})") from None
