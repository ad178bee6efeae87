"""TIFF stacks: one 2-D TIFF per frame in a folder, as many detectors save them.

Layout read (names as tomopy-cli and most beamline software write them)::

    scan/
      proj_00000.tiff  proj_00001.tiff ...   projections (any prefix)
      flat_00000.tiff ...                    flats  (prefix flat, flats, white, bright)
      dark_00000.tiff ...                    darks  (prefix dark, darks)
      angles.txt                             one angle per line (theta.txt,
                                             angles.csv also found); degrees or
                                             radians, see read_angles

Frames are grouped by the name before the trailing ``_NNNNN`` number and
sorted by that number; a gap in the numbering warns, naming the missing
numbers. Flats may also be split into ``flat_before_*`` / ``flat_after_*``
(two series, before and after the scan).

Savu's ``image_test`` layout is read too: projections in a ``tiffs/`` (or
``projections/``, ``proj/``) sub-folder, flats, darks and the angles file
beside it, as numbered frames, in ``flats/`` / ``darks/`` folders or as
(multi-page) ``flat.tif`` / ``dark.tif`` files. Any of them may be given
explicitly instead (``flats=``, ``darks=``, ``angles=``; the CLI's
``--flats``, ``--darks``, ``--angles``): a folder, a TIFF file (all its
pages), a glob pattern (``"scan/flat_*.tif"``) or an array.
"""

from __future__ import annotations

import glob as _glob
import re
import warnings
from pathlib import Path

import numpy as np

from .._validate import check_theta_radians
from ..exceptions import FileFormatError, ParameterError, ScintomoWarning
from ._angles import to_radians, unit_name
from .atomic import atomic_path
from .lazy import ConcatFrames, TiffFrames, common_dtype, quiet_tifffile
from .scan import Scan

_NUMBERED = re.compile(r"^(?P<stem>.*?)[_-]?(?P<num>\d+)\.(?:tif|tiff)$", re.IGNORECASE)
_TIFF = re.compile(r"\.tiff?$", re.IGNORECASE)
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
#: sub-folders that hold the projections in layouts such as Savu's image_test
_PROJ_FOLDERS = ("tiffs", "tiff", "projections", "proj")


def _groups(folder: Path) -> dict[str, list[tuple[int, Path]]]:
    """Numbered TIFFs of ``folder`` by series name, each sorted by number."""
    groups: dict[str, list[tuple[int, Path]]] = {}
    for p in folder.iterdir():
        m = _NUMBERED.match(p.name)
        if m and p.is_file() and not p.name.startswith("."):
            groups.setdefault(m["stem"], []).append((int(m["num"]), p))
    return {k: sorted(v) for k, v in groups.items()}


def _series_files(items: list[tuple[int, Path]], what: str) -> list[Path]:
    """The files of one numbered series; two files with one number is an
    error, a gap in the numbers a warning that names the missing ones."""
    nums = [n for n, _ in items]
    dup = sorted({n for n in nums if nums.count(n) > 1})
    if dup:
        same = [p.name for n, p in items if n == dup[0]]
        raise FileFormatError(f"{what}: several files numbered {dup[0]} ({', '.join(same)})")
    missing = sorted(set(range(nums[0], nums[-1] + 1)) - set(nums))
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        warnings.warn(
            f"{what}: numbered {nums[0]}..{nums[-1]} but {len(missing)} number(s) missing: "
            f"{shown}; the frames are read in order without them",
            ScintomoWarning,
            stacklevel=4,
        )
    return [p for _, p in items]


