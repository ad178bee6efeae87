"""Zeiss / Xradia TXRM and TXM files: OLE2 compound files, read with ``olefile``.

Streams read (names as DXchange's ``read_txrm``, CIL's ``ZEISSDataReader``
and txrm2tiff read them; olefile matches names case-insensitively)::

    ImageInfo/ImageWidth, ImageHeight      uint32
    ImageInfo/ImagesTaken (or NoOfImages)  uint32, number of projections
    ImageInfo/DataType                     uint32: 5 uint16, 10 float32
    ImageInfo/Angles                       float32 per view, degrees
    ImageInfo/PixelSize                    float32, micrometres *at the object*
    ImageInfo/StoRADistance                float32 per view, source to rotation axis
    ImageInfo/DtoRADistance                float32 per view, detector to rotation axis
    ImageData<1 + k // 100>/Image<k + 1>   view k, row-major (height, width)
    ReferenceData/Image                    the reference (flat) image, optional
    ReferenceData/DataType                 its dtype, as ImageInfo/DataType
    Alignment/X-Shifts, Y-Shifts           float32 per view, pixels, optional

The distances are in millimetres in a ``.txrm`` (the source's is negative:
it lies on the other side of the axis, so magnitudes are used); some
``.txm`` files store them in micrometres, recognised by a source distance
above 2 m, which no lab instrument has.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..exceptions import FileFormatError, ParameterError
from ..recon._geometry import ConeGeometry
from .lazy import _FrameStack
from .scan import Scan

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_DTYPES = {5: np.dtype("<u2"), 10: np.dtype("<f4")}


def is_ole2(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == OLE2_MAGIC
    except OSError:
        return False


def _image_stream(k: int) -> str:
    return f"ImageData{1 + k // 100}/Image{k + 1}"


class OleFrames(_FrameStack):
    """The views of a TXRM file, one OLE stream each, read when sliced."""

    def __init__(self, ole, path: Path, n: int, height: int, width: int, dtype, *, name: str):
        self.ole, self.path, self.name = ole, path, name
        self.shape = (n, height, width)
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self._file_dtype = np.dtype(dtype)

    def _frame(self, k: int, rows, cols) -> np.ndarray:
        stream = _image_stream(k)
        h, w = self.shape[1:]
        need = h * w * self._file_dtype.itemsize
        try:
            raw = self.ole.openstream(stream).read()
        except Exception as e:  # olefile raises OSError, struct.error ... on damage
            raise FileFormatError(
                f"{self.path}: cannot read {stream} ({type(e).__name__}: {e}); truncated or "
                "damaged file?"
            ) from None
        if len(raw) < need:
            raise FileFormatError(
                f"{self.path}: {stream} holds {len(raw)} bytes, a {h} x {w} "
                f"{self._file_dtype} image needs {need}; truncated file?"
            )
        img = np.frombuffer(raw, self._file_dtype, count=h * w).reshape(h, w)
        return np.array(img[rows, cols], dtype=self.dtype)

    def _read(self, frames, rows, cols):
        parts = [self._frame(int(k), rows, cols) for k in frames]
        if not parts:
            return np.empty((0, *self.shape[1:]), self.dtype)[:, rows, cols]
        return np.stack(parts)

    def __repr__(self) -> str:
        return f"<OleFrames {self.name} {self.shape} {self.dtype} in {self.path}>"


def _values(ole, path: Path, stream: str, dtype, *, required: bool = True):
    if not ole.exists(stream):
        if required:
            raise FileFormatError(f"{path}: no {stream} stream (is it a Zeiss TXRM file?)")
        return None
    try:
        raw = ole.openstream(stream).read()
    except Exception as e:
        raise FileFormatError(f"{path}: cannot read {stream} ({type(e).__name__}: {e})") from None
    dt = np.dtype(dtype)
    n = len(raw) // dt.itemsize
    if n == 0:
        raise FileFormatError(f"{path}: {stream} is empty")
    return np.frombuffer(raw, dt, count=n).astype(np.float64 if dt.kind == "f" else np.int64)


def read_txrm(path, *, angles=None) -> Scan:
    """Open a Zeiss TXRM / TXM file lazily.

    Parameters
    ----------
    path : str or Path
    angles : (N,) array of radians, optional
        Default: ``ImageInfo/Angles`` (degrees) converted to radians.

    Returns
    -------
    Scan
        ``projections`` (N, H, W), read one view at a time; ``flats`` the
        reference image (1, H, W) where the file has one, else ``None``; no
        darks (Zeiss corrects them on the instrument). ``geometry`` a
        :class:`~scintomo.recon.ConeGeometry` where both distances are stored:
        ``pixel_size`` (micrometres, at the detector) = ``PixelSize`` x M, since
        Zeiss stores the pixel at the object (CIL does the same). The
        per-view ``Alignment/X-Shifts`` / ``Y-Shifts`` (pixels) are in
        ``metadata["x_shifts"]`` / ``["y_shifts"]``: not applied.

    Raises
    ------
    FileNotFoundError
    FileFormatError
        Not an OLE2 file, a required stream missing, an unknown data type,
        or (when a view is read) a truncated image stream.
    """
    import olefile

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not is_ole2(path):
        raise FileFormatError(f"{path}: not an OLE2 compound file (is it a Zeiss TXRM/TXM?)")
    try:
        ole = olefile.OleFileIO(str(path))
    except Exception as e:  # olefile raises OSError and others on a damaged header
        raise FileFormatError(
            f"{path}: damaged OLE2 compound file ({type(e).__name__}: {e})"
        ) from None
    try:
        return _read(ole, path, angles)
    except BaseException:
        ole.close()
        raise


def _read(ole, path: Path, angles) -> Scan:
    width = int(_values(ole, path, "ImageInfo/ImageWidth", "<u4")[0])
    height = int(_values(ole, path, "ImageInfo/ImageHeight", "<u4")[0])
    taken = _values(ole, path, "ImageInfo/ImagesTaken", "<u4", required=False)
    if taken is None:
        taken = _values(ole, path, "ImageInfo/NoOfImages", "<u4")
    n = int(taken[0])
    if min(width, height, n) < 1 or width * height > 2**31:
        raise FileFormatError(f"{path}: {n} images of {height} x {width}: not a scan")
    code = int(_values(ole, path, "ImageInfo/DataType", "<u4")[0])
    if code not in _DTYPES:
        raise FileFormatError(
            f"{path}: ImageInfo/DataType {code}: expected 5 (uint16) or 10 (float32)"
        )
    missing = [k for k in (0, n - 1) if not ole.exists(_image_stream(k))]
    if missing:
        raise FileFormatError(
            f"{path}: ImagesTaken={n} but no {_image_stream(missing[0])} stream; truncated file?"
        )
    projections = OleFrames(ole, path, n, height, width, _DTYPES[code], name="projections")

    if angles is not None:
        theta = np.asarray(angles, dtype=np.float64).ravel()
        angles_src = "given"
    else:
        deg = _values(ole, path, "ImageInfo/Angles", "<f4")
        if deg.size < n:
            raise FileFormatError(f"{path}: {deg.size} angles in ImageInfo/Angles for {n} views")
        theta = np.deg2rad(deg[:n])
        angles_src = "ImageInfo/Angles"
    if theta.size != n or not np.all(np.isfinite(theta)):
        raise FileFormatError(f"{path}: {theta.size} finite angles needed for {n} views")

    meta: dict = {"format": "txrm", "angles": angles_src}
    pixel = _values(ole, path, "ImageInfo/PixelSize", "<f4", required=False)
    if pixel is not None:
        meta["pixel_size_um_at_object"] = float(pixel[0])
    sod = _values(ole, path, "ImageInfo/StoRADistance", "<f4", required=False)
    odd = _values(ole, path, "ImageInfo/DtoRADistance", "<f4", required=False)
    geometry = None
    if sod is not None and odd is not None and pixel is not None:
        s, d = abs(float(sod[0])), abs(float(odd[0]))
        scale = 1e-3 if s > 2000.0 else 1.0  # micrometres (some .txm) -> mm
        s, d = s * scale, d * scale
        if not (s > 0 and math.isfinite(s + d) and pixel[0] > 0):
            raise FileFormatError(
                f"{path}: StoRADistance {sod[0]:g}, DtoRADistance {odd[0]:g}, PixelSize "
                f"{pixel[0]:g}: not a cone-beam geometry"
            )
        magnification = (s + d) / s
        try:
            geometry = ConeGeometry(
                source_object=s, source_detector=s + d, pixel_size=float(pixel[0]) * magnification
            )
        except ParameterError as e:
            raise FileFormatError(f"{path}: {e}") from None
        meta["geometry"] = geometry.to_dict()
        meta["pixel_size_um"] = geometry.pixel_size
    for key, stream in (("x_shifts", "Alignment/X-Shifts"), ("y_shifts", "Alignment/Y-Shifts")):
        v = _values(ole, path, stream, "<f4", required=False)
        if v is not None and v.size >= n:
            meta[key] = v[:n].tolist()
    for key, stream in (("kvp", "ImageInfo/Voltage"), ("current_ua", "ImageInfo/Current")):
        v = _values(ole, path, stream, "<f4", required=False)
        if v is not None:
            meta[key] = float(v[0])

    flats = None
    if ole.exists("ReferenceData/Image"):
        rcode = _values(ole, path, "ReferenceData/DataType", "<u4", required=False)
        rdtype = _DTYPES.get(int(rcode[0]) if rcode is not None else 10)
        if rdtype is None:
            raise FileFormatError(f"{path}: ReferenceData/DataType {int(rcode[0])}: unknown")
        raw = ole.openstream("ReferenceData/Image").read()
        need = height * width * rdtype.itemsize
        if len(raw) < need:
            raise FileFormatError(
                f"{path}: ReferenceData/Image holds {len(raw)} bytes, {need} needed; truncated?"
            )
        ref = np.frombuffer(raw, rdtype, count=height * width).reshape(1, height, width)
        flats = ref.astype(rdtype.newbyteorder("="))
    meta["flats"] = "ReferenceData/Image" if flats is not None else None
    meta["n_flats"] = 0 if flats is None else 1
    meta["n_darks"] = 0
    kw = {"format": "txrm", "angles": None if angles is None else theta}
    return Scan(
        projections, flats, None, theta, str(path), meta, [ole], open_kwargs=kw, geometry=geometry
    )
