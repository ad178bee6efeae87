"""NeXus NXtomo (HDF5): one detector dataset with every frame, told apart by
``image_key`` (0 projection, 1 flat, 2 dark, 3 invalid), angles in degrees
(unless the dataset's ``units`` says radians).

The application definition puts them at ``/entry/instrument/detector/data``,
``.../image_key`` and ``/entry/sample/rotation_angle``; beamline files (e.g.
Diamond's) keep the same ideas under other names, often behind HDF5 external
links. :func:`read_nxtomo` takes explicit paths, or finds them: an NXentry
with ``definition = NXtomo``, else an NXdetector holding ``data`` and
``image_key``; angles from ``sample/rotation_angle``, else from the NXdata
group's ``axes`` or a sibling dataset named like an angle (``*theta*``,
``*rotation*``, ``*angle*``) with one value per frame.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..exceptions import FileFormatError
from ._angles import stated_unit, to_radians, unit_name
from ._distances import scan_geometry
from ._hdf5 import open_hdf5
from ._meta import scalars
from .lazy import FrameSelection, _runs
from .scan import Scan

IMAGE_KEYS = {"projection": 0, "flat": 1, "dark": 2, "invalid": 3}


def _s(x) -> str:
    if isinstance(x, bytes):
        return x.decode(errors="replace")
    if isinstance(x, np.ndarray) and x.shape == ():
        return _s(x[()])
    return str(x)


def _walk_groups(f: h5py.File):
    """Hard-linked groups of the file (external and soft links not followed), breadth first."""
    todo = [f]
    seen = set()
    while todo:
        g = todo.pop(0)
        yield g
        for k in g:
            if not isinstance(g.get(k, getlink=True), h5py.HardLink):
                continue
            obj = g.get(k)
            if isinstance(obj, h5py.Group) and h5py.h5o.get_info(obj.id).addr not in seen:
                seen.add(h5py.h5o.get_info(obj.id).addr)
                todo.append(obj)


def _check_link(path: Path, f: h5py.File, dpath: str) -> None:
    """Give a clear error for a dangling external link."""
    parent, _, name = dpath.strip("/").rpartition("/")
    g = f[parent] if parent else f
    if name not in g:
        raise FileFormatError(f"{path}: no dataset {dpath!r}")
    link = g.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        target = Path(link.filename)
        target = target if target.is_absolute() else path.parent / target
        if not target.exists():
            raise FileFormatError(
                f"{path}: {dpath} is an external link into {link.filename!r}, which is missing "
                f"(looked for {target}); keep the scan's folder layout"
            )


def _get(path: Path, f: h5py.File, dpath: str) -> h5py.Dataset:
    _check_link(path, f, dpath)
    try:
        d = f[dpath]
    except (KeyError, OSError) as e:
        raise FileFormatError(f"{path}: cannot open {dpath!r} ({e})") from None
    if not isinstance(d, h5py.Dataset):
        raise FileFormatError(f"{path}: {dpath!r} is a group, not a dataset")
    return d


def _resolvable(f: h5py.File, path: str, kind: type = h5py.Dataset) -> bool:
    """Whether ``path`` opens (external links included) as a ``kind`` (dataset or group)."""
    try:
        return isinstance(f[path], kind)
    except (KeyError, OSError, ValueError):
        return False


def _entry_paths(f: h5py.File, base: str):
    """(data, image_key, angles or None) dataset paths of the NXtomo entry at ``base``."""
    ang = f"{base}/sample/rotation_angle"
    return (
        f"{base}/instrument/detector/data",
        f"{base}/instrument/detector/image_key",
        ang if ang.lstrip("/") in f else None,
    )


def _find_paths(path: Path, f: h5py.File):
    """(data, image_key, angles or None) dataset paths, found by the rules in the module doc."""
    groups = list(_walk_groups(f))
    for g in groups:
        if (
            _s(g.attrs.get("NX_class", "")) == "NXentry"
            and _s(g.attrs.get("definition", "")) == "NXtomo"
        ):
            return _entry_paths(f, g.name.rstrip("/"))
    for g in groups:
        if g.name != "/" and "definition" in g and _s(g["definition"][()]) == "NXtomo":
            return _entry_paths(f, g.name.rstrip("/"))
    dets = [
        g
        for g in groups
        if _s(g.attrs.get("NX_class", "")) == "NXdetector" and "data" in g and "image_key" in g
    ]
    # a file may name several detectors; the one whose frames can be opened and are images
    for g in dets:
        if _resolvable(f, f"{g.name}/data") and f[f"{g.name}/data"].ndim == 3:
            return f"{g.name}/data", f"{g.name}/image_key", None
    if len(dets) == 1:
        return f"{dets[0].name}/data", f"{dets[0].name}/image_key", None
    if dets:
        problems = []
        for g in dets:
            try:
                _get(path, f, f"{g.name}/data")
                problems.append(f"{g.name}/data is not 3-D")
            except FileFormatError as e:
                problems.append(str(e).split(": ", 1)[-1])
        raise FileFormatError(f"{path}: no detector's frames can be opened: " + "; ".join(problems))
    raise FileFormatError(
        f"{path}: no NXtomo entry and no NXdetector group with 'data' and 'image_key' "
        "(pass data_path= and image_key_path=)"
    )


def _link_target(f: h5py.File, dpath: str):
    parent, _, name = dpath.strip("/").rpartition("/")
    link = (f[parent] if parent else f).get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        return ("external", link.filename, link.path)
    try:
        return ("object", h5py.h5o.get_info(f[dpath].id).addr)
    except (KeyError, OSError):
        return ("missing", dpath)


def _find_angles(
    f: h5py.File, n_frames: int, n_projections: int, data_path: str | None = None
) -> str | None:
    """Angle dataset with one value per frame (or per projection), in the
    places NeXus files keep it."""
    cands: list[str] = []
    groups = list(_walk_groups(f))
    for g in groups:
        if "rotation_angle" in g:
            cands.append(f"{g.name}/rotation_angle")
    nxdata = [g for g in groups if _s(g.attrs.get("NX_class", "")) == "NXdata" and "data" in g]
    # the NXdata group showing the detector's own frames first (a file may have several)
    want = _link_target(f, data_path) if data_path else None
    nxdata.sort(key=lambda g: _link_target(f, f"{g.name}/data") != want)
    for g in nxdata:
        for a in np.atleast_1d(g.attrs.get("axes", [])):
            a = _s(a)
            if a and a != ".":
                cands.append(f"{g.name}/{a}")
        for k in g:
            if any(w in k.lower() for w in ("theta", "rotation", "angle")):
                cands.append(f"{g.name}/{k}")
    for c in cands:
        if _resolvable(f, c):
            d = f[c]
            if (
                d.ndim == 1
                and d.shape[0] in (n_frames, n_projections)
                and np.issubdtype(d.dtype, np.number)
            ):
                return c
    return None


def read_nxtomo(
    path,
    *,
    data_path: str | None = None,
    image_key_path: str | None = None,
    angles_path: str | None = None,
    angle_unit: str | None = None,
) -> Scan:
    """Open a NeXus NXtomo file lazily.

    Parameters
    ----------
    path : str or Path
        The ``.nxs`` / ``.h5`` file. External links are resolved relative to
        its folder.
    data_path, image_key_path, angles_path : str, optional
        Dataset paths inside the file; found automatically when omitted.
    angle_unit : {'deg', 'rad'}, optional
        Unit of the stored angles; default: the dataset's ``units``
        attribute, else the unit in which the angles cover a scan (about 180
        or 360 degrees), else degrees (NXtomo's convention) with a warning.

    Returns
    -------
    Scan
        ``projections`` / ``flats`` / ``darks`` are lazy views of the frames
        with image_key 0 / 1 / 2 (frames with key 3 are dropped);
        ``flat_series`` splits the flats into the series taken at different
        times, with ``flat_positions`` their place in the projection
        sequence (e.g. ``[-0.5, N - 0.5]`` for flats before and after).
        ``theta`` is in radians. ``geometry`` is a
        :class:`~scintomo.recon.ConeGeometry` where the file records the
        NXsource ``distance`` (under 10 m) with the detector's ``distance``
        and ``x_pixel_size`` (units from their ``units`` attributes), else
        None (parallel beam).

    Raises
    ------
    FileNotFoundError
    FileFormatError
        Not HDF5 or truncated, a dataset or linked file missing, image_key
        and data of different lengths, no projections, a number of angles
        that fits neither the frames nor the projections, or a ``units``
        attribute that the angles' range contradicts.
    """
    path = Path(path)
    given = unit_name(angle_unit)
    f = open_hdf5(path)
    try:
        if data_path is None or image_key_path is None:
            d_p, k_p, a_p = _find_paths(path, f)
            data_path = data_path or d_p
            image_key_path = image_key_path or k_p
            angles_path = angles_path or a_p
        data = _get(path, f, data_path)
        if data.ndim != 3:
            raise FileFormatError(
                f"{path}: {data_path} has shape {data.shape}, expected (frame, row, column)"
            )
        keys = np.asarray(_get(path, f, image_key_path)[()]).astype(np.int64).ravel()
        if keys.size != data.shape[0]:
            raise FileFormatError(
                f"{path}: {image_key_path} has {keys.size} entries but {data_path} has "
                f"{data.shape[0]} frames"
            )
        bad = ~np.isin(keys, [0, 1, 2, 3])
        if bad.any():
            raise FileFormatError(
                f"{path}: {image_key_path} has values {np.unique(keys[bad])} (expected 0, 1, 2, 3)"
            )
        proj_idx = np.nonzero(keys == 0)[0]
        flat_idx = np.nonzero(keys == 1)[0]
        dark_idx = np.nonzero(keys == 2)[0]
        if proj_idx.size == 0:
            raise FileFormatError(f"{path}: no projections (image_key 0) in {image_key_path}")
        if angles_path is None:
            angles_path = _find_angles(f, data.shape[0], proj_idx.size, data_path)
        if angles_path is None:
            raise FileFormatError(
                f"{path}: no rotation angles found (no sample/rotation_angle, no angle dataset "
                "with "
                f"{data.shape[0]} values beside the data); pass angles_path="
            )
        ads = _get(path, f, angles_path)
        angles = np.asarray(ads[()], dtype=np.float64).ravel()
        if angles.size == data.shape[0]:
            angles = angles[proj_idx]
        elif angles.size != proj_idx.size:
            raise FileFormatError(
                f"{path}: {angles_path} has {angles.size} angles but the data has "
                f"{data.shape[0]} frames "
                f"of which {proj_idx.size} projections"
            )
        theta, unit, how = to_radians(
            angles,
            source=f"{path}: {angles_path}",
            given=given,
            stated=stated_unit(_s(ads.attrs.get("units", ""))),
        )
    except FileFormatError:
        f.close()
        raise
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as e:
        f.close()
        raise FileFormatError(f"{path}: damaged or truncated HDF5 file ({e})") from None

    projections = FrameSelection(data, proj_idx, name="projections")
    flats = FrameSelection(data, flat_idx, name="flats") if flat_idx.size else None
    darks = FrameSelection(data, dark_idx, name="darks") if dark_idx.size else None
    series, positions = None, None
    if flat_idx.size:
        series, positions = [], []
        for a, b, _ in _runs(flat_idx):
            series.append(FrameSelection(data, np.arange(a, b), name="flats"))
            # the series sits between the projections taken before and after it
            positions.append(float(np.searchsorted(proj_idx, a)) - 0.5)
    meta = {
        "format": "nxtomo",
        "data_path": data_path,
        "image_key_path": image_key_path,
        "angles_path": angles_path,
        "angle_unit": unit,
        "angle_unit_from": how,
        "angle_unit_assumed": how in ("range", "assumed"),
        "n_flats": int(flat_idx.size),
        "n_darks": int(dark_idx.size),
        "n_invalid": int(np.sum(keys == 3)),
        "flat_positions": positions,
    }
    entry = "/" + data_path.strip("/").split("/")[0]
    try:
        for sub in ("sample", "instrument/source", "instrument/detector"):
            if _resolvable(f, f"{entry}/{sub}", h5py.Group):
                meta.update(scalars(f[f"{entry}/{sub}"], limit=50))
        for name in ("start_time", "end_time", "title"):
            for cand in (f"entry/{name}", f"entry1/{name}"):
                if _resolvable(f, cand):
                    meta[name] = _s(f[cand][()])
                    break
    except (OSError, KeyError, RuntimeError, TypeError, ValueError):
        pass  # a damaged metadata group: the frames and angles were read, the rest is a courtesy
    geometry = scan_geometry(f, str(path), meta, fmt="nxtomo", entry=entry)
    kw = {
        "format": "nxtomo",
        "data_path": data_path,
        "image_key_path": image_key_path,
        "angles_path": angles_path,
        "angle_unit": angle_unit,
    }
    return Scan(
        projections,
        flats,
        darks,
        theta,
        str(path),
        meta,
        [f],
        series,
        None if positions is None else tuple(positions),
        kw,
        geometry=geometry,
    )


def write_nxtomo(
    path, projections, flats=None, darks=None, theta=None, *, flats_after=None
) -> Path:
    """Write a minimal NXtomo file atomically (angles in degrees): frames
    ordered darks, flats, projections, ``flats_after``. For tests and examples."""
    from .atomic import atomic_path

    path = Path(path)
    parts, keys = [], []
    for arr, key in ((darks, 2), (flats, 1), (projections, 0), (flats_after, 1)):
        if arr is not None:
            parts.append(np.asarray(arr))
            keys.append(np.full(len(arr), key, np.int32))
    frames = np.concatenate(parts)
    key = np.concatenate(keys)
    ang = np.zeros(frames.shape[0])
    if theta is not None:
        ang[key == 0] = np.rad2deg(np.asarray(theta, dtype=np.float64))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        e = f.create_group("entry")
        e.attrs["NX_class"] = "NXentry"
        e.attrs["definition"] = "NXtomo"
        det = e.create_group("instrument/detector")
        det.attrs["NX_class"] = "NXdetector"
        det.create_dataset("data", data=frames, chunks=(1, *frames.shape[1:]))
        det.create_dataset("image_key", data=key)
        s = e.create_group("sample")
        s.attrs["NX_class"] = "NXsample"
        ds = s.create_dataset("rotation_angle", data=ang)
        ds.attrs["units"] = "degree"
    return path
