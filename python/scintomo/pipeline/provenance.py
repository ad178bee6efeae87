"""What produced an output, so that a re-run resumes only the same run.

A run records beside its volume (HDF5/Zarr attributes, a JSON file in a TIFF
folder, and each TIFF slice's ImageDescription) a *provenance*: the input's
identity (resolved path, size, modification time and a fingerprint of sampled
content), every parameter that changes the result (flat-field, zingers, PSF
file and deconvolution, stripes, phase, the centre used, the reconstruction,
the rows and shape) and the scintomo version. A re-run continues the blocks
already on disk only when its own provenance is the same; otherwise it
refuses (:class:`~scintomo.exceptions.StaleOutputError`, naming what differs)
unless told to overwrite.

Parameters that do not change the result are left out: threads, block size
(a resumed run keeps the recorded one, so block edges are where they were),
Dask or not, progress bars, memory budget, output folder.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
from pathlib import Path

from .config import PipelineConfig

__all__ = ["differences", "file_identity", "record", "stale_message"]

#: bytes read at each of the sampled offsets of the fingerprint
SAMPLE_BYTES = 1 << 16
#: offsets sampled per file (evenly spaced, plus the last bytes)
N_SAMPLES = 16


def _mtime(ns: int) -> str:
    t = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)
    return t.isoformat(timespec="microseconds")


def _sample(h, path: Path, size: int) -> None:
    offsets = {size * k // N_SAMPLES for k in range(N_SAMPLES)} | {max(0, size - SAMPLE_BYTES)}
    with open(path, "rb") as f:
        for off in sorted(offsets):
            f.seek(off)
            h.update(f.read(SAMPLE_BYTES))


def file_identity(path, files=None) -> dict:
    """Identity of a scan file or folder: resolved path, size (bytes), modification time
    (UTC, ISO 8601) and ``fingerprint``, a SHA-256 of the size and 16 samples of 64 KiB of
    the content (of every file's name, size and time, and samples of the first, middle and
    last files, for a folder). Cheap: about 1 MB read whatever the size of the scan.
    ``files``: the scan's files, where it is several beside others (a Nikon .xtekct and
    its TIFFs): those, as a folder's."""
    p = Path(path).resolve()
    h = hashlib.sha256()
    if p.is_dir() or files is not None:
        if files is None:
            files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        else:
            files = sorted(Path(f).resolve() for f in files)
            p = Path(os.path.commonpath([str(f) for f in files]))
            p = p if p.is_dir() else p.parent
        stats = [f.stat() for f in files]
        for f, st in zip(files, stats, strict=True):
            h.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        for i in sorted({0, len(files) // 2, len(files) - 1}) if files else ():
            _sample(h, files[i], stats[i].st_size)
        size = sum(st.st_size for st in stats)
        mtime = max((st.st_mtime_ns for st in stats), default=p.stat().st_mtime_ns)
    else:
        st = p.stat()
        size, mtime = st.st_size, st.st_mtime_ns
        h.update(str(size).encode())
        _sample(h, p, size)
    return {"path": str(p), "size": int(size), "mtime": _mtime(mtime), "fingerprint": h.hexdigest()}


def _scan_identity(scan) -> dict:
    """The scan's file, or for a Nikon scan the .xtekct with its projections and angles
    file (the .xtekct alone would not see a rewritten projection)."""
    files = getattr(scan.projections, "files", None)
    if scan.metadata.get("format") == "xtek" and files:
        extra = [Path(scan.path)]
        ct = Path(scan.path).parent / "_ctdata.txt"
        if ct.exists():
            extra.append(ct)
        return {
            **file_identity(scan.path, [*extra, *files]),
            "path": str(Path(scan.path).resolve()),
        }
    return file_identity(scan.path)


def _content_identity(path) -> dict:
    """A small file (a PSF) by its content: resolved path and SHA-256 of every byte (with a
    ``.npy``'s ``.json`` metadata)."""
    p = Path(path).resolve()
    h = hashlib.sha256(p.read_bytes())
    side = p.with_suffix(".json")  # a .npy PSF's metadata (pixel size) lives beside it
    if p.suffix.lower() == ".npy" and side.exists():
        h.update(side.read_bytes())
    return {"path": str(p), "sha256": h.hexdigest()}


def _distortion(cfg: PipelineConfig):
    from .compute import distortion_model

    return distortion_model(cfg)


def _bh_model(cfg: PipelineConfig):
    from .compute import beam_hardening_model

    return beam_hardening_model(cfg)


def _backend(cfg: PipelineConfig, recon_fn) -> str:
    """The reconstruction backend that runs: 'auto' is the built-in one whatever is installed
    (scintomo.recon.reconstruct), so 'auto' and 'builtin' are the same result."""
    if recon_fn is None and cfg.recon.backend == "auto":
        return "builtin"
    return cfg.recon.backend


def record(
    cfg: PipelineConfig,
    scan,
    *,
    center: float,
    rows: tuple[int, int],
    shape: tuple,
    corrected: str | None = None,
    recon_fn=None,
    geometry: dict | None = None,
    half_acquisition: dict | None = None,
) -> dict:
    """The provenance of the volume ``cfg`` makes of ``scan``'s rows ``rows`` (JSON-ready).

    Parameters
    ----------
    center : float, pixels
        The rotation centre used (given or found).
    rows : (int, int)
        Detector rows ``start:stop``.
    shape : tuple of int
        (slices, y, x) of the volume.
    corrected : {None, 'ratio', '-log'}
        What the input had already been through (an output of ``scintomo flatfield``).
    geometry : dict, optional
        Cone beam: the geometry and volume (:meth:`ConePlan.to_dict`); recorded only then,
        so a parallel run's record is what it was before cone beam existed.
    half_acquisition : dict, optional
        Offset-axis 360-degree scan: axis, overlap, side and stitched width
        (:meth:`HalfAcquisition.to_dict`); recorded only then.
    """
    from .. import __version__

    c = cfg
    import dataclasses

    import numpy as np

    theta = np.ascontiguousarray(scan.theta, dtype=np.float64)
    steps: dict = {
        "input_format": scan.metadata.get("format", c.input.format),
        # every reader option (angle unit, where flats or angles are...), and the angles
        # the reader gave: what the scan *is* once read, whatever told the reader
        "input_options": {
            k: v for k, v in dataclasses.asdict(c.input).items() if k not in ("file", "format")
        },
        # flats, darks or angles read from elsewhere ([input] flats/darks/angles): by identity
        "input_files": {
            k: file_identity(v)
            for k in ("flats", "darks", "angles")
            if isinstance(v := getattr(c.input, k, ""), str) and v and Path(v).exists()
        },
        "theta": {
            "n": int(theta.size),
            "first_rad": float(theta[0]) if theta.size else None,
            "last_rad": float(theta[-1]) if theta.size else None,
            "sha256": hashlib.sha256(theta.tobytes()).hexdigest(),
        },
        "input_corrected": corrected or "",
        "flatfield": {
            "reduce": c.flatfield.reduce,
            "bad_flat": c.flatfield.bad_flat,
            "clip_low": c.flatfield.clip_low,
        },
        "zinger": (
            {"threshold_counts": c.zinger.threshold_counts, "size": c.zinger.size}
            if c.zinger.enabled
            else "off"
        ),
        "deconv": (
            {
                "psf": _content_identity(c.deconv.psf),
                "method": c.deconv.method,
                "options": dict(c.deconv.options),
                "halo_rows": c.deconv.halo_rows,
            }
            if c.deconv.psf
            else "off"
        ),
        "stripes": (
            {"method": c.stripes.method, "options": dict(c.stripes.options)}
            if c.stripes.method
            else "off"
        ),
        "phase": (
            {
                "method": c.phase.method,
                "options": dict(c.phase.options),
                "halo_rows": c.phase.halo_rows,
            }
            if c.phase.method
            else "off"
        ),
        "center_px": float(center),
        "recon": {
            "algorithm": c.recon.algorithm,
            "filter": c.recon.filter,
            "backend": _backend(c, recon_fn),
            # the iterative options are recorded only when used, so that the record of a
            # direct reconstruction is what it was before they existed (its volumes resume)
            **(
                {
                    "iterations": c.recon.iterations,
                    "tv_weight": c.recon.tv_weight,
                    "psf": _content_identity(c.recon.psf) if c.recon.psf else None,
                }
                if c.recon.algorithm in ("sirt", "cgls", "tv")
                else {}
            ),
        },
        "rows": [int(rows[0]), int(rows[1])],
        "shape": [int(s) for s in shape],
    }
    if geometry is not None:
        steps["geometry"] = dict(geometry)
    if half_acquisition is not None:
        steps["half_acquisition"] = dict(half_acquisition)
        steps["recon"] = {"algorithm": "fdk", "filter": c.recon.filter, "backend": "builtin"}
    # the lab steps (issue 18) are recorded only when on, so that the record of a run
    # without them is what it was before they existed (its volumes still resume)
    if c.distortion.model:
        steps["distortion"] = {
            "model": _content_identity(c.distortion.model),
            **_distortion(c).to_dict(),
        }
    if c.alignment.shifts:
        from .compute import alignment_shifts

        sh = alignment_shifts(c)
        steps["alignment"] = {
            "shifts": _content_identity(c.alignment.shifts),
            "max_shift_px": float(np.abs(sh).max(initial=0.0)),
        }
    if c.beamhardening.method:
        steps["beamhardening"] = {"method": c.beamhardening.method, **_bh_model(c).to_dict()}
    if c.flatfield.dynamic:
        steps["flatfield"]["dynamic"] = {
            "n_components": c.flatfield.dynamic_components,
            "downsample": c.flatfield.dynamic_downsample,
            "method": "tv",
        }
        if c.flatfield.dynamic_weights:  # fitted once on a band (pipeline.dynflat)
            steps["flatfield"]["dynamic"] |= {
                "rows": c.flatfield.dynamic_rows,
                "weights": _content_identity(c.flatfield.dynamic_weights),
            }
    # JSON round trip now, so that what is compared is what a file gives back
    return json.loads(
        json.dumps(
            {"scintomo_version": __version__, "input": _scan_identity(scan), **steps},
            allow_nan=True,
        )
    )


def _flat(d, prefix=""):
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out if d else {prefix[:-1]: {}}
    return {prefix[:-1]: d}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


#: entries that are digests: a message says that they differ, not their hex
_DIGESTS = ("fingerprint", "sha256")


def _show(a, b) -> tuple[str, str]:
    def one(v, other):
        if isinstance(v, dict):
            return "on"
        if v is _ABSENT:
            return "(absent)"
        if isinstance(v, float) and isinstance(other, float) and f"{v:.6g}" != f"{other:.6g}":
            return f"{v:.6g}"
        return repr(v)

    return one(a, b), one(b, a)


_ABSENT = object()


def differences(old: dict, new: dict) -> list[str]:
    """``'key: old -> new'`` for every entry where two provenance records differ (a step
    turned on or off as one entry; digests as 'differs')."""
    out = []
    for top in list(old) + [k for k in new if k not in old]:
        a, b = old.get(top, _ABSENT), new.get(top, _ABSENT)
        if _same(a, b):
            continue
        if not (isinstance(a, dict) and isinstance(b, dict)):
            x, y = _show(a, b)
            out.append(f"{top}: {x} -> {y}")
            continue
        fa, fb = _flat(a, f"{top}."), _flat(b, f"{top}.")
        for k in list(fa) + [k for k in fb if k not in fa]:
            x, y = fa.get(k, _ABSENT), fb.get(k, _ABSENT)
            if _same(x, y):
                continue
            if k.rsplit(".", 1)[-1] in _DIGESTS:
                out.append(f"{k} differs")
            else:
                sx, sy = _show(x, y)
                out.append(f"{k}: {sx} -> {sy}")
    return out


def stale_message(path, diffs: list[str] | None) -> str:
    """Why ``path`` cannot be resumed (``diffs`` None: it has no provenance record)."""
    how = (
        "; pass --overwrite (config: [output] overwrite = true) to replace it, "
        "or choose another --output-folder"
    )
    if diffs is None:
        return (
            f"{path}: holds a volume with no record of what produced it (an interrupted run "
            f"of an older scintomo?), so it cannot be resumed{how}"
        )
    return (
        f"{path}: was written by a different run ({'; '.join(diffs)}), so it cannot be resumed{how}"
    )
