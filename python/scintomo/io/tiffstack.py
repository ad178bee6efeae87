"""TIFF stacks: one 2-D TIFF per frame in a folder, as many detectors save them.

Layout read (names as tomopy-cli and most beamline software write them)::

    scan/
      proj_00000.tiff  proj_00001.tiff ...   projections (any prefix)
      flat_00000.tiff ...                    flats  (prefix flat, flats, white, bright)
      dark_00000.tiff ...                    darks  (prefix dark, darks)
      angles.txt                             one angle per line, degrees
                                             (theta.txt, angles.csv also found;
                                             a first line "# unit: rad" for radians)

Frames are grouped by the name before the trailing ``_NNNNN`` number and
sorted by that number. Flats may also be split into ``flat_before_*`` /
``flat_after_*`` (two series, before and after the scan).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..exceptions import FileFormatError
from ._angles import to_radians, unit_name
from .atomic import atomic_path
from .lazy import ConcatFrames, TiffFrames
from .scan import Scan

_NUMBERED = re.compile(r"^(?P<stem>.*?)[_-]?(?P<num>\d+)\.(?:tif|tiff)$", re.IGNORECASE)
_FLAT = (
    "flat",
    "flats",
    "white",
    "bright",
    "flat_before",
    "flat_after",
    "flats_before",
    "flats_after",
)
_DARK = ("dark", "darks")
_ANGLE_FILES = ("angles.txt", "theta.txt", "angles.csv", "theta.csv", "angles.dat")


def _groups(folder: Path) -> dict[str, list[Path]]:
    groups: dict[str, list[tuple[int, Path]]] = {}
    for p in folder.iterdir():
        m = _NUMBERED.match(p.name)
        if m and p.is_file() and not p.name.startswith("."):
            groups.setdefault(m["stem"], []).append((int(m["num"]), p))
    return {k: [p for _, p in sorted(v)] for k, v in groups.items()}


def read_angles(path, *, unit: str | None = None) -> np.ndarray:
    """Read an angles file; radians out.

    One value per line or comma separated; ``#`` starts a comment; blank
    lines anywhere and header lines before the first number are skipped.
    The unit: ``unit=`` if given, else a ``# unit: rad`` comment or a header
    naming it (``angles (deg)``), else the unit in which the angles cover a
    scan (about 180 or 360 degrees), else degrees with a warning.

    Raises
    ------
    FileFormatError
        Unreadable file, a non-number after the first number, no angles, a
        non-finite angle, or a stated unit that the range contradicts.
    """
    path = Path(path)
    given = unit_name(unit, where="angle unit")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path}: cannot read the angles file ({e})") from None
    stated = None
    values: list[float] = []
    for n, line in enumerate(text.splitlines(), 1):
        body, _, comment = line.partition("#")
        m = re.search(r"unit\s*[:=]\s*(\w+)", comment)
        if m:
            stated = unit_name(m[1], where=f"{path}: line {n}")
        toks = body.replace(",", " ").split()
        try:
            nums = [float(t) for t in toks]
        except ValueError:
            if values:
                raise FileFormatError(
                    f"{path}: line {n}: {line.strip()!r} is not a list of numbers"
                ) from None
            # a header line: it may name the unit
            u = re.search(r"\b(deg|degrees?|rad|radians?)\b", body, re.IGNORECASE)
            if u and stated is None:
                stated = unit_name(u[1])
            continue
        values.extend(nums)
    if not values:
        raise FileFormatError(f"{path}: no angles in the file")
    theta, _, _ = to_radians(values, source=str(path), given=given, stated=stated)
    return theta


def read_tiff_stack(
    path, *, angles=None, angle_unit: str | None = None, prefix: str | None = None
) -> Scan:
    """Open a folder of numbered TIFF frames lazily.

    Parameters
    ----------
    path : str or Path
        The folder (or any file in it).
    angles : str, Path or array_like, optional
        Angles file, or the angles themselves **in radians**. Default: the
        folder's ``angles.txt`` (or ``theta.txt``, ``angles.csv``).
    angle_unit : {'deg', 'rad'}, optional
        Unit of the angles file (default degrees, or its ``# unit:`` line).
    prefix : str, optional
        Name of the projection series when the folder holds several.

    Raises
    ------
    FileNotFoundError
    FileFormatError
        No frames, several candidate projection series, frames of different
        sizes, no angles file, or a number of angles unlike the number of
        projections.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder")
    groups = _groups(folder)
    flat_keys = [k for k in groups if k.lower() in _FLAT]
    dark_keys = [k for k in groups if k.lower() in _DARK]
    others = [k for k in groups if k not in flat_keys and k not in dark_keys]
    if prefix is not None:
        if prefix not in groups:
            raise FileFormatError(
                f"{folder}: no frames named {prefix}_NNNNN.tif(f) (found {sorted(groups)})"
            )
        others = [prefix]
    if not others:
        raise FileFormatError(f"{folder}: no numbered projection TIFFs (name_00000.tiff)")
    if len(others) > 1:
        raise FileFormatError(f"{folder}: several series of frames {sorted(others)}; pass prefix=")
    projections = TiffFrames(groups[others[0]], name="projections")
    hw = projections.shape[1:]

    def frames(keys, name):
        if not keys:
            return None, []
        parts = [
            TiffFrames(groups[k], name=name) for k in sorted(keys, key=lambda k: ("after" in k, k))
        ]
        for p in parts:
            if p.shape[1:] != hw:
                raise FileFormatError(
                    f"{p.files[0]}: {name} are {p.shape[1:]} but projections are {hw}"
                )
        return (parts[0] if len(parts) == 1 else ConcatFrames(parts, name=name)), parts

    flats, flat_parts = frames(flat_keys, "flats")
    darks, _ = frames(dark_keys, "darks")
    n = projections.shape[0]
    if angles is None:
        found = [folder / a for a in _ANGLE_FILES if (folder / a).exists()]
        if not found:
            raise FileFormatError(
                f"{folder}: no angles file ({', '.join(_ANGLE_FILES)}); pass angles="
            )
        angles_src = str(found[0])
        theta = read_angles(found[0], unit=angle_unit)
    elif isinstance(angles, (str, Path)):
        angles_src = str(angles)
        theta = read_angles(angles, unit=angle_unit)
    else:
        angles_src = "given"
        theta = np.asarray(angles, dtype=np.float64).ravel()
    if theta.size != n:
        raise FileFormatError(f"{folder}: {theta.size} angles in {angles_src} but {n} projections")
    series = positions = None
    if len(flat_parts) > 1:
        series = flat_parts
        positions = (-0.5, n - 0.5)[: len(flat_parts)] if len(flat_parts) == 2 else None
        if positions is None:
            series = None
    meta = {
        "format": "tiff",
        "prefix": others[0],
        "angles": angles_src,
        "n_flats": 0 if flats is None else flats.shape[0],
        "n_darks": 0 if darks is None else darks.shape[0],
    }
    kw = {
        "format": "tiff",
        "prefix": others[0],
        "angle_unit": angle_unit,
        "angles": angles if isinstance(angles, (str, Path)) or angles is None else theta,
    }
    return Scan(projections, flats, darks, theta, str(folder), meta, [], series, positions, kw)


def write_tiff_frames(
    folder, frames, *, prefix: str = "proj", start: int = 0, digits: int = 5
) -> list[Path]:
    """Write each 2-D frame of ``frames`` as ``folder/prefix_NNNNN.tiff``, atomically one by one."""
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, frame in enumerate(np.asarray(frames).reshape((-1, *np.shape(frames)[-2:]))):
        p = folder / f"{prefix}_{start + i:0{digits}d}.tiff"
        with atomic_path(p) as tmp:
            tifffile.imwrite(tmp, frame, photometric="minisblack")
        out.append(p)
    return out


def write_tiff_scan(
    folder, projections, flats=None, darks=None, theta=None, *, flats_after=None
) -> Path:
    """Write a scan as a TIFF-stack folder in the layout :func:`read_tiff_stack` reads."""
    folder = Path(folder)
    write_tiff_frames(folder, projections, prefix="proj")
    if flats_after is not None:
        write_tiff_frames(folder, flats, prefix="flat_before")
        write_tiff_frames(folder, flats_after, prefix="flat_after")
    elif flats is not None:
        write_tiff_frames(folder, flats, prefix="flat")
    if darks is not None:
        write_tiff_frames(folder, darks, prefix="dark")
    if theta is not None:
        with atomic_path(folder / "angles.txt") as tmp:
            np.savetxt(
                tmp,
                np.rad2deg(np.asarray(theta, dtype=np.float64)),
                fmt="%.10g",
                header="unit: deg",
            )
    return folder
