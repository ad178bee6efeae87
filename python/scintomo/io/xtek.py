"""Nikon / X-Tek CT scans: an ``.xtekct`` (or ``.xtekvolume``) text file and
the TIFF projections beside it.

Layout read (as Nikon's CT Pro writes it, and as CIL's ``NikonDataReader``
and TIGRE's ``NikonDataLoader`` read it)::

    scan/
      scan.xtekct            INI text, section [XTekCT]
      scan_0001.tif ...      projections, ``{Name}{InputSeparator}{NNNN}.tif``
      _ctdata.txt            optional: measured angles; three header lines,
                             then "projection  angle(deg)  time" per line

Keys used (lengths in millimetres, angles in degrees): ``Projections``,
``SrcToObject``, ``SrcToDetector``, ``DetectorPixelsX/Y``,
``DetectorPixelSizeX/Y``, ``DetectorOffsetX/Y`` (detector centre off the
source's perpendicular, mm at the detector), ``ObjectOffsetX`` (rotation axis
off it, mm at the object), ``InitialAngle``, ``AngularStep``, ``WhiteLevel``,
``Name``, ``InputSeparator``. Everything else of the section is kept in
``scan.metadata["xtekct"]``.

The instrument's software already subtracts the dark current, so a Nikon
scan has no darks, and usually no flats either: its ``WhiteLevel`` (the grey
value of the unattenuated beam) stands in for them as one constant flat.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import numpy as np

from ..exceptions import FileFormatError, ParameterError
from ..recon._geometry import ConeGeometry
from .lazy import TiffFrames, _FrameStack
from .scan import Scan

_SUFFIXES = (".xtekct", ".xtekvolume")


class ConstantFrames(_FrameStack):
    """``n`` frames of ``(h, w)`` that all hold ``value`` (a white level as a flat)."""

    def __init__(self, value: float, shape: tuple[int, int, int], *, name: str = "flats"):
        self.value = float(value)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(np.float32)
        self.name = name

    def _read(self, frames, rows, cols):
        probe = np.empty((frames.size, *self.shape[1:]), np.bool_)[:, rows, cols]
        return np.full(probe.shape, self.value, self.dtype)

    def __repr__(self) -> str:
        return f"<ConstantFrames {self.name} {self.shape} = {self.value:g}>"


def is_xtek(path) -> bool:
    """True for an X-Tek file (by its content: an ``[XTekCT]`` section)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"[xtekct]" in head.lower() or b"[xtek ct]" in head.lower()


def find_xtek_file(folder: Path) -> Path | None:
    """The one ``.xtekct`` / ``.xtekvolume`` file of a folder, or None."""
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES and p.is_file())
    cts = [p for p in found if p.suffix.lower() == ".xtekct"] or found
    return cts[0] if len(cts) == 1 else None


