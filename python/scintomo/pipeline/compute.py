"""Computing a block: raw detector rows to reconstructed slices.

zingers -> flat-field -> deconvolution -> distortion -> drift shifts -> -log
or phase retrieval -> beam hardening -> stripes -> reconstruction, each step the library function that does it; and the
rotation centre, found on a few rows when it is not given.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .. import flatfield
from ..exceptions import ParameterError
from ..io import Scan
from .config import PipelineConfig
from .read import RawBlock, read_block

log = logging.getLogger("scintomo.pipeline")

__all__ = ["compute_block", "preprocess", "remove_zingers"]


def remove_zingers(stack, *, threshold_counts: float, size: int = 3) -> np.ndarray:
    """Replace pixels brighter than their ``size`` x ``size`` median by more than
    ``threshold_counts`` with that median, frame by frame (TomoPy ``remove_outlier``).

    Parameters
    ----------
    stack : (N, H, W) array_like
        Raw frames, counts.

    Returns
    -------
    (N, H, W) ndarray, float32 (the input is not modified)
    """
    from scipy import ndimage

    a = np.asarray(stack, dtype=np.float32)
    med = ndimage.median_filter(a, size=(1, size, size), mode="reflect")
    return np.where(a - med > threshold_counts, med, a).astype(np.float32, copy=False)


_PSF_CACHE: dict = {}


def _load_psf(path: str):
    if path not in _PSF_CACHE:
        from .. import psf as psf_mod  # issue 4

        _PSF_CACHE[path] = psf_mod.load(path)
    return _PSF_CACHE[path]


_BH_CACHE: dict = {}
_DISTORTION_CACHE: dict = {}


def distortion_model(cfg: PipelineConfig):
    """The :class:`scintomo.distortion.DistortionModel` of ``[distortion] model``, or None."""
    path = cfg.distortion.model
    if not path:
        return None
    if path not in _DISTORTION_CACHE:
        from .. import distortion

        m = distortion.load(path)
        if m.shape is None:
            raise ParameterError(
                f"{path}: the model has no frame shape (fitted on dots, not on an image); "
                "its row shift cannot be bounded"
            )
        _DISTORTION_CACHE[path] = m
    return _DISTORTION_CACHE[path]


_SHIFTS_CACHE: dict = {}


def alignment_shifts(cfg: PipelineConfig):
    """The (N, 2) per-view shifts of ``[alignment] shifts``, or None."""
    path = cfg.alignment.shifts
    if not path:
        return None
    if path not in _SHIFTS_CACHE:
        from .. import alignment

        _SHIFTS_CACHE[path] = alignment.load(path).shifts
    return _SHIFTS_CACHE[path]


def _unshift(data, cfg: PipelineConfig):
    """Undo the per-view drift (linear interpolation: a block with its halo gives the
    whole frame's values, which a cubic spline's global prefilter would not)."""
    shifts = alignment_shifts(cfg)
    if shifts is None:
        return data
    if shifts.shape[0] != data.shape[0]:
        raise ParameterError(
            f"{cfg.alignment.shifts}: {shifts.shape[0]} views' shifts for {data.shape[0]} "
            "projections"
        )
    from ..alignment import shift_projections

    return shift_projections(data, shifts, order=1, n_threads=_n_threads(cfg))


def _undistort(data, raw: RawBlock, cfg: PipelineConfig):
    model = distortion_model(cfg)
    if model is None:
        return data
    from .. import distortion

    if model.shape[1] != data.shape[2]:
        raise ParameterError(
            f"{cfg.distortion.model}: fitted on a frame of {model.shape[1]} columns, the scan "
            f"has {data.shape[2]}"
        )
    return distortion.undistort(data, model, first_row=raw.a0, n_threads=_n_threads(cfg))


def beam_hardening_model(cfg: PipelineConfig):
    """The :class:`scintomo.beamhardening.BeamHardening` of ``[beamhardening]``, or None
    (computed once per set of parameters: a spectrum fit takes xraydb look-ups)."""
    from .. import beamhardening as bh

    c = cfg.beamhardening
    if not c.method:
        return None
    key = repr((c.method, sorted(c.options.items()), list(c.coefficients), c.p_max))
    if key not in _BH_CACHE:
        if c.method == "spectrum":
            _BH_CACHE[key] = bh.from_spectrum(**c.options)
        else:
            coeffs = tuple(float(v) for v in c.coefficients)
            _BH_CACHE[key] = bh.BeamHardening(
                coeffs, float("nan"), float(c.p_max), float("nan"), "coefficients"
            )
    return _BH_CACHE[key]


def _beam_hardening(data, cfg: PipelineConfig):
    import warnings

    model = beam_hardening_model(cfg)
    if model is None:
        return data
    with warnings.catch_warnings():
        # values beyond the calibration are counted per block; not repeated block after block
        warnings.simplefilter("ignore")
        return model.apply(data, n_threads=_n_threads(cfg))


_WEIGHTS_CACHE: dict = {}


def dynamic_weights(path: str):
    """(weights (N, K), basis (F, K)) of a dynamic flat-field pre-pass file."""
    if path not in _WEIGHTS_CACHE:
        import json

        from ..exceptions import FileFormatError

        try:
            d = json.loads(open(path).read())
            k = int(d["n_components"])
            w = np.asarray(d["weights"], dtype=np.float64).reshape(int(d["n_projections"]), k)
            b = np.asarray(d["basis"], dtype=np.float64).reshape(int(d["n_flats"]), k)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise FileFormatError(
                f"{path}: not a dynamic flat-field weights file ({e!r})"
            ) from None
        _WEIGHTS_CACHE[path] = (w, b)
    return _WEIGHTS_CACHE[path]


def _dynamic_flatfield(proj, flats, darks, cfg: PipelineConfig, *, log: bool):
    """Eigen-flat-field correction of a block (scintomo.flatfield.dynamic): the block's rows
    are what the weights are fitted to; all flat series together sample the drift."""
    fl = np.concatenate(flats) if isinstance(flats, list) else flats
    k = cfg.flatfield.dynamic_components or None
    if cfg.flatfield.dynamic_weights:
        # weights fitted once on a band of rows (pipeline.dynflat): applied, not refitted
        weights, basis = dynamic_weights(cfg.flatfield.dynamic_weights)
        ratio = flatfield.dynamic(proj, fl, darks, weights=weights, basis=basis)
    else:
        ratio = flatfield.dynamic(
            proj, fl, darks, n_components=k, downsample=cfg.flatfield.dynamic_downsample
        )
    if not log:
        return ratio
    return -np.log(np.maximum(ratio, np.float32(cfg.flatfield.clip_low)))


def _n_threads(cfg: PipelineConfig):
    return cfg.run.n_threads or None


def _deconvolve_intensities(proj, flats, darks, cfg: PipelineConfig, n_threads):
    """(P - D, [F_i - D]) deconvolved by the film's PSF, float32; flats reduced per series."""
    from .. import deconv  # issue 4

    psf = _load_psf(cfg.deconv.psf)
    method = getattr(deconv, cfg.deconv.method)
    nt = n_threads
    dark = None
    if darks is not None:
        dark = flatfield.reduce_frames(
            darks, method=cfg.flatfield.reduce, n_threads=nt, what="darks"
        )
    series = flats if isinstance(flats, list) else [flats]
    reduced = [
        flatfield.reduce_frames(f, method=cfg.flatfield.reduce, n_threads=nt, what="flats")
        for f in series
    ]
    p = np.asarray(proj, dtype=np.float32)
    if dark is not None:
        p = p - dark
        reduced = [f - dark for f in reduced]
    opts = dict(cfg.deconv.options)
    p = method(p, psf, n_threads=nt, **opts)
    fl = [method(f, psf, n_threads=nt, **opts) for f in reduced]
    return p, (fl if isinstance(flats, list) else fl[0])


