"""Cone-beam geometry from the distances an HDF5 scan file records (NXtomo,
DXchange), with units from the ``units`` attributes.

NXtomo (NeXus application definition): ``instrument/detector/distance`` is
the distance between the sample and the detector, ``x_pixel_size`` the
detector pitch, and the NXsource base class's ``distance`` the effective
distance of the source from the sample, negative upstream. NeXus lengths
carry a ``units`` attribute; without one SI (metres) is assumed.

DXchange (dxfile's tomography reference): the instrument's ``sample`` group
(APS tomoscan writes it as ``sample_motor_stack``) has ``detector_distance``;
any component's position is ``geometry/translation/distances`` (x, y, z
relative to where the beam meets the sample; its length is the distance);
``detector/pixel_size_x`` is the *physical* (camera) pixel and
``detection_system/objective/resolution`` (or ``pixel_size_x`` over the
objective's ``magnification``) the pixel at the scintillator, which is the
detector-plane pitch of a lens-coupled detector. The reference defines no
source distance field: the source's ``geometry/translation/distances`` and,
as NeXus has it, ``source/distance`` are read. Without a ``units``
attribute DXchange values are SI (metres).

A file that records no source distance, or one of 10 m or more (a
synchrotron: the beam is parallel for any detector), stays parallel beam.
"""

from __future__ import annotations

import math
import re
import warnings

import h5py
import numpy as np

from ..exceptions import FileFormatError, ParameterError, ScintomoWarning
from ..units import parse_length_um

#: a source this far from the sample (mm) or farther is a parallel beam
PARALLEL_SOURCE_MM = 10_000.0

_UNIT_WORDS = {
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "millimeter": "mm",
    "millimeters": "mm",
    "millimetre": "mm",
    "millimetres": "mm",
    "centimeter": "cm",
    "centimeters": "cm",
    "centimetre": "cm",
    "centimetres": "cm",
    "micrometers": "um",
    "micrometres": "um",
    "nanometer": "nm",
    "nanometers": "nm",
    "nanometre": "nm",
    "nanometres": "nm",
}


def _unit(units) -> str:
    if isinstance(units, bytes):
        units = units.decode(errors="replace")
    if isinstance(units, np.ndarray):
        units = units.reshape(-1)[0] if units.size else ""
        return _unit(units)
    u = re.sub(r"\s+", "", str(units)).strip()
    return _UNIT_WORDS.get(u.lower(), u)


def read_length_um(f: h5py.File, dpath: str, source: str) -> float | None:
    """The length stored at ``dpath`` (a scalar or 1-element dataset; a 3-vector
    ``.../distances`` gives its length), in micrometres, its sign dropped; None
    when absent. Units from the ``units`` attribute, SI (metres) without one.

    Raises
    ------
    FileFormatError
        Present but not a number, a unit that is not a length, or zero.
    """
    try:
        obj = f.get(dpath)
    except (OSError, KeyError, RuntimeError, ValueError):
        return None
    if not isinstance(obj, h5py.Dataset):
        return None
    try:
        raw = np.asarray(obj[()])
        units = obj.attrs.get("units", "m")
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as e:
        raise FileFormatError(f"{source}: {dpath} cannot be read ({e})") from None
    if raw.dtype.kind not in "iuf":
        raise FileFormatError(f"{source}: {dpath} is not a number ({raw!r})")
    vals = raw.astype(np.float64).reshape(-1)
    if vals.size == 3 and dpath.endswith("distances"):
        value = float(np.sqrt(np.sum(vals * vals)))
    elif vals.size == 1:
        value = abs(float(vals[0]))
    else:
        raise FileFormatError(f"{source}: {dpath} has {vals.size} values, expected one")
    unit = _unit(units) or "m"
    try:
        return parse_length_um(f"{value!r}{unit}")
    except ParameterError as e:
        raise FileFormatError(f"{source}: {dpath} = {value:g} {unit}: {e}") from None


def _first(f, paths, source):
    for p in paths:
        v = read_length_um(f, p, source)
        if v is not None:
            return v, p
    return None, None


