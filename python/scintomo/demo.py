"""The main job on built-in data: simulate a micro-CT scan as a thin-film
scintillator microscope records it, then run the whole pipeline on it.

1. simulate: Shepp-Logan cylinder, parallel beam over [0, pi); the film's PSF
   (a CsPbBr3 perovskite film, Gaussian light spread), gain pattern, flats
   before and after with beam drift, darks, Poisson and read noise, uint16;
2. write it as DXchange HDF5 (what a beamline hands over);
3. the pipeline (:mod:`scintomo.pipeline`), block by block of detector rows:
   flat-field (flats interpolated), deconvolution by the film's PSF (when
   :mod:`scintomo.deconv` is in this build), -log, rotation centre found,
   reconstruction (:mod:`scintomo.recon`), volume written (HDF5);
4. a report: ``report.html`` with central slices (PNG), the system MTF, the
   timings, and the error against the true attenuation.
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path

import numpy as np

from . import flatfield
from ._json import write_json
from .io import write_dxchange, write_hdf5

#: the film of the demo: ~10 um CsPbBr3 on glass behind a 20x objective
#: Richardson-Lucy iterations: enough to undo most of a 1.2 px blur before the noise grows
DECONV_ITERATIONS = 10
FILM = {"material": "CsPbBr3 perovskite film", "thickness_um": 10.0, "psf_sigma_px": 1.2}


def _write_psf(path: Path, sigma_px: float, pixel_size_um: float):
    """Write the film's PSF (scintomo.psf's model of a Gaussian core) where the pipeline reads
    it; None if this build has no PSF / deconvolution modules (the demo then skips that step)."""
    try:
        from . import deconv  # noqa: F401
        from . import psf as psf_mod
    except ImportError:
        return None
    film = psf_mod.model(sigma_um=sigma_px * pixel_size_um, pixel_size_um=pixel_size_um)
    return _keep_if_same(path, lambda tmp: psf_mod.save(film, tmp))


def _keep_if_same(path: Path, write) -> Path:
    """``write(tmp)``, then put it at ``path`` unless ``path`` already has the same bytes:
    a rerun leaves its inputs untouched (their modification time is part of what the
    pipeline checks before it resumes)."""
    import filecmp
    import os

    tmp = path.with_name(f".{path.name}.new{path.suffix}")
    try:
        write(tmp)
        if path.exists() and filecmp.cmp(tmp, path, shallow=False):
            tmp.unlink()
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


#: the demo's options that change its result, with their command-line names
_OPTIONS = {"n_angles": "--angles", "n_cols": "--size", "n_rows": "--rows", "seed": "--seed"}


def _check_previous(out_dir: Path, options: dict, overwrite: bool) -> None:
    """Refuse to reuse a folder where a demo with other options ran (its scan and volume
    would be mixed with this one's), unless ``overwrite``."""
    try:
        prev = json.loads((out_dir / "summary.json").read_text()).get("options")
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(prev, dict) or overwrite:
        return
    diffs = [
        f"{flag} {prev.get(k)} -> {options[k]}"
        for k, flag in _OPTIONS.items()
        if prev.get(k) != options[k]
    ]
    geo = (prev.get("geometry", "parallel"), options.get("geometry", "parallel"))
    if geo[0] != geo[1]:  # the lab (cone-beam) demo, scintomo.demo_cone
        diffs.insert(0, f"--geometry {geo[0]} -> {geo[1]}")
    if diffs:
        from .exceptions import StaleOutputError

        raise StaleOutputError(
            f"{out_dir}: holds a demo run with other options ({', '.join(diffs)}); pass "
            "--overwrite to replace it, or choose another -o folder"
        )


def gaussian_mtf(sigma_px: float, frequencies_cy_per_px: np.ndarray) -> np.ndarray:
    """MTF of a Gaussian PSF: exp(-2 pi^2 sigma^2 f^2) (f in cycles/pixel)."""
    return np.exp(-2 * np.pi**2 * sigma_px**2 * frequencies_cy_per_px**2)


def _png(path: Path, draw) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = draw(plt)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path.name


def run_demo(
    output="scintomo-demo",
    *,
    n_angles=360,
    n_cols=256,
    n_rows=16,
    seed=0,
    quiet=False,
    nsino_per_chunk=8,
    n_threads=None,
    backend="auto",
    overwrite=False,
) -> dict:
    """Simulate, reconstruct with the pipeline, write the volume and ``report.html``.

    A rerun in the same folder with the same options resumes the reconstruction; with
    other options it raises :class:`~scintomo.exceptions.StaleOutputError`, unless
    ``overwrite`` (then the old volume is replaced).

    Returns the summary (also written to ``summary.json``).
    """
    from . import pipeline
    from .simulate import DetectorModel, simulate_scan

    out_dir = Path(output)
    options = {"n_angles": n_angles, "n_cols": n_cols, "n_rows": n_rows, "seed": seed}
    _check_previous(out_dir, options, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if quiet else print
    times: dict[str, float] = {}

    # 1. simulate
    t0 = time.perf_counter()
    det = DetectorModel(psf_sigma_px=FILM["psf_sigma_px"])
    sim = simulate_scan(n_angles=n_angles, n_rows=n_rows, n_cols=n_cols, seed=seed, detector=det)
    times["simulate"] = time.perf_counter() - t0
    say(
        f"simulated {n_angles} projections of {n_rows} x {n_cols} px (uint16) through a "
        f"{FILM['material']} "
        f"(PSF sigma {det.psf_sigma_px} px, pixel {sim.pixel_size_um} um) in "
        f"{times['simulate']:.1f} s"
    )

    # 2. DXchange
    t0 = time.perf_counter()
    raw_dir = out_dir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw = _keep_if_same(
        raw_dir / "scan.h5",
        lambda tmp: write_dxchange(tmp, sim.projections, sim.flats, sim.darks, sim.theta),
    )
    times["write raw"] = time.perf_counter() - t0
    psf_path = _write_psf(raw_dir / "film_psf.h5", det.psf_sigma_px, sim.pixel_size_um)

    # 2b. flat-field check against the noise-free line integrals (blurred like the detector)
    t0 = time.perf_counter()
    corrected = flatfield.correct(
        sim.projections,
        [sim.flats_before, sim.flats_after],
        sim.darks,
        flat_positions=sim.flat_positions,
        log=True,
    )
    t_ff = time.perf_counter() - t0
    err_ff = corrected.astype(np.float64) - sim.line_integrals
    ff_rms, ff_bias = float(np.sqrt(np.mean(err_ff**2))), float(np.mean(err_ff))
    ff_path = write_hdf5(
        out_dir / "corrected.h5", corrected, extra={"exchange/theta": np.rad2deg(sim.theta)}
    )
    del corrected, err_ff
    times["flat-field check (whole scan in memory)"] = t_ff
    say(
        f"flat-field + -log (two flat series, interpolated): {t_ff * 1e3:.1f} ms; vs. true line "
        f"integrals: bias {ff_bias:+.4f}, rms {ff_rms:.4f} -> {ff_path}"
    )
    try:
        from . import recon  # noqa: F401  (is it in this build?)
    except ImportError:
        say("reconstruction skipped: scintomo.recon is not in this build of scintomo")
        summary = {
            "flatfield_bias": ff_bias,
            "flatfield_rms": ff_rms,
            "seconds": times,
            "outputs": {"raw": str(raw), "corrected": str(ff_path)},
        }
        write_json(out_dir / "summary.json", summary)
        return summary

    # 3. the pipeline
    cfg = pipeline.PipelineConfig()
    cfg.input.file = str(raw)
    cfg.output.folder = str(out_dir / "recon")
    cfg.output.format = "h5"
    cfg.output.nsino_per_chunk = nsino_per_chunk
    cfg.recon.algorithm = "gridrec"
    cfg.recon.backend = backend
    # "auto" is the built-in backend whatever is installed (scintomo.recon.reconstruct)
    used = "builtin" if backend == "auto" else backend
    cfg.run.progress = not quiet
    cfg.output.overwrite = bool(overwrite)
    cfg.run.n_threads = n_threads or 0
    if psf_path is not None:
        cfg.deconv.psf = str(psf_path)
        cfg.deconv.options = {"iterations": DECONV_ITERATIONS}
    else:
        say("deconvolution skipped: scintomo.psf / scintomo.deconv are not in this build")
    cfg.write(out_dir / "pipeline.toml")
    res = pipeline.run(cfg)
    times["pipeline (flat-field, deconvolution, centre, reconstruction, write)"] = res.seconds
    # A rerun in the same directory resumes: blocks already on disk are kept,
    # and a rate over no work would say nothing.
    pace = _pace(res)
    say(
        f"pipeline: centre {res.center:.2f} px, {res.shape[0]} slices of {res.shape[1]} x "
        f"{res.shape[2]} in {res.seconds:.1f} s ({pace}) -> {res.output}"
    )

    # 4. quality against the truth, and the report
    import h5py

    with h5py.File(res.output) as f:
        vol = f["exchange/data"][()]
    mid = n_rows // 2
    yy, xx = np.mgrid[0:n_cols, 0:n_cols] - (n_cols - 1) / 2
    inside = (xx**2 + yy**2) < (0.45 * n_cols) ** 2
    # The simulator stores the phantom with row index = +y; reconstructions (TomoPy's
    # layout) put +y at row 0. Compare in whichever of the two layouts matches, and say which.
    layouts = {"as simulated": sim.attenuation, "rows flipped": sim.attenuation[:, ::-1, :]}
    corrs = {
        k: float(np.corrcoef(vol[mid][inside], t[mid][inside])[0, 1]) for k, t in layouts.items()
    }
    layout = max(corrs, key=corrs.get)
    truth, corr = layouts[layout], corrs[layout]
    err = (vol[mid] - truth[mid])[inside]
    rms = float(np.sqrt(np.mean(err**2)))
    rel_rms = rms / float(truth[mid][inside].max())
    true_center = (n_cols - 1) / 2
    say(
        f"central slice vs true attenuation ({layout}): rms {rms:.4f} /px "
        f"({100 * rel_rms:.1f} % of the maximum), correlation {corr:.3f}; "
        f"centre found {res.center:.2f} px, true {true_center:.2f} px"
    )

    # System MTF measured from data (a slanted edge through the simulated detector,
    # ISO 12233 by scintomo.mtf.edge_mtf), beside the analytic curves it should follow
    t0 = time.perf_counter()
    measured = measured_system_mtf(det, sim.pixel_size_um, seed=seed)
    times["system MTF (slanted edge through the detector)"] = time.perf_counter() - t0
    f_cy = np.linspace(0, 0.5, 101)
    mtf50_cy = math.sqrt(math.log(2) / (2 * math.pi**2)) / det.psf_sigma_px
    expected = gaussian_mtf(det.psf_sigma_px, f_cy) * np.sinc(f_cy)
    expected50_cy = float(np.interp(-0.5, -expected, f_cy))  # expected falls monotonically
    to_lpmm = 1e3 / sim.pixel_size_um
    t0 = time.perf_counter()
    vmax = float(np.percentile(truth[mid], 99.5)) * 1.2
    figs = {
        "slices": _png(
            out_dir / "central_slices.png", lambda plt: _slices_fig(plt, truth[mid], vol[mid], vmax)
        ),
        "sinogram": _png(
            out_dir / "sinogram.png", lambda plt: _sino_fig(plt, sim.projections[:, mid, :])
        ),
        "mtf": _png(
            out_dir / "mtf.png",
            lambda plt: _mtf_fig(plt, measured, det.psf_sigma_px, sim.pixel_size_um),
        ),
    }
    times["report"] = time.perf_counter() - t0
    summary = {
        "options": options,
        "scan": {
            "n_angles": n_angles,
            "n_rows": n_rows,
            "n_cols": n_cols,
            "pixel_size_um": sim.pixel_size_um,
        },
        "film": FILM,
        "deconvolution": psf_path is not None,
        "flatfield_bias": ff_bias,
        "flatfield_rms": ff_rms,
        "recon_backend": used,
        "center_px": res.center,
        "true_center_px": true_center,
        "central_slice_rms_per_px": rms,
        "central_slice_relative_rms": rel_rms,
        "central_slice_correlation": corr,
        "truth_layout": layout,
        "mtf50_lp_per_mm": measured.mtf50_lp_per_mm,
        "mtf50_cycles_per_px": measured.mtf50,
        "mtf50_ci_cycles_per_px": list(measured.mtf50_ci),
        "mtf_method": "measured: ISO 12233 slanted edge (scintomo.mtf.edge_mtf) on a 5 deg "
        "edge rendered through the simulated detector",
        "mtf50_expected_lp_per_mm": expected50_cy * to_lpmm,
        "mtf50_film_psf_lp_per_mm": mtf50_cy * to_lpmm,
        "slices_per_second": res.slices_per_second,
        "pipeline_pace": pace,
        "blocks_resumed": res.n_skipped,
        "seconds": times,
        "outputs": {
            "raw": str(raw),
            "corrected": str(ff_path),
            "volume": res.output,
            "report": str(out_dir / "report.html"),
        },
    }
    write_json(out_dir / "summary.json", summary)
    _write_report(out_dir / "report.html", summary, figs)
    say(
        f"system MTF50 measured (slanted edge) {measured.mtf50_lp_per_mm:.0f} lp/mm, expected "
        f"(film PSF x pixel) {expected50_cy * to_lpmm:.0f} lp/mm; report -> "
        f"{out_dir / 'report.html'}"
    )
    return summary


def _pace(res) -> str:
    """The pipeline's rate, or what a resumed run found already done."""
    if res.n_skipped == 0:
        return f"{res.slices_per_second:.1f} slices/s"
    done = res.n_blocks - res.n_skipped
    kept = f"resumed: {res.n_skipped} of {res.n_blocks} blocks already on disk"
    if done:
        return f"{kept}, {res.slices_per_second:.1f} slices/s on the rest"
    if res.recorded_slices_per_second is not None:
        return f"{kept}, computed at {res.recorded_slices_per_second:.1f} slices/s"
    return kept


def _slices_fig(plt, truth, rec, vmax):
    fig, ax = plt.subplots(1, 3, figsize=(11, 3.8))
    for a, img, title in (
        (ax[0], truth, "true attenuation"),
        (ax[1], rec, "reconstruction"),
        (ax[2], rec - truth, "difference"),
    ):
        lim = (-vmax / 4, vmax / 4) if title == "difference" else (0, vmax)
        im = a.imshow(
            img, cmap="gray" if title != "difference" else "RdBu_r", vmin=lim[0], vmax=lim[1]
        )
        a.set_title(title)
        a.axis("off")
        fig.colorbar(im, ax=a, fraction=0.046, label="1/pixel")
    return fig


def _sino_fig(plt, sino):
    fig, a = plt.subplots(figsize=(6, 3.5))
    a.imshow(sino, aspect="auto", cmap="gray")
    a.set_xlabel("column (pixel)")
    a.set_ylabel("projection")
    a.set_title("raw sinogram, central row (counts)")
    return fig


def measured_system_mtf(det, pixel_size_um: float, *, seed=0, size: int = 128, n_frames=8):
    """The system MTF measured from data: an ISO 12233 slanted edge (5 deg,
    transmission 0.3 | 0.9, integrated over each pixel on a 16 x 16 grid) recorded
    as :func:`scintomo.simulate.simulate_scan` records a projection (Poisson quanta,
    the film PSF as the same Gaussian filter, camera gain, dark level, read noise),
    ``n_frames`` frames averaged, dark subtracted, and measured by
    :func:`scintomo.mtf.edge_mtf`. Returns its :class:`~scintomo.mtf.MTF`
    (frequencies cycles/px, ``pixel_size_um`` set)."""
    from scipy import ndimage

    from .mtf import edge_mtf

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4D5446]))
    ss = 16
    y, x = (np.mgrid[0 : size * ss, 0 : size * ss] + 0.5) / ss
    tilt = math.tan(math.radians(5.0))
    bright = (x - size / 2) > tilt * (y - size / 2)
    transmission = 0.3 + 0.6 * bright.reshape(size, ss, size, ss).mean(axis=(1, 3))
    lam = det.quanta_per_pixel * np.broadcast_to(transmission, (n_frames, size, size))
    light = ndimage.gaussian_filter(
        rng.poisson(lam).astype(np.float64), (0, det.psf_sigma_px, det.psf_sigma_px), mode="nearest"
    )
    adu = light * det.adu_per_quantum + det.read_noise_adu * rng.standard_normal(light.shape)
    image = adu.mean(axis=0)  # the dark level (an offset) is subtracted exactly: not added
    return edge_mtf(image.astype(np.float32), pixel_size=pixel_size_um, n_bootstrap=30, seed=seed)