def dezinger(proj, flats, cfg: PipelineConfig):
    """``[zinger]``: zingers removed from the projections and the flats (one array or a
    list of flat series); both returned as they are when the step is off."""
    if not cfg.zinger.enabled:
        return proj, flats
    z = {"threshold_counts": cfg.zinger.threshold_counts, "size": cfg.zinger.size}
    if isinstance(flats, list):
        return remove_zingers(proj, **z), [remove_zingers(f, **z) for f in flats]
    return remove_zingers(proj, **z), remove_zingers(flats, **z)


def preprocess(raw: RawBlock, cfg: PipelineConfig, *, n_threads=None) -> np.ndarray:
    """Raw rows -> -log (or phase-retrieved) projections of rows ``r0:r1``, (angle, row, column)
    float32."""
    import warnings

    if raw.corrected:
        return _preprocess_corrected(raw, cfg, n_threads=n_threads)
    proj, flats = dezinger(raw.projections, raw.flats, cfg)
    darks = raw.darks
    positions = raw.flat_positions
    if cfg.deconv.psf:
        # The film blurs the light reaching the camera, i.e. P - D and F - D, not their
        # ratio: deconvolve those, then divide (scintomo.deconv's module notes).
        proj, flats = _deconvolve_intensities(proj, flats, darks, cfg, n_threads)
        darks = None
    need_ratio = bool(cfg.phase.method)
    with warnings.catch_warnings():
        # bad-pixel counts are per block; the run does not repeat them block after block
        warnings.simplefilter("ignore")
        if cfg.flatfield.dynamic:
            data = _dynamic_flatfield(proj, flats, darks, cfg, log=not need_ratio)
        else:
            data = flatfield.correct(
                proj,
                flats,
                darks,
                flat_positions=positions,
                reduce=cfg.flatfield.reduce,
                bad_flat=cfg.flatfield.bad_flat,
                clip=(cfg.flatfield.clip_low, None) if not need_ratio else None,
                log=not need_ratio,
                n_threads=n_threads,
            )
    data = _unshift(_undistort(data, raw, cfg), cfg)
    if cfg.phase.method == "paganin":
        from .. import recon  # issue 5

        data = recon.paganin(data, **cfg.phase.options)
    data = _beam_hardening(data[:, raw.r0 - raw.a0 : raw.r1 - raw.a0, :], cfg)
    if cfg.stripes.method:
        from .. import recon  # issue 5

        opts = {"n_threads": n_threads, **cfg.stripes.options}
        data = recon.remove_stripes(data, method=cfg.stripes.method, **opts)
    return np.ascontiguousarray(data, dtype=np.float32)