def scan_geometry(f: h5py.File, source: str, meta: dict, *, fmt: str, entry: str = ""):
    """:func:`cone_geometry` for a reader that is opening ``f``: its ``info`` and the
    geometry (as a dict) go into ``meta``; on an error ``f`` is closed before it is
    raised. Returns the ConeGeometry or None."""
    try:
        geometry, info = cone_geometry(f, source, fmt=fmt, entry=entry)
    except BaseException:
        f.close()
        raise
    meta.update(info)
    if geometry is not None:
        meta["geometry"] = geometry.to_dict()
    return geometry


def cone_geometry(f: h5py.File, source: str, *, fmt: str, entry: str = ""):
    """``(ConeGeometry or None, info)`` from the distances ``f`` records; ``info``
    says which fields were used (for ``Scan.metadata``). ``fmt``: "nxtomo" (with
    the NXentry path ``entry``) or "dxchange"."""
    from ..recon._geometry import ConeGeometry

    if fmt == "nxtomo":
        inst = f"{entry}/instrument"
        src_paths = [f"{inst}/source/distance"]
        try:
            group = f.get(inst)
            if isinstance(group, h5py.Group):
                for k in group:
                    g = group.get(k)
                    nx = g.attrs.get("NX_class", b"") if isinstance(g, h5py.Group) else b""
                    nx = nx.decode() if isinstance(nx, bytes) else str(nx)
                    if nx == "NXsource" and f"{g.name}/distance" not in src_paths:
                        src_paths.append(f"{g.name}/distance")
        except (OSError, KeyError, RuntimeError, ValueError):
            pass
        det_paths = [f"{inst}/detector/distance"]
        px_paths = [f"{inst}/detector/x_pixel_size"]
    else:
        inst = "/measurement/instrument"
        src_paths = [f"{inst}/source/distance", f"{inst}/source/geometry/translation/distances"]
        det_paths = [
            f"{inst}/sample/detector_distance",
            f"{inst}/sample_motor_stack/detector_distance",
            f"{inst}/detector/geometry/translation/distances",
        ]
        px_paths = [f"{inst}/detection_system/objective/resolution"]
    sod_um, sod_at = _first(f, src_paths, source)
    info: dict = {}
    if sod_um is None or sod_um >= PARALLEL_SOURCE_MM * 1e3:
        if sod_um is not None:
            info["source_distance_mm"] = sod_um / 1e3
        return None, info
    odd_um, odd_at = _first(f, det_paths, source)
    px_um, px_at = _first(f, px_paths, source)
    if px_um is None and fmt == "dxchange":
        phys, phys_at = _first(
            f, [f"{inst}/detector/pixel_size_x", f"{inst}/detector/pixel_size"], source
        )
        if phys is not None:
            mag_ds = f.get(f"{inst}/detection_system/objective/magnification")
            mag = 1.0
            if isinstance(mag_ds, h5py.Dataset):
                try:
                    mag = float(np.asarray(mag_ds[()]).reshape(-1)[0])
                except (OSError, TypeError, ValueError, IndexError):
                    mag = math.nan
            if not (math.isfinite(mag) and mag > 0):
                raise FileFormatError(f"{source}: objective magnification {mag!r} is not > 0")
            px_um, px_at = phys / mag, f"{phys_at} / objective magnification {mag:g}"
    missing = [
        n
        for n, v in (("sample-detector distance", odd_um), ("detector pixel size", px_um))
        if v is None
    ]
    if missing:
        warnings.warn(
            f"{source}: a source distance is recorded ({sod_at}) but no "
            + " and no ".join(missing)
            + "; read as parallel beam (give the cone geometry with [geometry])",
            ScintomoWarning,
            stacklevel=3,
        )
        return None, {"source_distance_mm": sod_um / 1e3}
    try:
        geo = ConeGeometry(sod_um / 1e3, (sod_um + odd_um) / 1e3, px_um)
    except ParameterError as e:
        raise FileFormatError(
            f"{source}: the recorded distances make no cone geometry: {e}"
        ) from None
    info = {
        "geometry_from": {"source_object": sod_at, "object_detector": odd_at, "pixel_size": px_at}
    }
    return geo, info
