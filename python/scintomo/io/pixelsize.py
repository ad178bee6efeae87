"""The pixel spacing an image file states, for when the user gives none.

- DICOM: ``ImagerPixelSpacing`` (0018,1164; at the detector face, DX/CR),
  ``ImagePlanePixelSpacing`` (3002,0011; RT images, at the image plane),
  else ``PixelSpacing`` (0028,0030; in the patient), all millimetres as
  [row spacing, column spacing] (DICOM PS3.3 C.7.6.2.1.1, C.8.8.2,
  C.8.11.4). The detector-plane tags come first: scintomo's MTF takes the
  detector pixel and divides by ``magnification`` itself.
- TIFF: ImageJ's ``unit`` with the XResolution tag (pixels per unit), else
  XResolution with ResolutionUnit inch or centimetre (TIFF 6.0 p. 38).
  72 and 96 pixels per inch, the screen resolutions that image programs
  write when they know nothing, are not taken as a measurement.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from ..exceptions import ScintomoWarning
from ..units import _LENGTH_UM

_DICOM_TAGS = ("ImagerPixelSpacing", "ImagePlanePixelSpacing", "PixelSpacing")
_PLACEHOLDER_DPI = (72.0, 96.0)
_IMAGEJ_UNITS = {
    "micron": 1.0,
    "microns": 1.0,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "\\u00b5m": 1.0,
    "nm": 1e-3,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}


def pixel_size_from_file(path) -> tuple[float, str] | None:
    """``(pixel_size_um, description)`` from a DICOM or TIFF file's tags, or
    None when it has none (or is another kind of file). Never raises on a
    damaged file: reading the image reports that."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".dcm", ".dicom"):
            return _from_dicom(path)
        if suffix in (".tif", ".tiff"):
            return _from_tiff(path)
    except Exception:  # a damaged file: the image reader gives the error
        return None
    return None


def _from_dicom(path: Path):
    import pydicom
    from pydicom.multival import MultiValue

    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    for tag in _DICOM_TAGS:
        v = ds.get(tag)
        if v is None:
            continue
        vals = [float(x) for x in (v if isinstance(v, (list, tuple, MultiValue)) else [v])]
        vals = [x for x in vals if math.isfinite(x) and x > 0]
        if not vals:
            continue
        row, col = vals[0], vals[-1]
        if abs(row - col) > 0.01 * col:
            warnings.warn(
                f"{path.name}: {tag} {row} mm x {col} mm: non-square pixels; using the mean",
                ScintomoWarning,
                stacklevel=3,
            )
        mm = (row + col) / 2
        return mm * 1e3, f"{path.name}: DICOM {tag} {mm:.6g} mm"
    return None


def _from_tiff(path: Path):
    import tifffile

    from .lazy import quiet_tifffile

    with quiet_tifffile(), tifffile.TiffFile(path) as tf:
        page = tf.pages.first
        tags = page.tags
        xres = tags.get("XResolution")
        if xres is None:
            return None
        num, den = xres.value if isinstance(xres.value, tuple) else (xres.value, 1)
        if not (num and den):
            return None
        per_unit = num / den  # pixels per unit
        ij = tf.imagej_metadata or {}
        unit = str(ij.get("unit", "")).strip()
        if unit and unit.lower() in _IMAGEJ_UNITS:
            um = _IMAGEJ_UNITS[unit.lower()] / per_unit
            return um, f"{path.name}: ImageJ resolution {1 / per_unit:.6g} {unit}"
        ru = tags.get("ResolutionUnit")
        ru = int(ru.value) if ru is not None else 2  # TIFF's default is inch
        if ru == 2:
            if per_unit in _PLACEHOLDER_DPI or per_unit == 1:
                return None
            um = 25400.0 / per_unit
            return um, f"{path.name}: TIFF XResolution {per_unit:.6g} pixels/inch"
        if ru == 3:
            um = _LENGTH_UM["cm"] / per_unit
            return um, f"{path.name}: TIFF XResolution {per_unit:.6g} pixels/cm"
    return None