def _preprocess_corrected(raw: RawBlock, cfg: PipelineConfig, *, n_threads=None) -> np.ndarray:
    """Projections already flat-field corrected (``scintomo flatfield``; ratio or -log): the
    steps after the flat-field only, -log only where it was not taken."""
    if cfg.zinger.enabled or cfg.deconv.psf:
        step = "zinger removal" if cfg.zinger.enabled else "deconvolution"
        raise ParameterError(
            f"the scan is already flat-field corrected ({raw.corrected}; scintomo flatfield's "
            f"output): {step} acts on raw counts, so it cannot run on it; turn it off, or "
            "reconstruct the raw scan"
        )
    data = _unshift(_undistort(np.asarray(raw.projections, dtype=np.float32), raw, cfg), cfg)
    if cfg.phase.method:
        from .. import recon  # issue 5

        ratio = np.exp(-data) if raw.corrected == "-log" else data
        data = recon.paganin(ratio, **cfg.phase.options)
    elif raw.corrected == "ratio":
        # the floor before -log, as flatfield.correct applies it to raw scans
        data = -np.log(np.maximum(data, np.float32(cfg.flatfield.clip_low)))
    data = _beam_hardening(data[:, raw.r0 - raw.a0 : raw.r1 - raw.a0, :], cfg)
    if cfg.stripes.method:
        from .. import recon  # issue 5

        opts = {"n_threads": n_threads, **cfg.stripes.options}
        data = recon.remove_stripes(data, method=cfg.stripes.method, **opts)
    return np.ascontiguousarray(data, dtype=np.float32)


def _reconstruct(data, theta, center, cfg: PipelineConfig, recon_fn, n_threads, n_out=None):
    if recon_fn is None:
        try:
            from ..recon import reconstruct as recon_fn
        except ImportError as e:
            raise ParameterError(
                "reconstruction needs scintomo.recon (not in this build of scintomo): " + str(e)
            ) from None
    # only when on, so a recon_fn that predates half acquisition keeps working
    extra = {"half_acquisition": True} if cfg.geometry.half_acquisition else {}
    if extra and n_out is not None:
        extra["n_out"] = n_out
    if cfg.recon.algorithm in ITERATIVE:
        extra.update(iterations=cfg.recon.iterations, progress_bar=False)
        if cfg.recon.algorithm == "tv":
            extra["tv_weight"] = cfg.recon.tv_weight
        if cfg.recon.psf:
            extra["psf"] = _load_psf(cfg.recon.psf)
    vol = recon_fn(
        data,
        theta,
        center=center,
        algorithm=cfg.recon.algorithm,
        filter=cfg.recon.filter,
        backend=cfg.recon.backend,
        n_threads=n_threads,
        **extra,
    )
    return np.asarray(vol, dtype=np.float32)


#: reconstruct()'s iterative algorithms (their options: [recon] iterations, tv_weight, psf).
ITERATIVE = ("sirt", "cgls", "tv")


