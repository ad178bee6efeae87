"""The lab (cone-beam) variant of the demo: the film microscope behind a tube
source instead of a synchrotron (``scintomo demo --geometry cone``).

1. simulate: the 3-D Shepp-Logan phantom of ellipsoids, a full turn of cone-beam
   projections from its exact line integrals (:mod:`scintomo.simulate.cone`), the
   transmitted light spread by the film's PSF (Gaussian), Poisson quanta, read
   noise, flats and darks, uint16;
2. write it as DXchange HDF5 (the cone geometry goes in the pipeline's
   ``[geometry]``: DXchange has no field for it);
3. the pipeline by z-slabs: each slab reads the detector rows its cone needs,
   flat-field, deconvolution by the film's PSF (when :mod:`scintomo.deconv` is in
   this build), -log, FDK of the slab, volume written (HDF5);
4. summary and report: the correlation of the central slab with the phantom
   rendered on the same voxels (the independent truth), central slices.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import numpy as np

from ._json import write_json
from .demo import FILM, _keep_if_same, _pace, _png, _slices_fig, _write_psf
from .io import write_dxchange

#: the lab microscope of the demo: the film behind a 2x objective (6.5 um camera pixels:
#: 3.25 um at the film), the sample 5 mm from the tube's spot, the film at 25 mm (M = 5)
LAB = {"source_object_mm": 5.0, "source_detector_mm": 25.0, "pixel_size_um": 3.25}
#: quanta per pixel of the open beam, read noise (quanta), dark level (ADU)
I0, READ_NOISE, DARK = 20000.0, 3.0, 100.0

_OPTIONS = {"n_angles": "--angles", "n_cols": "--size", "n_rows": "--rows", "seed": "--seed"}


def central_slab_correlation(vol, truth, *, half: int = 2, r_frac: float = 0.85) -> float:
    """Pearson correlation of ``vol`` with ``truth`` over the central slab (rows within
    ``half`` of the middle) inside a cylinder of ``r_frac`` of the half-width."""
    nz, ny, nx = truth.shape
    yy, xx = np.mgrid[:ny, :nx] - (np.array([ny, nx])[:, None, None] - 1) / 2.0
    inside = xx**2 + yy**2 <= (r_frac * nx / 2) ** 2
    k = (nz - 1) // 2
    sl = slice(max(0, k - half), k + half + 1)
    a = np.asarray(vol[sl], dtype=np.float64)[:, inside]
    b = np.asarray(truth[sl], dtype=np.float64)[:, inside]
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def simulate_cone_scan(*, n_angles: int, n_rows: int, n_cols: int, seed: int = 0):
    """(projections uint16, flats, darks, theta, geometry, ellipsoids, line integrals): a full
    turn through the lab microscope of :data:`LAB` and the film of :data:`FILM`."""
    from scipy import ndimage

    from .recon import ConeGeometry
    from .simulate.cone import ellipsoid_cone_projections, shepp_logan_ellipsoids

    g = ConeGeometry(LAB["source_object_mm"], LAB["source_detector_mm"], LAB["pixel_size_um"])
    theta = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    # the phantom fills 80 % of the field at the axis (after the fan's narrowing);
    # attenuation such that the thickest path transmits about exp(-1.5)
    radius = 0.8 * 0.5 * min(n_cols, n_rows * 1.4) * g.voxel_size
    e = shepp_logan_ellipsoids(radius, value=1.5 / (2 * 0.92 * radius))
    p = ellipsoid_cone_projections(e, theta, g, (n_rows, n_cols), supersample=2)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC0E]))
    sigma = FILM["psf_sigma_px"]

    def record(quanta):  # the film spreads the light, the camera counts it
        light = ndimage.gaussian_filter(rng.poisson(quanta).astype(np.float64), (0, sigma, sigma))
        adu = light + DARK + READ_NOISE * rng.standard_normal(light.shape)
        return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)

    projections = record(I0 * np.exp(-p))
    flats = record(np.full((8, n_rows, n_cols), I0))
    darks = np.clip(
        np.rint(DARK + READ_NOISE * rng.standard_normal((4, n_rows, n_cols))), 0, None
    ).astype(np.uint16)
    return projections, flats, darks, theta, g, e, p


def run_cone_demo(
    output="scintomo-demo-cone",
    *,
    n_angles=180,
    n_cols=96,
    n_rows=32,
    seed=0,
    quiet=False,
    nsino_per_chunk=8,
    n_threads=None,
    overwrite=False,
) -> dict:
    """Simulate a lab (cone-beam) scan of the film microscope, reconstruct it with the
    pipeline by z-slabs, write the volume, ``summary.json`` and ``report.html``. A rerun
    with the same options resumes; with others it raises
    :class:`~scintomo.exceptions.StaleOutputError` unless ``overwrite``."""
    from . import pipeline
    from .demo import _check_previous
    from .simulate.cone import ellipsoids_volume

    out_dir = Path(output)
    options = {
        "geometry": "cone",
        "n_angles": n_angles,
        "n_cols": n_cols,
        "n_rows": n_rows,
        "seed": seed,
    }
    _check_previous(out_dir, options, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if quiet else print
    times: dict[str, float] = {}

    t0 = time.perf_counter()
    proj, flats, darks, theta, g, ellipsoids, _ = simulate_cone_scan(
        n_angles=n_angles, n_rows=n_rows, n_cols=n_cols, seed=seed
    )
    times["simulate (exact cone-beam line integrals, film PSF, noise)"] = time.perf_counter() - t0
    fan = g.fan_angle(n_cols)
    say(
        f"simulated a full turn of {n_angles} cone-beam projections of {n_rows} x {n_cols} px: "
        f"source-object {g.source_object:g} mm, source-detector {g.source_detector:g} mm "
        f"(M = {g.magnification:g}, fan {fan:.2f} deg), pixel at the film {g.pixel_size:g} um, "
        f"through a {FILM['material']} (PSF sigma {FILM['psf_sigma_px']} px)"
    )
    raw_dir = out_dir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw = _keep_if_same(
        raw_dir / "scan.h5", lambda tmp: write_dxchange(tmp, proj, flats, darks, theta)
    )
    psf_path = _write_psf(raw_dir / "film_psf.h5", FILM["psf_sigma_px"], g.pixel_size)

    cfg = pipeline.PipelineConfig()
    cfg.input.file = str(raw)
    cfg.output.folder = str(out_dir / "recon")
    cfg.output.format = "h5"
    cfg.output.nsino_per_chunk = nsino_per_chunk
    cfg.output.overwrite = bool(overwrite)
    cfg.geometry.type = "cone"
    cfg.geometry.source_object = f"{g.source_object}mm"
    cfg.geometry.source_detector = f"{g.source_detector}mm"
    cfg.geometry.pixel_size = f"{g.pixel_size}um"
    cfg.recon.filter = "shepp"
    cfg.run.progress = not quiet
    cfg.run.n_threads = n_threads or 0
    if psf_path is not None:
        from .demo import DECONV_ITERATIONS

        cfg.deconv.psf = str(psf_path)
        cfg.deconv.options = {"iterations": DECONV_ITERATIONS}
    cfg.write(out_dir / "pipeline.toml")
    res = pipeline.run(cfg)
    pace = _pace(res)
    times["pipeline (by z-slabs: flat-field, deconvolution, FDK, write)"] = res.seconds
    say(
        f"pipeline: {res.shape[0]} slices of {res.shape[1]} x {res.shape[2]} by FDK in "
        f"{res.n_blocks} z-slabs, {res.seconds:.1f} s ({pace}) -> {res.output}"
    )

    import h5py

    with h5py.File(res.output) as f:
        vol = f["exchange/data"][()]
    truth = ellipsoids_volume(ellipsoids, vol.shape, g.voxel_size)
    corr = central_slab_correlation(vol, truth)
    mid = vol.shape[0] // 2
    say(f"central slab vs the phantom on the same voxels: correlation {corr:.3f}")
    vmax = float(np.percentile(truth[mid], 99.5)) * 1.2
    fig = _png(
        out_dir / "central_slices.png", lambda plt: _slices_fig(plt, truth[mid], vol[mid], vmax)
    )
    summary = {
        "options": options,
        "geometry": {**g.to_dict(), "fan_angle_deg": fan, "cone_angle_deg": g.cone_angle(n_rows)},
        "scan": {"n_angles": n_angles, "n_rows": n_rows, "n_cols": n_cols},
        "film": FILM,
        "deconvolution": psf_path is not None,
        "volume_shape": list(vol.shape),
        "voxel_size_um": g.voxel_size,
        "central_slab_correlation": corr,
        "n_slabs": res.n_blocks,
        "slices_per_second": res.slices_per_second,
        "pipeline_pace": pace,
        "blocks_resumed": res.n_skipped,
        "seconds": times,
        "outputs": {
            "raw": str(raw),
            "volume": res.output,
            "report": str(out_dir / "report.html"),
        },
    }
    write_json(out_dir / "summary.json", summary)
    _write_report(out_dir / "report.html", summary, fig)
    say(f"report -> {out_dir / 'report.html'}")
    return summary


def _write_report(path: Path, s: dict, fig: str) -> None:
    from .io import atomic_path

    g, sc = s["geometry"], s["scan"]
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.2f} s</td></tr>" for k, v in s["seconds"].items()
    )
    body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>scintomo demo (lab, cone beam)</title></head><body style="font-family:sans-serif">
<h1>scintomo demo: lab micro-CT (cone beam) with a {html.escape(s["film"]["material"])}</h1>
<p>A full turn of {sc["n_angles"]} projections of {sc["n_rows"]} x {sc["n_cols"]} pixels;
source-object {g["source_object_mm"]:g} mm, source-detector {g["source_detector_mm"]:g} mm
(magnification {g["magnification"]:g}, fan {g["fan_angle_deg"]:.2f} deg, cone
{g["cone_angle_deg"]:.2f} deg), pixel at the film {g["pixel_size_um"]:g} um, voxel
{s["voxel_size_um"]:.3g} um; deconvolution {"on" if s["deconvolution"] else "off"}.</p>
<h2>Central slice</h2><img src="{fig}" alt="central slices">
<p>FDK by {s["n_slabs"]} z-slabs, each from the detector rows its cone needs. Central slab
against the phantom rendered on the same voxels: correlation
{s["central_slab_correlation"]:.3f}.</p>
<h2>Timings</h2><table>{rows}</table><p>Pipeline: {html.escape(s["pipeline_pace"])}.</p>
<p>Options: {html.escape(json.dumps(s["options"]))}</p></body></html>
"""
    with atomic_path(path) as tmp:
        tmp.write_text(body)