def _mtf_fig(plt, measured, sigma_px: float, pixel_size_um: float):
    to_lpmm = 1e3 / pixel_size_um
    f = np.linspace(0, 0.5, 201)
    fig, a = plt.subplots(figsize=(6.5, 3.8))
    keep = measured.frequencies <= 0.5
    fm = measured.frequencies[keep] * to_lpmm
    a.plot(fm, measured.values[keep], "C0", lw=1.5, label="measured (slanted edge, ISO 12233)")
    if measured.band is not None:
        a.fill_between(fm, measured.band[0][keep], measured.band[1][keep], color="C0", alpha=0.25,
                       lw=0, label="95% band (bootstrap)")  # fmt: skip
    film = gaussian_mtf(sigma_px, f)
    a.plot(f * to_lpmm, film * np.sinc(f), "k:", lw=1, label="expected: film PSF x pixel")
    a.plot(f * to_lpmm, film, "C1--", lw=1, label=f"film PSF alone (Gaussian {sigma_px} px)")
    a.axhline(0.5, color="0.6", lw=0.8)
    if math.isfinite(measured.mtf50):
        m50 = measured.mtf50 * to_lpmm
        a.axvline(m50, color="C0", lw=0.8)
        a.annotate(f"MTF50 {m50:.0f} lp/mm", (m50, 0.52), fontsize=8)
    a.set_xlabel("spatial frequency (lp/mm)")
    a.set_ylabel("MTF")
    a.set_xlim(0, 0.5 * to_lpmm)
    a.set_ylim(0, 1.05)
    a.legend(fontsize=7)
    a.set_title("system MTF up to Nyquist")
    return fig


