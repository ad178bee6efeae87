"""Lazy stacks of frames: slicing reads only what is asked.

A scan's projections are not always one contiguous dataset: NXtomo
interleaves flats, darks and projections in one detector dataset (told apart
by ``image_key``), and a TIFF stack is one file per frame. These views give
all three the same face as an h5py dataset: ``.shape``, ``.dtype``,
``.ndim``, ``len()``, ``np.asarray(view)`` and ``view[frames, rows, cols]``
with integer, slice or index-list keys, so ``scan.projections[:, 10:20, :]``
reads ten detector rows of every projection and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from ..exceptions import FileFormatError


def _normalize_key(key, ndim: int):
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices ({len(key)}) for a {ndim}-d stack")
    return key + (slice(None),) * (ndim - len(key))


def _span(key) -> str:
    """A row key as the user would write it (``10:20``, ``all``)."""
    if isinstance(key, slice):
        if key == slice(None):
            return "all"
        return f"{'' if key.start is None else key.start}:{'' if key.stop is None else key.stop}"
    return str(key)


def _runs(idx: np.ndarray):
    """Split sorted-or-not indices into (start, stop, positions) runs of consecutive values."""
    if idx.size == 0:
        return
    breaks = np.nonzero(np.diff(idx) != 1)[0] + 1
    pos = 0
    for part in np.split(idx, breaks):
        yield int(part[0]), int(part[-1]) + 1, slice(pos, pos + part.size)
        pos += part.size


class _FrameStack:
    """Base: a stack of ``n`` frames of ``(h, w)``, frame-indexed lazily."""

    shape: tuple[int, int, int]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return 3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype, copy=False)

    def __getitem__(self, key):
        k0, k1, k2 = _normalize_key(key, 3)
        frames = np.arange(self.shape[0])[k0]
        scalar = np.ndim(frames) == 0
        frames = np.atleast_1d(frames)
        # rows/cols: read through a slice (cheap on disk), index afterwards if needed.
        out = self._read(frames, k1, k2)
        return out[0] if scalar else out

    def _read(self, frames: np.ndarray, rows, cols) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class FrameSelection(_FrameStack):
    """Frames ``indices`` of a 3-D h5py dataset (e.g. NXtomo frames with one image_key).

    Consecutive indices are read as one hyperslab each, so the usual layout
    (a block of flats, a block of projections, ...) costs one read per block.
    """

    def __init__(self, dataset, indices, *, name: str = "frames"):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.name = name
        self.shape = (int(self.indices.size), *dataset.shape[1:])
        self.dtype = dataset.dtype

    def _read(self, frames, rows, cols):
        idx = self.indices[frames]
        order = np.argsort(idx, kind="stable")
        sidx = idx[order]
        parts = []
        for a, b, _ in _runs(sidx):
            try:
                parts.append(self.dataset[a:b, rows, cols])
            except (OSError, RuntimeError, KeyError) as e:  # damage shows only when read
                raise FileFormatError(
                    f"{self.dataset.file.filename}: cannot read detector rows {_span(rows)} of "
                    f"{self.name} (frames {a}:{b} of {self.dataset.name}); truncated or damaged "
                    f"file? ({e})"
                ) from None
        if not parts:
            probe = np.empty((0, *self.shape[1:]), self.dtype)[:, rows, cols]
            return probe
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if np.any(order != np.arange(order.size)):
            out = np.empty_like(data)
            out[order] = data
            data = out
        return data

    def __repr__(self) -> str:
        return f"<FrameSelection {self.name} {self.shape} {self.dtype} of {self.dataset.name}>"


class _DropRecords(logging.Filter):
    def filter(self, record):  # noqa: A003 - logging's name
        return False


@contextlib.contextmanager
def quiet_tifffile():
    """Keep tifffile's log lines about a damaged file (``<TiffTag.fromfile>
    raised ...``) off the user's terminal while scintomo reads it: a file it
    cannot read raises FileFormatError, one it can read is fine."""
    log = logging.getLogger("tifffile")
    f = _DropRecords()
    log.addFilter(f)
    try:
        yield
    finally:
        log.removeFilter(f)


def common_dtype(dtypes, *, where: str) -> np.dtype:
    """A dtype that holds every value of every one of ``dtypes`` exactly (the
    numpy promotion: uint16 + float32 -> float32, int32 + float32 ->
    float64, uint16 + int16 -> int32); FileFormatError where none does
    (uint64 with signed integers, non-numeric)."""
    dts = sorted({np.dtype(d) for d in dtypes}, key=str)
    for d in dts:
        if d.kind not in "biuf":
            raise FileFormatError(f"{where}: frames of dtype {d}, expected real image data")
    if len(dts) == 1:
        return dts[0]
    out = np.result_type(*dts)
    if out.kind not in "biuf" or not all(np.can_cast(d, out, "safe") for d in dts):
        raise FileFormatError(
            f"{where}: frames of dtypes {', '.join(map(str, dts))}, which no one dtype holds"
        )
    if out.kind == "f" and any(d.kind in "iu" and d.itemsize >= 8 for d in dts):
        # int64 -> float64 rounds above 2**53; refuse rather than change values
        raise FileFormatError(
            f"{where}: frames of dtypes {', '.join(map(str, dts))}: 64-bit integers do not fit "
            "a float exactly"
        )
    return out


class TiffFrames(_FrameStack):
    """One 2-D TIFF file per frame. Uncompressed files are memory-mapped, so a
    slice of rows reads only those rows; compressed ones are decoded whole.

    Every file's header is read when the stack is made: frames of different
    sizes are refused, and frames of different dtypes (a float frame among
    uint16 ones) give the stack a dtype that holds them all
    (:func:`common_dtype`) instead of casting into the first frame's dtype,
    which wraps (-5 -> 65531) or zeroes NaN."""

    def __init__(self, files, *, name: str = "frames"):
        self.files = [Path(f) for f in files]
        self.name = name
        if not self.files:
            raise FileFormatError(f"{name}: no TIFF files")
        shapes, dtypes = {}, {}
        with quiet_tifffile():
            self._headers(shapes, dtypes)
        if len(shapes) > 1:
            (s0, p0), (s1, p1) = list(shapes.items())[:2]
            raise FileFormatError(f"{name}: frames of different sizes: {p0} is {s0}, {p1} is {s1}")
        self.shape = (len(self.files), *next(iter(shapes)))
        self.dtype = common_dtype(dtypes, where=f"{name} in {self.files[0].parent}")
        #: {dtype: first file of that dtype} when the frames differ, else {}
        self.mixed_dtypes = {str(d): str(p) for d, p in dtypes.items()} if len(dtypes) > 1 else {}

    def _headers(self, shapes: dict, dtypes: dict) -> None:
        """Shape and dtype of every file's first page, {value: first file with it}."""
        import tifffile

        for path in self.files:
            try:
                with tifffile.TiffFile(path) as tf:
                    page = tf.pages.first
                    shape, dtype = tuple(page.shape), page.dtype
            except Exception as e:  # tifffile raises many kinds on a damaged file
                raise FileFormatError(
                    f"{path}: not a readable TIFF file ({type(e).__name__}: {e})"
                ) from None
            if len(shape) != 2:
                raise FileFormatError(f"{path}: a {shape} image, expected one 2-D page")
            if dtype is None:
                raise FileFormatError(f"{path}: a TIFF of a sample format numpy cannot hold")
            shapes.setdefault(shape, path)
            dtypes.setdefault(np.dtype(dtype), path)

    def _frame(self, path: Path, rows, cols) -> np.ndarray:
        import tifffile

        try:
            try:
                mm = tifffile.memmap(path, mode="r")
            except ValueError:  # compressed or not contiguous: decode it all
                mm = tifffile.imread(path)
            if mm.shape != self.shape[1:]:
                raise FileFormatError(
                    f"{path}: image is {mm.shape}, the first of {self.name} is {self.shape[1:]}"
                )
            if mm.dtype != self.dtype and not np.can_cast(mm.dtype, self.dtype, "safe"):
                # the file changed since the stack was opened
                raise FileFormatError(
                    f"{path}: a {mm.dtype} frame in {self.name} of {self.dtype}; it was "
                    "rewritten after the scan was opened?"
                )
            return np.array(mm[rows, cols], dtype=self.dtype)
        except FileFormatError:
            raise
        except Exception as e:
            raise FileFormatError(
                f"{path}: not a readable TIFF file ({type(e).__name__}: {e})"
            ) from None

    def _read(self, frames, rows, cols):
        with quiet_tifffile():
            parts = [self._frame(self.files[i], rows, cols) for i in frames]
        if not parts:
            return np.empty((0, *self.shape[1:]), self.dtype)[:, rows, cols]
        return np.stack(parts)

    def __repr__(self) -> str:
        return f"<TiffFrames {self.name} {self.shape} {self.dtype} in {self.files[0].parent}>"


class ConcatFrames(_FrameStack):
    """Several frame stacks of the same (h, w) seen as one (e.g. flats before + after)."""

    def __init__(self, parts, *, name: str = "frames"):
        self.parts = list(parts)
        self.name = name
        h_w = self.parts[0].shape[1:]
        self.shape = (sum(p.shape[0] for p in self.parts), *h_w)
        self.dtype = common_dtype([p.dtype for p in self.parts], where=name)
        self._starts = np.cumsum([0] + [p.shape[0] for p in self.parts])

    def _read(self, frames, rows, cols):
        owner = np.searchsorted(self._starts, frames, side="right") - 1
        pieces = {}
        for j in np.unique(owner):
            pieces[int(j)] = self.parts[j][frames[owner == j] - self._starts[j], rows, cols]
        if not pieces:
            return np.empty((0, *self.shape[1:]), self.dtype)[:, rows, cols]
        first = next(iter(pieces.values()))
        out = np.empty((frames.size, *first.shape[1:]), self.dtype)
        for j, data in pieces.items():
            out[owner == j] = data
        return out