def read_tiff_pages(path) -> np.ndarray:
    """Every page of a (multi-page) TIFF file as one (F, H, W) array, of a dtype
    that holds them all. ``tifffile.imread`` returns only the first series, so
    a file whose pages differ in dtype (a float page among uint16 ones) would
    come back as its first page alone.

    Raises
    ------
    FileNotFoundError
    FileFormatError
        Not a readable TIFF, pages of different sizes, or of dtypes no one
        dtype holds.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return _pages(path, "frames")


def _pages(path: Path, name: str) -> np.ndarray:
    """Every page of a (multi-page) TIFF file as one (F, H, W) array of a
    dtype that holds them all."""
    import tifffile

    try:
        with quiet_tifffile(), tifffile.TiffFile(path) as tf:
            pages = [np.asarray(pg.asarray()) for pg in tf.pages]
    except Exception as e:  # tifffile raises many kinds on a damaged file
        raise FileFormatError(
            f"{path}: not a readable TIFF file ({type(e).__name__}: {e})"
        ) from None
    if not pages:
        raise FileFormatError(f"{path}: a TIFF file without images")
    pages = [p[np.newaxis] if p.ndim == 2 else p for p in pages]
    if any(p.ndim != 3 or p.shape[1:] != pages[0].shape[1:] for p in pages):
        raise FileFormatError(
            f"{path}: {name} pages of shapes {sorted({p.shape for p in pages})}, expected "
            "2-D images of one size"
        )
    dt = common_dtype([p.dtype for p in pages], where=str(path))
    return np.concatenate([p.astype(dt, copy=False) for p in pages])


def _frames_from(spec, name: str, keywords: tuple[str, ...]):
    """Flats or darks as given by the user: a folder, a TIFF file, a glob pattern
    or an array. Returns (stack, description)."""
    if not isinstance(spec, (str, Path)):
        arr = np.asarray(spec)
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        if arr.ndim != 3 or arr.dtype.kind not in "biuf":
            raise FileFormatError(f"{name}: expected (F, H, W) real frames, got {arr.shape}")
        return arr, "given"
    text = str(spec)
    if any(c in text for c in "*?[") and not Path(text).exists():
        files = sorted(Path(f) for f in _glob.glob(text) if _TIFF.search(f))
        if not files:
            raise FileFormatError(f"{name}: no TIFF file matches {text!r}")
        matches = [_NUMBERED.match(f.name) for f in files]
        if all(matches):  # numbered: in number order, gaps named
            items = sorted((int(m["num"]), f) for m, f in zip(matches, files, strict=True))
            files = _series_files(items, f"{name} {text}")
        return TiffFrames(files, name=name), text
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"{name}: {path}: no such file or folder")
    if path.is_file():
        return _pages(path, name), str(path)
    groups = _groups(path)
    if not groups:
        raise FileFormatError(f"{name}: no numbered TIFF frames (name_00000.tif) in {path}")
    if len(groups) > 1:
        named = [k for k in groups if k.lower() in keywords]
        if len(named) != 1:
            raise FileFormatError(
                f"{name}: several series of frames in {path} ({', '.join(sorted(groups))}); "
                "give one as a pattern, e.g. " + str(path / (sorted(groups)[0] + "_*.tif"))
            )
        groups = {named[0]: groups[named[0]]}
    ((k, items),) = groups.items()
    return TiffFrames(_series_files(items, f"{name} {path / k}_*"), name=name), str(path)


def _found_frames(places: list[Path], keywords: tuple[str, ...], name: str):
    """Flats or darks found beside the projections: numbered series named by a
    keyword, a folder named by one, or a TIFF file named by one. Returns
    (list of (series name, stack)), description) or ([], None)."""
    for folder in places:
        groups = _groups(folder)
        keys = [k for k in groups if k.lower() in keywords]
        if keys:
            keys.sort(key=lambda k: ("after" in k.lower(), k))
            parts = [
                (k, TiffFrames(_series_files(groups[k], f"{name} {folder / k}_*"), name=name))
                for k in keys
            ]
            return parts, str(folder)
        for kw in keywords:
            sub = folder / kw
            if sub.is_dir() and _groups(sub):
                stack, desc = _frames_from(sub, name, keywords)
                return [(kw, stack)], desc
            for ext in (".tif", ".tiff"):
                f = folder / (kw + ext)
                if f.is_file():
                    return [(kw, _pages(f, name))], str(f)
    return [], None


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


def _reopen(spec):
    """A flats/darks option as a Dask worker can pass it to read() again."""
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, Path):
        return str(spec)
    return np.asarray(spec)


def read_tiff_stack(
    path,
    *,
    angles=None,
    angle_unit: str | None = None,
    prefix: str | None = None,
    flats=None,
    darks=None,
) -> Scan:
    """Open a folder of numbered TIFF frames lazily.

    Parameters
    ----------
    path : str or Path
        The folder (or any file in it). A folder whose projections are in a
        ``tiffs/`` (``projections/``, ``proj/``) sub-folder is read as Savu's
        layout (module doc).
    angles : str, Path or array_like, optional
        Angles file (see :func:`read_angles`), or the angles themselves
        **in radians**. Default: ``angles.txt`` (or ``theta.txt``,
        ``angles.csv``) beside the projections.
    angle_unit : {'deg', 'rad'}, optional
        Unit of the angles file (default: its own, see :func:`read_angles`).
    prefix : str, optional
        Name of the projection series when the folder holds several.
    flats, darks : str, Path or array_like, optional
        Where the flats (darks) are, when not beside the projections under
        the usual names: a folder of numbered frames, a (multi-page) TIFF
        file, a glob pattern, or an (F, H, W) array.

    Returns
    -------
    Scan
        ``darks`` is ``None`` (a zero dark) when there are none, with a
        warning if there are flats.

    Warns
    -----
    ScintomoWarning
        A gap in a series' numbering (the missing numbers named); flats but
        no darks; angles whose range fits no scan.

    Raises
    ------
    FileNotFoundError
    FileFormatError
        No frames, several candidate projection series, frames of different
        sizes or of dtypes no one dtype holds, unreadable frames, no angles
        file, or a number of angles unlike the number of projections.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise FileFormatError(f"{folder}: not a folder of TIFF frames")

    def has_projections(groups):
        if prefix is not None:
            return prefix in groups
        return any(k.lower() not in _FLAT + _DARK for k in groups)

    proj_folder = folder
    groups = _groups(folder)
    if not has_projections(groups):
        # Savu's image_test: the projections one level down
        for sub in _PROJ_FOLDERS:
            if (folder / sub).is_dir() and has_projections(_groups(folder / sub)):
                proj_folder = folder / sub
                groups = _groups(proj_folder)
                break
    # where flats, darks and angles are looked for: beside the projections,
    # then in the scan folder above a tiffs/ sub-folder
    places = [proj_folder]
    if proj_folder != folder:
        places.append(folder)
    elif folder.name.lower() in _PROJ_FOLDERS:
        places.append(folder.parent)
    others = [k for k in groups if k.lower() not in _FLAT + _DARK]
    if prefix is not None:
        if prefix not in groups:
            raise FileFormatError(
                f"{proj_folder}: no frames named {prefix}_NNNNN.tif(f) (found {sorted(groups)})"
            )
        others = [prefix]
    if not others:
        raise FileFormatError(f"{proj_folder}: no numbered projection TIFFs (name_00000.tiff)")
    if len(others) > 1:
        raise FileFormatError(
            f"{proj_folder}: several series of frames {sorted(others)}; pass prefix="
        )
    projections = TiffFrames(
        _series_files(groups[others[0]], f"projections {proj_folder / others[0]}_*"),
        name="projections",
    )
    hw = projections.shape[1:]

    def frames(spec, keywords, name):
        if spec is not None:
            stack, desc = _frames_from(spec, name, keywords)
            parts = [(name, stack)]
        else:
            parts, desc = _found_frames(places, keywords, name)
        for _, p in parts:
            if p.shape[1:] != hw:
                where = p.files[0] if isinstance(p, TiffFrames) else desc
                raise FileFormatError(f"{where}: {name} are {p.shape[1:]} but projections are {hw}")
        stacks = [p for _, p in parts]
        if not stacks:
            return None, [], None
        return (stacks[0] if len(stacks) == 1 else ConcatFrames(stacks, name=name)), stacks, desc

    flats_spec, darks_spec = flats, darks
    flats, flat_parts, flats_src = frames(flats_spec, _FLAT, "flats")
    darks, _, darks_src = frames(darks_spec, _DARK, "darks")
    if darks is None and flats is not None:
        warnings.warn(
            f"{proj_folder}: flats but no dark frames (looked for dark_NNNNN.tif, darks/, "
            f"dark.tif in {', '.join(map(str, places))}); the darks are taken as zero. Pass "
            "darks= (--darks) if they are elsewhere",
            ScintomoWarning,
            stacklevel=2,
        )
    n = projections.shape[0]
    if angles is None:
        found = [pl / a for pl in places for a in _ANGLE_FILES if (pl / a).exists()]
        if not found:
            raise FileFormatError(
                f"{proj_folder}: no angles file ({', '.join(_ANGLE_FILES)}); pass angles="
            )
        angles_src = str(found[0])
        theta = read_angles(found[0], unit=angle_unit)
    elif isinstance(angles, (str, Path)):
        angles_src = str(angles)
        theta = read_angles(angles, unit=angle_unit)
    else:
        angles_src = "given"
        theta = np.asarray(angles, dtype=np.float64).ravel()
        try:
            check_theta_radians(theta, "angles")
        except ParameterError as e:
            raise ParameterError(f"{e} (or pass an angles file, with its unit)") from None
    if theta.size > n:
        theta = _drop_parked_angles(theta, n, f"{proj_folder}: {angles_src}")
    if theta.size != n:
        raise FileFormatError(
            f"{proj_folder}: {theta.size} angles in {angles_src} but {n} projections"
        )
    series = positions = None
    if len(flat_parts) == 2:
        series, positions = flat_parts, (-0.5, n - 0.5)
    meta = {
        "format": "tiff",
        "prefix": others[0],
        "projections": str(proj_folder),
        "angles": angles_src,
        "flats": flats_src,
        "darks": darks_src,
        "n_flats": 0 if flats is None else flats.shape[0],
        "n_darks": 0 if darks is None else darks.shape[0],
    }
    if projections.mixed_dtypes:
        meta["mixed_dtypes"] = projections.mixed_dtypes

    kw = {
        "format": "tiff",
        "prefix": others[0],
        "angle_unit": angle_unit,
        "angles": angles if isinstance(angles, (str, Path)) or angles is None else theta,
        # what the caller gave (found ones are found again the same way)
        "flats": _reopen(flats_spec),
        "darks": _reopen(darks_spec),
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


def _drop_parked_angles(theta: np.ndarray, n: int, where: str) -> np.ndarray:
    """The ``n`` scan angles of an angles file that also lists the frames taken
    with the sample parked before and after the scan (flats and darks), as
    Savu's ``image_test/angles.txt`` does: 111 values for 91 projections, the
    first angle repeated 10 more times before the scan and the last 10 more
    times after it. Leading and trailing runs of one angle (within 1 % of the
    scan's median step) are collapsed to one value each; when that leaves
    exactly ``n`` angles they are used, with a warning saying what was dropped.
    Anything else is returned unchanged (the caller refuses the count)."""
    if theta.size < 3:
        return theta
    steps = np.abs(np.diff(theta))
    moving = steps[steps > 0]
    if moving.size == 0:
        return theta
    tol = 0.01 * float(np.median(moving))
    same = steps <= tol
    lead = int(np.argmin(same)) if not same.all() else same.size
    trail = int(np.argmin(same[::-1])) if not same.all() else same.size
    if lead + trail >= theta.size - 1:
        return theta
    kept = theta[lead : theta.size - trail]
    if kept.size != n:
        return theta
    warnings.warn(
        f"{where}: {theta.size} angles for {n} projections; the {lead} repeats of the first "
        f"angle and {trail} of the last (frames taken with the sample parked) are dropped",
        ScintomoWarning,
        stacklevel=3,
    )
    return kept