def _ci(pair) -> str:
    lo, hi = pair
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "not available"
    return f"{lo:.3f} to {hi:.3f}"


def _write_report(path: Path, s: dict, figs: dict) -> None:
    from .io import atomic_path

    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.2f} s</td></tr>" for k, v in s["seconds"].items()
    )
    sc = s["scan"]
    film = s["film"]
    deconv = "on" if s["deconvolution"] else "off (not in this build)"
    style = "body{font-family:sans-serif;max-width:1000px;margin:2em auto}td{padding:2px 12px}"
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>scintomo demo</title>
<style>{style}</style></head><body>
<h1>scintomo demo: micro-CT with a {html.escape(film["material"])}</h1>
<p>{sc["n_angles"]} projections of {sc["n_rows"]} x {sc["n_cols"]} pixels
({sc["pixel_size_um"]} um), film PSF sigma {film["psf_sigma_px"]} px; deconvolution {deconv}.</p>
<h2>Central slice</h2><img src="{figs["slices"]}" alt="central slices">
<p>Against the true attenuation inside the cylinder ({s["truth_layout"]}):
rms {s["central_slice_rms_per_px"]:.4f} /px ({100 * s["central_slice_relative_rms"]:.1f} % of
the maximum), correlation {s["central_slice_correlation"]:.3f}.
Rotation centre found {s["center_px"]:.2f} px (true {s["true_center_px"]:.2f} px).</p>
<img src="{figs["sinogram"]}" alt="sinogram">
<h2>System MTF</h2><img src="{figs["mtf"]}" alt="MTF">
<p>Measured from data: a 5 degree slanted edge recorded through the simulated detector
(quanta, film PSF, read noise) and analysed as ISO 12233 prescribes (scintomo.mtf.edge_mtf).
MTF50 {s["mtf50_lp_per_mm"]:.0f} lp/mm ({s["mtf50_cycles_per_px"]:.3f} cycles/pixel;
95% interval {_ci(s["mtf50_ci_cycles_per_px"])} cycles/pixel); expected from the film PSF
and the pixel aperture {s["mtf50_expected_lp_per_mm"]:.0f} lp/mm (the film PSF alone:
{s["mtf50_film_psf_lp_per_mm"]:.0f} lp/mm).</p>
<h2>Timings</h2><table>{rows}</table>
<p>Pipeline: {html.escape(s["pipeline_pace"])}.</p>
<p>Volume: {html.escape(s["outputs"]["volume"])}</p></body></html>
"""
    with atomic_path(path) as tmp:
        tmp.write_text(body)
