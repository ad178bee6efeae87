"""Writers for results: HDF5 and TIFF stacks, written atomically and block
by block (so a volume larger than memory can be streamed)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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
#
# What produced a volume (``metadata``: centre, algorithm, pixel size, the run's
# provenance) is recorded by ``begin`` before the first block: as attributes
# (HDF5: flat scalars plus the whole record as JSON in ``scintomo``; Zarr: the
# record under ``scintomo``), or in ``scintomo.json`` beside TIFF slices, each of
# which also carries it as ImageDescription JSON with resolution tags.
# :func:`read_volume_record` gives it back, :func:`remove_volume` deletes a volume.

#: attribute (HDF5, Zarr) holding the record of what produced a volume
RECORD_ATTR = "scintomo"
#: the record's file in a folder of TIFF slices
TIFF_RECORD = "scintomo.json"


def _flat_attrs(meta: dict) -> dict:
    """The scalar entries of ``meta`` (numbers, strings), for formats without nested attributes."""
    out = {}
    for k, v in meta.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, (bool, int, float, str)):
            out[k] = v
    return out


class VolumeWriter:
    """Base class: ``shape`` (rows, y, x) float32 volume at ``path``."""

    #: whether several processes may write different blocks at once
    parallel_safe = True

    def __init__(self, path, shape, *, dtype=np.float32, metadata=None):
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        #: what produced the volume (JSON-ready dict), recorded by :meth:`begin`
        self.metadata = dict(metadata or {})

    def begin(self) -> None:
        """Record :attr:`metadata` with the volume, before any block is written."""

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

    def __init__(self, path, shape, *, dtype=np.float32, prefix: str = "recon", metadata=None):
        super().__init__(path, shape, dtype=dtype, metadata=metadata)
        self.prefix = prefix
        self.path.mkdir(parents=True, exist_ok=True)

    def slice_path(self, r: int) -> Path:
        return self.path / f"{self.prefix}_{r:05d}.tiff"

    def begin(self):
        if self.metadata:
            _write_json(self.path / TIFF_RECORD, self.metadata)

    def done(self, r0, r1):
        return all(self.slice_path(r).exists() for r in range(r0, r1))

    def _tags(self, r: int) -> dict:
        """ImageDescription JSON (the metadata and this slice's index and detector row) and,
        with a ``pixel_size_um``, resolution tags in pixels per centimetre."""
        if not self.metadata:
            return {}
        m = self.metadata
        desc = {**m, "slice": r}
        if isinstance(m.get("start_row"), int):
            desc["row"] = m["start_row"] + r
        # tifffile's JSON ImageDescription ("shaped" metadata: it adds the shape), which
        # tifffile.TiffFile(...).shaped_metadata gives back
        kw: dict = {"metadata": desc}
        px = m.get("pixel_size_um")
        if isinstance(px, (int, float)) and px > 0:
            kw["resolution"] = (1e4 / px, 1e4 / px)
            kw["resolutionunit"] = "CENTIMETER"
        return kw

    def write(self, r0, r1, data):
        data = self._check(r0, r1, data)
        for i, r in enumerate(range(r0, r1)):
            with atomic_path(self.slice_path(r)) as tmp:
                tifffile.imwrite(tmp, data[i], photometric="minisblack", **self._tags(r))

    def finish(self, attrs=None):
        if self.metadata or attrs:
            self.metadata.update(attrs or {})
            _write_json(self.path / TIFF_RECORD, self.metadata)
        return self.path


class ZarrWriter(VolumeWriter):
    """A Zarr v3 array chunked by ``chunk_rows`` rows (whole slices per chunk)."""

    def __init__(
        self,
        path,
        shape,
        *,
        dtype=np.float32,
        chunk_rows: int = 16,
        create: bool = True,
        metadata=None,
    ):
        import zarr

        super().__init__(path, shape, dtype=dtype, metadata=metadata)
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

    def begin(self):
        if self.metadata:
            self.array.attrs.update({**_flat_attrs(self.metadata), RECORD_ATTR: self.metadata})

    def finish(self, attrs=None):
        if attrs:
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items()}
            self.metadata.update(attrs)
            self.array.attrs.update(attrs)
        if self.metadata:
            self.array.attrs[RECORD_ATTR] = self.metadata
        return self.path


class HDF5Writer(VolumeWriter):
    """``/exchange/data`` of an HDF5 file, chunked one slice per chunk.

    Only one process can write an HDF5 file: with Dask, blocks come back to
    the client, which writes them (``parallel_safe = False``).
    """

    parallel_safe = False

    def __init__(
        self, path, shape, *, dtype=np.float32, dataset: str = "exchange/data", metadata=None
    ):
        super().__init__(path, shape, dtype=dtype, metadata=metadata)
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

    def begin(self):
        if self.complete or not self.metadata:
            return
        for k, v in _flat_attrs(self.metadata).items():
            self.ds.attrs[k] = v
        self.ds.attrs[RECORD_ATTR] = json.dumps(self.metadata)
        self.file.flush()

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
        if self.metadata:
            self.metadata.update(_flat_attrs(attrs or {}))
            self.ds.attrs[RECORD_ATTR] = json.dumps({**self.metadata, **(attrs or {})})
        all_done = bool(np.all(self.rows_done[()]))
        self.file.close()
        self.file = None
        if all_done:
            os.replace(self.partial, self.path)
            self.complete = True
        return self.path

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def _fmt(fmt: str) -> str:
    if fmt in ("tiff", "zarr"):
        return fmt
    if fmt in ("h5", "hdf5"):
        return "h5"
    from ..exceptions import ParameterError

    raise ParameterError(f"save format must be 'tiff', 'h5' or 'zarr', not {fmt!r}")


def volume_writer(
    fmt: str, path, shape, *, chunk_rows: int = 16, prefix: str = "recon", metadata=None
) -> VolumeWriter:
    """The writer for ``fmt`` in {'tiff', 'h5', 'zarr'}; ``metadata`` (a JSON-ready dict) is
    recorded with the volume by :meth:`VolumeWriter.begin`."""
    fmt = _fmt(fmt)
    if fmt == "tiff":
        return TiffSliceWriter(path, shape, prefix=prefix, metadata=metadata)
    if fmt == "h5":
        return HDF5Writer(path, shape, metadata=metadata)
    return ZarrWriter(path, shape, chunk_rows=chunk_rows, metadata=metadata)


def _write_json(path: Path, d: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(d, indent=1))


def _h5_record(path: Path, dataset: str):
    """(rows written?, record or None) of an HDF5 volume, final or ``.partial``."""
    try:
        with h5py.File(path, "r") as f:
            ds = f.get(dataset)
            rec = None if ds is None else ds.attrs.get(RECORD_ATTR)
            done = f.get("scintomo/rows_done")
            any_rows = done is None or bool(np.any(done[()]))
    except OSError:
        return True, None
    if isinstance(rec, bytes):
        rec = rec.decode()
    try:
        return any_rows, (json.loads(rec) if rec else None)
    except ValueError:
        return any_rows, None


def read_volume_record(
    fmt: str, path, *, prefix: str = "recon", dataset: str = "exchange/data"
) -> tuple[bool, dict | None]:
    """What a volume writer left at ``path``: (whether any block is on disk, the recorded
    metadata or None). A volume without blocks does not count (nothing to resume)."""
    path = Path(path)
    fmt = _fmt(fmt)
    if fmt == "tiff":
        if not path.is_dir():
            return False, None
        slices = sorted(path.glob(f"{prefix}_*.tiff"))
        rec = path / TIFF_RECORD
        if rec.exists():
            try:
                return bool(slices), json.loads(rec.read_text())
            except ValueError:
                return bool(slices), None
        if slices:  # the record is written first, but a slice carries it too
            try:
                with tifffile.TiffFile(slices[0]) as tf:
                    return True, json.loads(tf.pages[0].description or "null")
            except (ValueError, OSError, IndexError):
                return True, None
        return False, None
    if fmt == "zarr":
        if not (path / "zarr.json").exists():
            return False, None
        marks = path / ".scintomo-done"
        written = marks.is_dir() and any(marks.iterdir())
        try:
            meta = json.loads((path / "zarr.json").read_text())
        except (OSError, ValueError):
            return written, None
        rec = meta.get("attributes", {}).get(RECORD_ATTR)
        return written, (rec if isinstance(rec, dict) else None)
    if path.exists():
        return _h5_record(path, dataset)
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        return _h5_record(partial, dataset)
    return False, None


def remove_volume(fmt: str, path, *, prefix: str = "recon") -> None:
    """Delete what a volume writer wrote at ``path`` (and nothing else): the TIFF slices and
    their record (then the folder if empty), the Zarr array, the HDF5 file and its
    ``.partial``."""
    path = Path(path)
    fmt = _fmt(fmt)
    if fmt == "tiff":
        if not path.is_dir():
            return
        for f in [*path.glob(f"{prefix}_*.tiff"), *path.glob(f".{prefix}_*.tiff.part-*")]:
            f.unlink(missing_ok=True)
        (path / TIFF_RECORD).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.rmdir()
    elif fmt == "zarr":
        if not path.exists():
            return
        if not (path / "zarr.json").exists() and any(path.iterdir()):
            from ..exceptions import FileFormatError

            raise FileFormatError(f"{path}: not a Zarr array; not removing it")
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".partial").unlink(missing_ok=True)


def write_zarr(path, data, *, chunk_rows: int = 16) -> Path:
    """Write a (rows, y, x) array as a Zarr v3 array chunked by ``chunk_rows`` rows."""
    path = Path(path)
    w = ZarrWriter(path, data.shape, dtype=data.dtype, chunk_rows=chunk_rows)
    for r0 in range(0, data.shape[0], w.chunk_rows):
        r1 = min(r0 + w.chunk_rows, data.shape[0])
        w.write(r0, r1, data[r0:r1])
    return w.finish()
