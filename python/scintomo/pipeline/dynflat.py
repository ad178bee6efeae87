"""The dynamic flat-field pre-pass: eigen flats and weights fitted once, on a band of rows.

Van Nieuwenhove et al. (2015) fit each projection's weights on the whole
projection, downsampled. Fitted again on every block of rows, the fit costs
the run once per block (a derivative-free minimisation per projection, several
times the block's reconstruction) and each block gets weights of its own, so
neighbouring blocks can disagree. ``[flatfield] dynamic_rows`` > 0 fits them
once instead: on a band of that many central rows the flat series is
decomposed (its eigen flats written as combinations of the flats, the
``basis``) and each projection's weights fitted as
:func:`scintomo.flatfield.dynamic` does; every block then builds its rows'
eigen flats from the same basis and divides by its flats (no fit). Basis and
weights go to ``<name>_dynamic_flat.json`` beside the volume (its SHA-256 into
the volume's provenance); a rerun with the same scan and settings reuses it.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from .config import PipelineConfig

log = logging.getLogger("scintomo.pipeline")

__all__ = ["dynamic_flat_path", "resolve_dynamic_flat"]


def dynamic_flat_path(cfg: PipelineConfig, scan_path):
    """Where the pre-pass writes its basis and weights, beside the volume."""
    from .write import output_paths

    p = output_paths(cfg, scan_path)
    return p["folder"] / f"{p['name']}_dynamic_flat.json"


def _key(cfg: PipelineConfig, scan, band) -> dict:
    from .._json import to_jsonable
    from .provenance import _scan_identity

    key = {
        "scan": _scan_identity(scan),
        "band_rows": list(band),
        "flatfield": dataclasses.asdict(cfg.flatfield),
        "zinger": dataclasses.asdict(cfg.zinger),
    }
    return json.loads(json.dumps(to_jsonable(key), default=str))


def resolve_dynamic_flat(cfg: PipelineConfig, scan, *, progress=None) -> PipelineConfig:
    """``cfg`` itself unless ``[flatfield] dynamic`` with ``dynamic_rows`` > 0 (and no
    weights file yet); then a copy whose ``dynamic_weights`` is the pre-pass's file."""
    ff = cfg.flatfield
    if not ff.dynamic or ff.dynamic_rows <= 0 or ff.dynamic_weights:
        return cfg
    from .. import flatfield
    from .align import _recorded
    from .compute import dezinger
    from .read import input_corrected, read_block

    if input_corrected(scan):  # flat-fielded already: no flat-field step runs
        return cfg

    n, h, w = scan.shape
    rows = min(ff.dynamic_rows, h)
    r0 = (h - rows) // 2
    band = (r0, r0 + rows)
    path = dynamic_flat_path(cfg, scan.path)
    resolved = dataclasses.replace(
        cfg, flatfield=dataclasses.replace(ff, dynamic_weights=str(path))
    )
    key = _key(cfg, scan, band)
    if _recorded(path, key):
        log.info("dynamic flat-field: weights of an earlier run with these settings, %s", path)
        return resolved
    raw = read_block(scan, *band, halo=0)
    proj, flats = dezinger(raw.projections, raw.flats, cfg)
    fl = np.concatenate(flats) if isinstance(flats, list) else flats
    _, model = flatfield.dynamic(
        proj,
        fl,
        raw.darks,
        n_components=ff.dynamic_components or None,
        downsample=ff.dynamic_downsample,
        progress_bar=progress,
        return_model=True,
    )
    from .._json import write_json

    write_json(
        path,
        {
            **model.to_dict(),
            "n_projections": int(model.weights.shape[0]),
            "n_flats": int(model.basis.shape[0]),
            "weights": model.weights,
            "basis": model.basis,
            "found_by": {"method": "eigen flats and TV weights on a band of rows", "key": key},
        },
        indent=None,
    )
    from . import compute

    compute._WEIGHTS_CACHE.pop(str(path), None)  # a file rewritten under its name
    log.info(
        "dynamic flat-field: %d eigen flats, weights fitted on rows %d:%d -> %s",
        model.n_components,
        *band,
        path,
    )
    return resolved
