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


# --- volume writers for the out-of-core pipeline ------------------------------
#
# A volume (row, y, x) is written block of rows by block of rows. Each writer
# knows which rows are already complete on disk (``done``), so a re-run skips
# them, and never lets a half-written block look complete:
# - TIFF: one file per slice, each written to a temporary name and renamed;
# - Zarr v3: chunks of ``chunk_rows`` rows (zarr's LocalStore writes every
#   chunk file to a temporary name and renames it), plus a marker per block
#   written (atomically) only after its chunks;
# - HDF5: one file, filled under ``<name>.partial`` with a per-row "done" mask
#   flushed after each block, renamed to its final name when all rows are in.


class VolumeWriter:
    """Base class: ``shape`` (rows, y, x) float32 volume at ``path``."""

    #: whether several processes may write different blocks at once
    parallel_safe = True

    def __init__(self, path, shape, *, dtype=np.float32):
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    def done(self, r0: int, r1: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, r0: int, r1: int, data) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self, attrs=None) -> Path:
        return self.path

    def _check(self, r0, r1, data):
        data = np.asarray(data, dtype=self.dtype)
        if data.shape != (r1 - r0, *self.shape[1:]):
            from ..exceptions import ShapeError

            raise ShapeError(
                f"{self.path}: block of rows {r0}:{r1} has shape {data.shape}, "
                f"expected {(r1 - r0, *self.shape[1:])}"
            )
        return data


class TiffSliceWriter(VolumeWriter):
    """One float32 TIFF per slice: ``folder/<prefix>_NNNNN.tiff`` (tomopy-cli's layout)."""

    def __init__(self, path, shape, *, dtype=np.float32, prefix: str = "recon"):
        super().__init__(path, shape, dtype=dtype)
        self.prefix = prefix
        self.path.mkdir(parents=True, exist_ok=True)

    def slice_path(self, r: int) -> Path:
        return self.path / f"{self.prefix}_{r:05d}.tiff"

    def done(self, r0, r1):
        return all(self.slice_path(r).exists() for r in range(r0, r1))

    def write(self, r0, r1, data):
        data = self._check(r0, r1, data)
        for i, r in enumerate(range(r0, r1)):
            with atomic_path(self.slice_path(r)) as tmp:
                tifffile.imwrite(tmp, data[i], photometric="minisblack")


class ZarrWriter(VolumeWriter):
    """A Zarr v3 array chunked by ``chunk_rows`` rows (whole slices per chunk)."""

    def __init__(self, path, shape, *, dtype=np.float32, chunk_rows: int = 16, create: bool = True):
        import zarr

        super().__init__(path, shape, dtype=dtype)
        self.chunk_rows = int(chunk_rows)
        self.marks = self.path / ".scintomo-done"
        if (self.path / "zarr.json").exists():
            self.array = zarr.open_array(str(self.path), mode="r+")
            if tuple(self.array.shape) != self.shape or self.array.dtype != self.dtype:
                from ..exceptions import FileFormatError

                raise FileFormatError(
                    f"{self.path}: an existing Zarr array of shape {self.array.shape} "
                    f"{self.array.dtype}, "
                    f"this run writes {self.shape} {self.dtype}; remove it or choose another folder"
                )
            # blocks must stay aligned on the chunks already on disk (one writer per chunk)
            self.chunk_rows = int(self.array.chunks[0])
        elif create:
            self.array = zarr.create_array(
                str(self.path),
                shape=self.shape,
                chunks=(self.chunk_rows, *self.shape[1:]),
                dtype=self.dtype,
                zarr_format=3,
                fill_value=np.nan,
                overwrite=False,
            )
        else:
            raise FileNotFoundError(f"{self.path}: no Zarr array")
        self.marks.mkdir(parents=True, exist_ok=True)

    def _mark(self, r0, r1) -> Path:
        return self.marks / f"rows_{r0:06d}_{r1:06d}"

    def done(self, r0, r1):
        return self._mark(r0, r1).exists()

    def write(self, r0, r1, data):
        data = self._check(r0, r1, data)
        self.array[r0:r1] = data
        with atomic_path(self._mark(r0, r1)) as tmp:
            tmp.write_bytes(b"")

    def finish(self, attrs=None):
        if attrs:
            self.array.attrs.update(
                {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items()}
            )
        return self.path


class HDF5Writer(VolumeWriter):
    """``/exchange/data`` of an HDF5 file, chunked one slice per chunk.

    Only one process can write an HDF5 file: with Dask, blocks come back to
    the client, which writes them (``parallel_safe = False``).
    """

    parallel_safe = False

    def __init__(self, path, shape, *, dtype=np.float32, dataset: str = "exchange/data"):
        super().__init__(path, shape, dtype=dtype)
        self.dataset = dataset
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.complete = self.path.exists()
        self.file = None
        if self.complete:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            try:
                self.file = h5py.File(self.partial, "r+")
                ds = self.file[dataset]
                if tuple(ds.shape) != self.shape:
                    raise ValueError("shape changed")
            except (OSError, KeyError, ValueError):
                if self.file is not None:
                    self.file.close()
                self.partial.unlink()
                self.file = None
        if self.file is None:
            self.file = h5py.File(self.partial, "w")
            self.file.create_dataset(
                dataset, shape=self.shape, dtype=self.dtype, chunks=(1, *self.shape[1:])
            )
            self.file.create_dataset("scintomo/rows_done", shape=(self.shape[0],), dtype=bool)
            self.file.flush()
        self.ds = self.file[dataset]
        self.rows_done = self.file["scintomo/rows_done"]

    def done(self, r0, r1):
        return self.complete or bool(np.all(self.rows_done[r0:r1]))

    def write(self, r0, r1, data):
        data = self._check(r0, r1, data)
        self.ds[r0:r1] = data
        self.file.flush()
        self.rows_done[r0:r1] = True
        self.file.flush()

    def finish(self, attrs=None):
        if self.complete:
            return self.path
        for k, v in (attrs or {}).items():
            self.ds.attrs[k] = v
        all_done = bool(np.all(self.rows_done[()]))
        self.file.close()
        self.file = None
        if all_done:
            import os

            os.replace(self.partial, self.path)
            self.complete = True
        return self.path

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def volume_writer(
    fmt: str, path, shape, *, chunk_rows: int = 16, prefix: str = "recon"
) -> VolumeWriter:
    """The writer for ``fmt`` in {'tiff', 'h5', 'zarr'}."""
    if fmt == "tiff":
        return TiffSliceWriter(path, shape, prefix=prefix)
    if fmt in ("h5", "hdf5"):
        return HDF5Writer(path, shape)
    if fmt == "zarr":
        return ZarrWriter(path, shape, chunk_rows=chunk_rows)
    from ..exceptions import ParameterError

    raise ParameterError(f"save format must be 'tiff', 'h5' or 'zarr', not {fmt!r}")


def write_zarr(path, data, *, chunk_rows: int = 16) -> Path:
    """Write a (rows, y, x) array as a Zarr v3 array chunked by ``chunk_rows`` rows."""
    path = Path(path)
    w = ZarrWriter(path, data.shape, dtype=data.dtype, chunk_rows=chunk_rows)
    for r0 in range(0, data.shape[0], w.chunk_rows):
        r1 = min(r0 + w.chunk_rows, data.shape[0])
        w.write(r0, r1, data[r0:r1])
    return w.finish()