def prepare_block(raw: RawBlock, cfg: PipelineConfig, *, n_threads=None):
    """The pre-processing half of :func:`compute_block` (run in the reader thread):
    returns the projections to reconstruct and the rows of the result to keep (None:
    all). The PSF in the model couples slices, so an iterative run with ``[recon] psf``
    reconstructs the block with its halo rows (read for this, see plan.halo_rows) and
    keeps the block's own."""
    if cfg.recon.psf and raw.slab is None:
        import dataclasses

        whole = dataclasses.replace(raw, r0=raw.a0, r1=raw.a1)
        keep = slice(raw.r0 - raw.a0, raw.r1 - raw.a0)
        return preprocess(whole, cfg, n_threads=n_threads), keep
    return preprocess(raw, cfg, n_threads=n_threads), None


def reconstruct_block(
    data, keep, out_rows, r0, theta, center, cfg: PipelineConfig, *, recon_fn=None, n_threads=None
):
    """The reconstruction half of :func:`compute_block`, on :func:`prepare_block`'s output."""
    from .geometry import ConePlan

    if isinstance(center, ConePlan):
        k0, k1 = out_rows
        return center.reconstruct(data, theta, k0, k1, r0, cfg, n_threads)
    vol = _reconstruct(data, theta, center, cfg, recon_fn, n_threads)
    return vol if keep is None else vol[keep]


def compute_block(
    raw: RawBlock, theta, center, cfg: PipelineConfig, *, recon_fn=None, n_threads=None
):
    """Raw rows -> reconstructed slices (rows, y, x) float32; cone beam (``center`` a
    :class:`~scintomo.pipeline.geometry.ConePlan`): the FDK of the block's z-slab."""
    data, keep = prepare_block(raw, cfg, n_threads=n_threads)
    return reconstruct_block(
        data,
        keep,
        raw.out_rows,
        raw.r0,
        theta,
        center,
        cfg,
        recon_fn=recon_fn,
        n_threads=n_threads,
    )


# -------------------------------------------------------------------- centre


def _find_center(scan: Scan, cfg: PipelineConfig, halo: int, n_threads) -> float:
    row = min(scan.shape[1] - 1, int(round(cfg.center.row * (scan.shape[1] - 1))))
    r0, r1 = max(0, row - 4), min(scan.shape[1], row + 4)
    data = preprocess(read_block(scan, r0, r1, halo=halo), cfg, n_threads=n_threads)
    try:
        from ..recon import find_center
    except ImportError as e:
        raise ParameterError(
            "no rotation axis given and scintomo.recon (to find it) is not in this build: "
            f"{e}; pass --rotation-axis"
        ) from None
    if cfg.geometry.half_acquisition:
        from ..recon._halfacq import find_center_360

        ha = find_center_360(data, scan.theta, side=cfg.geometry.half_acquisition_side or None)
        log.info(
            "offset axis found on rows %d:%d: %.2f px (%s side, overlap %.1f px)",
            r0,
            r1,
            ha.center,
            ha.side,
            ha.overlap,
        )
        return float(ha.center)
    c = float(find_center(data, scan.theta, method=cfg.center.method))
    log.info("centre found by %s on rows %d:%d: %.2f px", cfg.center.method, r0, r1, c)
    return c


def half_acquisition(cfg: PipelineConfig, scan, center: float):
    """The :class:`~scintomo.recon.HalfAcquisition` of a half-acquisition run (None when
    off): the axis ``center`` with its overlap, side and stitched width."""
    if not cfg.geometry.half_acquisition:
        return None
    from ..recon._halfacq import HalfAcquisition, _layout

    n = int(scan.shape[2])
    if not (math.isfinite(center) and 0 <= center <= n - 1):
        raise ParameterError(
            f"half acquisition: the axis ({center:g} px) must lie on the detector "
            f"(columns 0 .. {n - 1})"
        )
    _, _, overlap, side = _layout(n, float(center))
    if cfg.geometry.half_acquisition_side and side != cfg.geometry.half_acquisition_side:
        raise ParameterError(
            f"half acquisition: the axis at {center:g} px is on the {side} side of the "
            f"detector, not the {cfg.geometry.half_acquisition_side} side given"
        )
    return HalfAcquisition(float(center), float(overlap), side, n)


def _center(scan, cfg, halo, n_threads) -> float:
    c = cfg.center.value
    return _find_center(scan, cfg, halo, n_threads) if math.isnan(c) else float(c)