def _parse(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise FileFormatError(f"{path}: cannot read ({e})") from None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # keep the keys' case for the metadata
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise FileFormatError(
            f"{path}: not an X-Tek CT file, no [XTekCT] section ({type(e).__name__})"
        ) from None
    section = next((s for s in parser.sections() if s.lower().replace(" ", "") == "xtekct"), None)
    if section is None:
        raise FileFormatError(f"{path}: no [XTekCT] section (is it a Nikon .xtekct file?)")
    return dict(parser[section])


class _Keys:
    """Case-insensitive numeric look-ups in the [XTekCT] section, with the
    file named in every error."""

    def __init__(self, params: dict[str, str], path: Path):
        self.params = {k.lower(): v.strip() for k, v in params.items()}
        self.path = path

    def text(self, key: str, default: str | None = None) -> str | None:
        v = self.params.get(key.lower())
        return default if v is None or v == "" else v

    def number(self, key: str, default: float | None = None) -> float:
        v = self.text(key)
        if v is None:
            if default is None:
                raise FileFormatError(f"{self.path}: no {key} in the [XTekCT] section")
            return float(default)
        try:
            x = float(v)
        except ValueError:
            raise FileFormatError(f"{self.path}: {key}={v!r} is not a number") from None
        if not np.isfinite(x):
            raise FileFormatError(f"{self.path}: {key}={v!r} is not finite")
        return x

    def count(self, key: str) -> int:
        x = self.number(key)
        if x != int(x) or x < 1:
            raise FileFormatError(f"{self.path}: {key}={x:g} is not a positive whole number")
        return int(x)


def _ctdata_angles(path: Path, n: int) -> np.ndarray | None:
    """Angles (degrees) of ``_ctdata.txt``: after three header lines, one line
    per projection, "number angle time". Lines that do not start with two
    numbers (headers, blank) are skipped."""
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.replace(",", " ").split()
        try:
            rows.append((int(float(parts[0])), float(parts[1])))
        except (IndexError, ValueError):
            continue
    if len(rows) != n:
        raise FileFormatError(f"{path}: {len(rows)} angles for {n} projections")
    angles = np.array([a for _, a in sorted(rows)], dtype=np.float64)
    if not np.all(np.isfinite(angles)):
        raise FileFormatError(f"{path}: angles that are not finite")
    return angles


def _projection_files(folder: Path, name: str, sep: str, n: int, path: Path) -> list[Path]:
    pattern = re.compile(re.escape(name) + re.escape(sep) + r"(\d+)\.tiff?$", re.IGNORECASE)
    found = {}
    for p in folder.iterdir():
        m = pattern.match(p.name)
        if m and p.is_file():
            found.setdefault(int(m[1]), p)
    if not found:
        raise FileFormatError(
            f"{path}: no projections {name}{sep}NNNN.tif beside it (Name={name!r})"
        )
    nums = sorted(found)
    if len(nums) != n:
        raise FileFormatError(
            f"{path}: Projections={n} but {len(nums)} files {name}{sep}NNNN.tif in {folder}"
        )
    if nums[-1] - nums[0] + 1 != n:
        raise FileFormatError(f"{path}: projection numbers {nums[0]}..{nums[-1]} have gaps")
    return [found[k] for k in nums]


def read_xtek(path, *, flats=None, darks=None, angles=None) -> Scan:
    """Open a Nikon / X-Tek CT scan lazily.

    Parameters
    ----------
    path : str or Path
        The ``.xtekct`` (or ``.xtekvolume``) file, or the folder holding
        exactly one.
    flats, darks : folder, TIFF file, glob pattern or (F, H, W) array, optional
        Measured flats / darks, where the scan has them. Default: the
        ``WhiteLevel`` as one constant flat and no darks (the instrument
        subtracts them).
    angles : (N,) array of radians, optional
        Default: ``_ctdata.txt`` beside the file (measured angles, plus
        ``InitialAngle`` as CIL does), else ``InitialAngle + k AngularStep``.

    Returns
    -------
    Scan
        ``scan.geometry`` is a :class:`~scintomo.recon.ConeGeometry`:
        distances in mm, ``pixel_size`` in micrometres (``DetectorPixelSizeX``
        x 1000), ``center_column`` / ``center_row`` where the ray through the
        rotation axis meets the detector: ``(W - 1) / 2 + (M ObjectOffsetX -
        DetectorOffsetX) / pixel`` and ``(H - 1) / 2 + DetectorOffsetY / pixel``
        (CIL's NikonDataReader: the axis at x = -ObjectOffsetX, the detector
        centre at (-DetectorOffsetX, +DetectorOffsetY) in the source's frame,
        and the image's pixel 0 at the panel's top-right, so columns run
        along -x and rows downward). ``theta`` in radians, in the file's sense
        of rotation.

    Raises
    ------
    FileNotFoundError
    FileFormatError
        Not an X-Tek file, a required key missing or not a number, the
        projections missing or not ``DetectorPixelsY x DetectorPixelsX``, or
        an angles file that does not match.
    """
    from ..io.tiffstack import _frames_from

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        found = find_xtek_file(path)
        if found is None:
            raise FileFormatError(f"{path}: no single .xtekct file in the folder")
        path = found
    params = _parse(path)
    k = _Keys(params, path)
    n = k.count("Projections")
    width, height = k.count("DetectorPixelsX"), k.count("DetectorPixelsY")
    px_x = k.number("DetectorPixelSizeX")
    px_y = k.number("DetectorPixelSizeY", px_x)
    if px_x <= 0 or px_y <= 0:
        raise FileFormatError(f"{path}: detector pixel size {px_x} x {px_y} mm is not positive")
    sod, sdd = k.number("SrcToObject"), k.number("SrcToDetector")
    if not 0 < sod < sdd:
        raise FileFormatError(
            f"{path}: SrcToObject={sod:g} mm and SrcToDetector={sdd:g} mm: need 0 < SrcToObject "
            "< SrcToDetector"
        )
    magnification = sdd / sod
    det_dx, det_dy = k.number("DetectorOffsetX", 0.0), k.number("DetectorOffsetY", 0.0)
    obj_dx = k.number("ObjectOffsetX", 0.0)
    # CIL's NikonDataReader (checked on real Nikon scans, CIL PR #1292): axis at
    # x = -ObjectOffsetX, detector centre at (-DetectorOffsetX, +DetectorOffsetY), panel
    # origin "top-right" (CIL's astra conversion steps columns along -x, rows along -z)
    center_column = (width - 1) / 2.0 + (magnification * obj_dx - det_dx) / px_x
    center_row = (height - 1) / 2.0 + det_dy / px_y
    try:
        geometry = ConeGeometry(
            source_object=sod,
            source_detector=sdd,
            pixel_size=px_x * 1e3,
            center_column=center_column,
            center_row=center_row,
        )
    except ParameterError as e:
        raise FileFormatError(f"{path}: {e}") from None
    if abs(px_y - px_x) > 1e-6 * px_x:
        raise FileFormatError(
            f"{path}: non-square pixels ({px_x} x {px_y} mm); the cone geometry takes one pitch"
        )

    name = k.text("Name", path.stem)
    sep = k.text("InputSeparator", "_")
    files = _projection_files(path.parent, name, sep, n, path)
    projections = TiffFrames(files, name="projections")
    if projections.shape[1:] != (height, width):
        raise FileFormatError(
            f"{files[0]}: projections are {projections.shape[1:]} (rows, columns) but "
            f"{path.name} says DetectorPixelsY x X = {height} x {width}"
        )

    if angles is not None:
        theta = np.asarray(angles, dtype=np.float64).ravel()
        angles_src = "given"
    else:
        ctdata = path.parent / "_ctdata.txt"
        start = k.number("InitialAngle", 0.0)
        if ctdata.is_file():
            deg = _ctdata_angles(ctdata, n) + start
            angles_src = str(ctdata)
        else:
            deg = start + k.number("AngularStep", 360.0 / n) * np.arange(n)
            angles_src = "InitialAngle + k AngularStep"
        theta = np.deg2rad(deg)
    if theta.size != n:
        raise FileFormatError(f"{path}: {theta.size} angles ({angles_src}) for {n} projections")

    white = k.text("WhiteLevel")
    if flats is not None:
        flat_stack, flats_src = _frames_from(flats, "flats", ("flat", "flats"))
    elif white is not None:
        level = k.number("WhiteLevel")
        if level <= 0:
            raise FileFormatError(f"{path}: WhiteLevel={level:g} must be positive")
        flat_stack, flats_src = ConstantFrames(level, (1, height, width)), "WhiteLevel"
    else:
        flat_stack, flats_src = None, None
    dark_stack, darks_src = (None, None)
    if darks is not None:
        dark_stack, darks_src = _frames_from(darks, "darks", ("dark", "darks"))
    for what, s in (("flats", flat_stack), ("darks", dark_stack)):
        if s is not None and tuple(s.shape[1:]) != (height, width):
            raise FileFormatError(f"{path}: {what} are {s.shape[1:]}, projections {height, width}")

    meta = {
        "format": "xtek",
        "xtekct": params,
        "projections": str(path.parent),
        "angles": angles_src,
        "flats": flats_src,
        "darks": darks_src,
        "white_level": None if white is None else k.number("WhiteLevel"),
        "geometry": geometry.to_dict(),
        "pixel_size_um": px_x * 1e3,
        "n_flats": 0 if flat_stack is None else flat_stack.shape[0],
        "n_darks": 0 if dark_stack is None else dark_stack.shape[0],
    }
    for key, unit in (("XraykV", "kvp"), ("XrayuA", "current_ua")):
        v = k.text(key)
        if v is not None:
            meta[unit] = k.number(key)
    kw = {
        "format": "xtek",
        "flats": flats if isinstance(flats, (str, Path)) or flats is None else np.asarray(flats),
        "darks": darks if isinstance(darks, (str, Path)) or darks is None else np.asarray(darks),
        "angles": None if angles is None else theta,
    }
    return Scan(
        projections,
        flat_stack,
        dark_stack,
        theta,
        str(path),
        meta,
        open_kwargs=kw,
        geometry=geometry,
    )
