"""Writers for results: HDF5 and TIFF stacks, written atomically and block
by block (so a volume larger than memory can be streamed)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import h5py
import numpy as np
import tifffile

from .atomic import atomic_path


@contextlib.contextmanager
def hdf5_writer(
    path, shape, dtype=np.float32, *, dataset: str = "exchange/data", chunks=True, attrs=None
):
    """Context manager giving an HDF5 dataset to fill block by block; the file
    appears under ``path`` only when the block exits without error."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset(dataset, shape=shape, dtype=dtype, chunks=chunks)
        for k, v in (attrs or {}).items():
            ds.attrs[k] = v
        yield ds


def write_hdf5(path, data, *, dataset: str = "exchange/data", attrs=None, extra=None) -> Path:
    """Write ``data`` (and ``extra`` datasets {name: array}) to an HDF5 file."""
    path = Path(path)
    with hdf5_writer(path, data.shape, data.dtype, dataset=dataset, attrs=attrs) as ds:
        ds[...] = data
        for name, arr in (extra or {}).items():
            ds.file.create_dataset(name, data=arr)
    return path


@contextlib.contextmanager
def tiff_writer(path):
    """Context manager giving a callable that appends pages (one 2-D image
    per page, or a 3-D block of pages) to a BigTIFF file written atomically."""
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True) as tw:

        def write(block):
            block = np.asarray(block)
            for page in block.reshape((-1, *block.shape[-2:])):
                tw.write(page, contiguous=True, photometric="minisblack")

        yield write


def write_tiff_stack(path, data) -> Path:
    """Write a (N, H, W) stack as a multi-page BigTIFF, one page per image."""
    path = Path(path)
    with tiff_writer(path) as write:
        write(data)
    return path
