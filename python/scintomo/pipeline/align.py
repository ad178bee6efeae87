"""The drift pre-pass: per-view shifts found on a band of rows before the blocks run.

``[alignment] compute = true``: the band of ``rows`` detector rows around
``row`` (a fraction of the height) is read and corrected as a block is (every
step up to the -log, beam hardening and stripes included, the shifts excepted),
optionally binned, and aligned by :func:`scintomo.alignment.align_projections`
(Gürsoy et al. 2017, iterated reconstruction and re-projection). The shifts go
to ``<name>_alignment.json`` beside the volume, with how they were found, and
a plot ``<name>_alignment.png`` for a person to check; the run then undoes them
in every block as it undoes a given ``[alignment] shifts`` file, whose content
(SHA-256) the volume's provenance records. A rerun with the same scan and the
same settings reuses the file instead of aligning again, so an interrupted run
resumes into its volume.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import numpy as np

from ..exceptions import ParameterError
from .config import PipelineConfig

log = logging.getLogger("scintomo.pipeline")

__all__ = ["alignment_paths", "resolve_alignment"]

#: The sections whose settings shape the band the shifts are found on.
_UPSTREAM = ("input", "flatfield", "zinger", "deconv", "phase", "distortion", "beamhardening")


def alignment_paths(cfg: PipelineConfig, scan_path) -> dict:
    """Where the pre-pass writes: ``{"json": ..., "plot": ...}`` beside the volume."""
    from .write import output_paths

    p = output_paths(cfg, scan_path)
    return {
        "json": p["folder"] / f"{p['name']}_alignment.json",
        "plot": p["folder"] / f"{p['name']}_alignment.png",
    }


def _band(cfg: PipelineConfig, height: int) -> tuple[int, int]:
    rows = min(cfg.alignment.rows, height)
    mid = int(round(cfg.alignment.row * (height - 1)))
    r0 = min(max(0, mid - rows // 2), height - rows)
    return r0, r0 + rows


def _key(cfg: PipelineConfig, scan, band) -> dict:
    """What the shifts depend on: the scan's files, the steps before the alignment, the
    band and the pre-pass's settings."""
    from .provenance import _content_identity, _scan_identity

    al = cfg.alignment
    key = {
        "scan": _scan_identity(scan),
        "band_rows": list(band),
        "binning": al.binning,
        "iterations": al.iterations,
        "tol_px": al.tol,
        "max_shift_px": al.max_shift,
        "center_px": cfg.center.value,
        "center_method": cfg.center.method,
        "steps": {s: dataclasses.asdict(getattr(cfg, s)) for s in _UPSTREAM},
    }
    for section, name in (("deconv", "psf"), ("distortion", "model")):
        f = key["steps"][section][name]
        if f:
            key["steps"][section][name] = _content_identity(f)
    from .._json import to_jsonable

    # as the file gives it back: non-finite numbers as null, anything else as text
    return json.loads(json.dumps(to_jsonable(key), default=str))


def _bin(data: np.ndarray, b: int) -> np.ndarray:
    """Mean of b x b pixels of each view (rows and columns that do not fill a bin dropped)."""
    if b == 1:
        return data
    n, h, w = data.shape
    h2, w2 = h // b, w // b
    return data[:, : h2 * b, : w2 * b].reshape(n, h2, b, w2, b).mean(axis=(2, 4), dtype=np.float64)


def _recorded(path, key) -> bool:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and d.get("found_by", {}).get("key") == key


def resolve_alignment(cfg: PipelineConfig, scan, *, n_threads=None) -> PipelineConfig:
    """``cfg`` itself without ``[alignment] compute``; with it, a copy whose
    ``[alignment] shifts`` is the pre-pass's file (made now, or reused when an earlier
    run made it from the same scan and settings)."""
    al = cfg.alignment
    if not al.compute:
        return cfg
    if al.shifts:
        raise ParameterError("alignment: give shifts (a file) or compute = true, not both")
    from .geometry import cone_plan

    if cone_plan(cfg, scan) is not None:
        raise ParameterError(
            "alignment.compute re-projects in parallel beam; for a cone-beam scan find the "
            "shifts with scintomo.alignment.align_projections (or another tool) and give them "
            "as [alignment] shifts"
        )
    n, h, w = scan.shape
    band = _band(cfg, h)
    base = dataclasses.replace(cfg, alignment=dataclasses.replace(al, compute=False, shifts=""))
    paths = alignment_paths(cfg, scan.path)
    key = _key(base, scan, band)
    resolved = dataclasses.replace(
        cfg, alignment=dataclasses.replace(al, compute=False, shifts=str(paths["json"]))
    )
    if _recorded(paths["json"], key):
        log.info("alignment: shifts of an earlier run with these settings, %s", paths["json"])
        return resolved
    alignment, center = _align_band(base, scan, band, n_threads)
    found_by = {
        "method": "scintomo.alignment.align_projections (Gürsoy et al. 2017) on a band",
        "center_px": center,
        "key": key,
    }
    alignment.save(paths["json"], extra={"found_by": found_by})
    _plot(alignment, scan.theta, paths["plot"], band)
    from . import compute

    compute._SHIFTS_CACHE.pop(str(paths["json"]), None)  # a file rewritten under its name
    log.info(
        "alignment: %d iterations on rows %d:%d, largest shift %.2f px -> %s",
        alignment.iterations,
        *band,
        float(np.abs(alignment.shifts).max(initial=0.0)),
        paths["json"],
    )
    return resolved


def _align_band(base: PipelineConfig, scan, band, n_threads):
    from ..alignment import Alignment, align_projections
    from .compute import _load_psf, preprocess
    from .plan import halo_rows
    from .read import read_block

    psf = _load_psf(base.deconv.psf) if base.deconv.psf else None
    halo = halo_rows(base, psf)
    data = preprocess(read_block(scan, *band, halo=halo), base, n_threads=n_threads)
    center = base.center.value
    if math.isnan(center):
        try:
            from ..recon import find_center
        except ImportError as e:
            raise ParameterError(
                f"alignment.compute needs the rotation axis and scintomo.recon (to find it) is "
                f"not in this build: {e}; pass --rotation-axis"
            ) from None
        center = float(find_center(data, scan.theta, method=base.center.method))
    al = base.alignment
    b = int(al.binning)
    binned = np.asarray(_bin(data, b), dtype=np.float32)
    found = align_projections(
        binned,
        scan.theta,
        center=(center - (b - 1) / 2) / b,
        iterations=al.iterations,
        tol=al.tol / b,
        max_shift=al.max_shift / b if al.max_shift > 0 else None,
        progress_bar=None if base.run.progress else False,
    )
    return (
        Alignment(
            found.shifts * b,
            found.iterations,
            found.converged,
            tuple(u * b for u in found.updates),
        ),
        float(center),
    )


def _plot(alignment, theta, path, band) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    fig = alignment.plot(theta=theta)
    fig.suptitle(f"drift found on detector rows {band[0]}:{band[1]}", fontsize=9)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
