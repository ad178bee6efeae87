"""Lab corrections as pipeline steps: [beamhardening] runs after -log, its
parameters (and the polynomial they give) go into the output's provenance,
and a run with other parameters cannot resume into the volume."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest

import scintomo.beamhardening as bh
from scintomo import io, pipeline
from scintomo.detector import kramers_spectrum
from scintomo.exceptions import ParameterError, StaleOutputError
from scintomo.pipeline import PipelineConfig

N, ROWS, W, R, PX = 90, 4, 64, 25, 0.15  # angles, rows, columns, radius px, mm per px
OPTS = {"kvp": 80.0, "material": "Al", "density": 2.699, "max_thickness": 2 * R * PX}


@pytest.fixture(scope="module")
def cylinder(tmp_path_factory):
    """A DXchange scan of an Al cylinder in an 80 kVp beam, -ln(I/I0) from xraydb."""
    s = (np.arange(W) - (W - 1) / 2) * PX
    chord = 2 * np.sqrt(np.clip((R * PX) ** 2 - s**2, 0, None))
    p = bh.polychromatic_projection(
        chord, spectrum=kramers_spectrum(80.0), material="Al", density=2.699
    )
    i0 = 50000.0
    proj = np.broadcast_to(i0 * np.exp(-p), (N, ROWS, W)).astype(np.float32)
    flats = np.full((3, ROWS, W), i0, np.float32)
    darks = np.zeros((2, ROWS, W), np.float32)
    theta = np.linspace(0, np.pi, N, endpoint=False)
    d = tmp_path_factory.mktemp("bh")
    return io.write_dxchange(d / "cyl.h5", proj, flats, darks, theta)


def _cfg(path, out, **bh_over):
    c = PipelineConfig()
    c.input.file = str(path)
    c.output.folder = str(out)
    c.output.format = "h5"
    c.center.value = (W - 1) / 2
    c.recon.algorithm = "fbp"
    c.run.n_threads = 1
    c.run.progress = False
    for k, v in bh_over.items():
        setattr(c.beamhardening, k, v)
    return c


def _cupping(vol):
    img = vol[1]
    y, x = np.mgrid[0:W, 0:W] - (W - 1) / 2
    r = np.hypot(x, y)
    centre, rim = img[r < 0.25 * R].mean(), img[(r > 0.6 * R) & (r < 0.8 * R)].mean()
    return (rim - centre) / img[r < 0.8 * R].mean()


def test_beam_hardening_step_flattens_and_is_recorded(cylinder, tmp_path):
    plain = _cfg(cylinder, tmp_path / "plain")
    pipeline.run(plain)
    fixed = _cfg(cylinder, tmp_path / "bh", method="spectrum", options=dict(OPTS))
    pipeline.run(fixed)
    vols = {}
    for name, c in (("plain", plain), ("bh", fixed)):
        out = pipeline.output_paths(c, cylinder)["full"]
        with h5py.File(out) as f:
            vols[name] = f["exchange/data"][()]
            prov = json.loads(f["exchange/data"].attrs["scintomo"])["provenance"]
        if name == "bh":
            rec = prov["beamhardening"]
    assert _cupping(vols["plain"]) > 0.05
    assert abs(_cupping(vols["bh"])) < 0.01
    expected = bh.from_spectrum(**OPTS)
    assert rec["method"] == "spectrum"
    np.testing.assert_allclose(rec["coefficients"], expected.coefficients, rtol=1e-12)
    assert rec["mu_ref_per_mm"] == pytest.approx(expected.mu_ref)
    # another polynomial does not resume into this volume
    other = _cfg(cylinder, tmp_path / "bh", method="spectrum", options={**OPTS, "kvp": 60.0})
    with pytest.raises(StaleOutputError, match="beamhardening"):
        pipeline.run(other)


def test_beam_hardening_config_checked(tmp_path):
    c = PipelineConfig()
    c.beamhardening.method = "spectrum"
    with pytest.raises(ParameterError, match="needs options"):
        c.validate()
    c.beamhardening.options = dict(OPTS)
    c.phase.method = "paganin"
    with pytest.raises(ParameterError, match="phase"):
        c.validate()
    c = PipelineConfig()
    c.beamhardening.method = "coefficients"
    with pytest.raises(ParameterError, match="coefficients"):
        c.validate()
    c.beamhardening.coefficients = [1.0, 0.2]
    path = c.write(tmp_path / "c.toml")
    back = PipelineConfig.from_toml(path)
    assert (
        back.beamhardening.coefficients == [1.0, 0.2]
        and back.beamhardening.method == "coefficients"
    )


# ------------------------------------------------------------------ distortion


def test_distortion_step_blockwise_equals_whole_frame(tmp_path):
    """[distortion]: the pipeline, block by block with its halo, gives the volume of
    the whole frames undistorted at once (scintomo.distortion.undistort) and
    reconstructed; the model is in the provenance."""
    from scintomo.distortion import DistortionModel, undistort
    from scintomo.recon import reconstruct
    from scintomo.simulate import simulate_scan

    sim = simulate_scan(n_angles=40, n_rows=16, n_cols=32, seed=1)
    path = io.write_dxchange(tmp_path / "s.h5", sim.projections, sim.flats, sim.darks, sim.theta)
    model = DistortionModel((9.0, 14.0), (0.0, 1e-3), 10.0, 0.0, 0.0, 0, shape=(16, 32))
    assert 1.0 < model.max_row_shift() < 6.0
    model.save(tmp_path / "dist.json")
    c = PipelineConfig()
    c.input.file = str(path)
    c.output.folder = str(tmp_path / "out")
    c.output.format = "h5"
    c.output.nsino_per_chunk = 3
    c.center.value = 15.5
    c.recon.algorithm = "fbp"
    c.run.n_threads = 1
    c.run.progress = False
    c.distortion.model = str(tmp_path / "dist.json")
    pipeline.run(c)
    out = pipeline.output_paths(c, path)["full"]
    with h5py.File(out) as f:
        vol = f["exchange/data"][()]
        prov = json.loads(f["exchange/data"].attrs["scintomo"])["provenance"]
    # the reference: numpy -log of the whole frames, undistorted at once
    p = sim.projections.astype(np.float64) - sim.darks.mean(0)
    ratio = p / (sim.flats.mean(0) - sim.darks.mean(0))
    minus_log = -np.log(np.clip(ratio, 1e-6, None)).astype(np.float32)
    ref = np.asarray(
        reconstruct(
            undistort(minus_log, model), sim.theta, center=15.5, algorithm="fbp", filter="parzen"
        )
    )
    np.testing.assert_allclose(vol, ref, atol=1e-4 * np.abs(ref).max())
    assert prov["distortion"]["coefficients"] == [0.0, 1e-3]
    assert "sha256" in prov["distortion"]["model"]


# ------------------------------------------------------------------ Nikon scans


def test_xtek_scan_runs_and_a_rewritten_projection_is_not_resumed(tmp_path):
    """A Nikon scan through the pipeline (WhiteLevel as the flat); its identity covers the
    TIFF projections, not only the .xtekct text."""
    import tifffile

    from scintomo.simulate import simulate_scan

    sim = simulate_scan(n_angles=24, n_rows=4, n_cols=32, seed=2)
    white = 60000.0
    t = (sim.projections - sim.darks.mean(0)) / (sim.flats.mean(0) - sim.darks.mean(0))
    counts = np.clip(t * white, 0, 65535).astype(np.uint16)
    folder = tmp_path / "nikon"
    folder.mkdir()
    step = float(np.rad2deg(sim.theta[1] - sim.theta[0]))
    (folder / "s.xtekct").write_text(
        "[XTekCT]\nName=s\nProjections=24\nSrcToObject=100\nSrcToDetector=1000\n"
        "DetectorPixelsX=32\nDetectorPixelsY=4\nDetectorPixelSizeX=0.1\nDetectorPixelSizeY=0.1\n"
        f"InitialAngle=0\nAngularStep={step!r}\nWhiteLevel={white}\n"
    )
    for i, frame in enumerate(counts):
        tifffile.imwrite(folder / f"s_{i + 1:04d}.tif", frame)
    c = PipelineConfig()
    c.input.file = str(folder / "s.xtekct")
    c.output.folder = str(tmp_path / "out")
    c.output.format = "h5"
    c.center.value = 15.5
    # the frames are a parallel-beam simulation over 180 degrees: not the cone the .xtekct
    # records (which the pipeline would otherwise reconstruct, by FDK)
    c.geometry.type = "parallel"
    c.run.n_threads = 1
    c.run.progress = False
    res = pipeline.run(c)
    assert res is not None
    out = pipeline.output_paths(c, c.input.file)["full"]
    with h5py.File(out) as f:
        prov = json.loads(f["exchange/data"].attrs["scintomo"])["provenance"]
    assert prov["input_format"] == "xtek"
    assert prov["input"]["path"] == str((folder / "s.xtekct").resolve())
    pipeline.run(c)  # the same scan resumes (nothing left to do)
    frame = counts[5].copy()
    frame[0, 0] ^= 1
    tifffile.imwrite(folder / "s_0006.tif", frame)
    with pytest.raises(StaleOutputError, match="input"):
        pipeline.run(c)


# ------------------------------------------------------------------ dynamic flat-field


def test_dynamic_flatfield_step_removes_drift_and_is_recorded(tmp_path):
    """[flatfield] dynamic = true: each block of rows is corrected with eigen flats; the
    drift stripes that one mean flat leaves go (the simulated drift of
    tests/test_flatfield_dynamic.py), and the parameters are in the provenance."""
    from test_flatfield_dynamic import _scan, _stripes

    from scintomo.flatfield import dynamic
    from scintomo.pipeline.compute import preprocess
    from scintomo.pipeline.read import read_block

    proj, flats, darks, t = _scan()
    theta = np.linspace(0, np.pi, proj.shape[0], endpoint=False)
    path = io.write_dxchange(tmp_path / "drift.h5", proj, flats, darks, theta)
    c = PipelineConfig()
    c.input.file = str(path)
    c.output.folder = str(tmp_path / "out")
    c.output.format = "h5"
    c.output.nsino_per_chunk = 8
    c.center.value = (proj.shape[2] - 1) / 2
    c.run.n_threads = 1
    c.run.progress = False
    plain = PipelineConfig.from_dict(c.to_dict())
    c.flatfield.dynamic = True
    c.flatfield.dynamic_components = 3
    with io.read(path) as scan:
        blocks = [(r, r + 8) for r in range(0, proj.shape[1], 8)]
        dyn = np.concatenate([preprocess(read_block(scan, *b), c) for b in blocks], axis=1)
        one = np.concatenate([preprocess(read_block(scan, *b), plain) for b in blocks], axis=1)
    s_one, s_dyn = _stripes(np.exp(-one), t), _stripes(np.exp(-dyn), t)
    assert s_one > 0.02 and s_dyn < 0.004, (s_one, s_dyn)
    # the run fits the weights once, on a band of rows (the pre-pass), and every block
    # applies them: no stripes either, and the blocks agree with one another
    pipeline.run(c)
    wfile = pipeline.dynamic_flat_path(c, path)
    fitted = json.loads(wfile.read_text())
    assert np.shape(fitted["weights"]) == (proj.shape[0], 3)
    with h5py.File(pipeline.output_paths(c, path)["full"]) as f:
        prov = json.loads(f["exchange/data"].attrs["scintomo"])["provenance"]
    assert {k: prov["flatfield"]["dynamic"][k] for k in ("n_components", "downsample")} == {
        "n_components": 3,
        "downsample": 2,
    }
    assert (
        prov["flatfield"]["dynamic"]["weights"]["sha256"]
        == hashlib.sha256(wfile.read_bytes()).hexdigest()
    )
    once = PipelineConfig.from_dict(c.to_dict())
    once.flatfield.dynamic_weights = str(wfile)
    with io.read(path) as scan:
        band = np.concatenate([preprocess(read_block(scan, *b), once) for b in blocks], axis=1)
    s_band = _stripes(np.exp(-band), t)
    assert s_band < 0.004, s_band
    # the weights of the band: those the per-block fit finds on its own rows, about
    _, m = dynamic(proj[:, 8:16], flats[:, 8:16], darks[:, 8:16], n_components=3,
                   return_model=True)  # fmt: skip
    flat_band = m.mean_flat + np.einsum("nk,khw->nhw", np.array(fitted["weights"]), np.einsum(
        "fk,fhw->khw", np.array(fitted["basis"]), flats[:, 8:16] - darks.mean(0)[8:16]
        - m.mean_flat))  # fmt: skip
    flat_own = m.mean_flat + np.einsum("nk,khw->nhw", m.weights, m.eigen_flats)
    assert np.abs(flat_band / flat_own - 1).max() < 0.01


# ------------------------------------------------------------------ drift shifts


def test_alignment_step_blockwise_equals_whole_frame(tmp_path):
    """[alignment] shifts: the pipeline undoes saved per-view shifts block by block (with a
    halo of the largest row shift) exactly as on whole frames; the file is in the
    provenance."""
    from scintomo.alignment import Alignment, shift_projections
    from scintomo.recon import reconstruct
    from scintomo.simulate import simulate_scan

    sim = simulate_scan(n_angles=30, n_rows=12, n_cols=32, seed=3)
    path = io.write_dxchange(tmp_path / "s.h5", sim.projections, sim.flats, sim.darks, sim.theta)
    shifts = np.random.default_rng(0).uniform(-2.5, 2.5, size=(30, 2))
    Alignment(shifts, 1, True, ()).save(tmp_path / "shifts.json")
    c = PipelineConfig()
    c.input.file = str(path)
    c.output.folder = str(tmp_path / "out")
    c.output.format = "h5"
    c.output.nsino_per_chunk = 3
    c.center.value = 15.5
    c.recon.algorithm = "fbp"
    c.run.n_threads = 1
    c.run.progress = False
    c.alignment.shifts = str(tmp_path / "shifts.json")
    pipeline.run(c)
    with h5py.File(pipeline.output_paths(c, path)["full"]) as f:
        vol = f["exchange/data"][()]
        prov = json.loads(f["exchange/data"].attrs["scintomo"])["provenance"]
    p = sim.projections.astype(np.float64) - sim.darks.mean(0)
    ratio = p / (sim.flats.mean(0) - sim.darks.mean(0))
    minus_log = -np.log(np.clip(ratio, 1e-6, None)).astype(np.float32)
    ref = np.asarray(
        reconstruct(
            shift_projections(minus_log, shifts, order=1),
            sim.theta,
            center=15.5,
            algorithm="fbp",
            filter="parzen",
        )
    )
    np.testing.assert_allclose(vol, ref, atol=1e-4 * np.abs(ref).max())
    assert prov["alignment"]["max_shift_px"] == pytest.approx(np.abs(shifts).max())


# spheres (value, radius, x0, y0, z0; pixels, z along rows from the middle) of a drift scan
_SPHERES = [
    (1.0, 16.0, 0.0, 0.0, 0.0),
    (0.8, 5.0, 8.0, 6.0, -5.0),
    (-0.6, 4.0, -9.0, -4.0, 4.0),
    (0.9, 3.0, 3.0, -11.0, 7.0),
]


def _drifting_spheres(shifts, theta, h=24, w=64):
    """Exact parallel projections of the spheres, view i displaced by shifts[i] (row,
    column): evaluated at its own coordinates (3 x 3 supersampled), no interpolation."""
    ss = 3
    off = (np.arange(ss) + 0.5) / ss - 0.5
    s0, z0 = np.arange(w) - (w - 1) / 2, np.arange(h) - (h - 1) / 2
    out = np.zeros((len(theta), h, w))
    for i, th in enumerate(theta):
        dz, ds = shifts[i]
        for oz in off:
            for os_ in off:
                s, z = (s0 + os_ - ds)[None, :], (z0 + oz - dz)[:, None]
                for v, r, x0, y0, zc in _SPHERES:
                    q = r**2 - (s - (x0 * np.cos(th) + y0 * np.sin(th))) ** 2 - (z - zc) ** 2
                    out[i] += v * 2 * np.sqrt(np.clip(q, 0, None)) / ss**2
    return out


def test_alignment_prepass_recovers_random_shifts_and_resumes(tmp_path):
    """[alignment] compute: the pipeline finds known random per-view shifts itself on a band
    of rows (within 0.2 px, the issue's bar), writes them (JSON and plot), undoes them in
    every block, records the file in the provenance, and a rerun reuses both."""
    n, h, w = 90, 24, 64
    theta = np.linspace(0, np.pi, n, endpoint=False)
    true = np.random.default_rng(3).uniform(-2.0, 2.0, size=(n, 2))
    i0 = 40000.0
    counts = (i0 * np.exp(-0.05 * _drifting_spheres(true, theta, h, w))).astype(np.float32)
    flats = np.full((3, h, w), i0, np.float32)
    darks = np.zeros((2, h, w), np.float32)
    path = io.write_dxchange(tmp_path / "drift.h5", counts, flats, darks, theta)
    c = PipelineConfig()
    c.input.file = str(path)
    c.output.folder = str(tmp_path / "out")
    c.output.format = "h5"
    c.output.nsino_per_chunk = 8
    c.center.value = (w - 1) / 2
    c.recon.algorithm = "fbp"
    c.run.n_threads = 1
    c.run.progress = False
    c.alignment.compute = True
    c.alignment.iterations = 25
    first = pipeline.run(c)
    files = pipeline.alignment_paths(c, path)
    found = json.loads(files["json"].read_text())
    got = np.array(found["shifts_px"])
    err = np.abs(got - (true - true.mean(axis=0)))
    assert err.max() < 0.2, err.max(axis=0)
    assert files["plot"].stat().st_size > 1000
    assert found["found_by"]["key"]["band_rows"] == [0, h]
    with h5py.File(first.output) as f:
        prov = json.loads(f["exchange/data"].attrs["scintomo"])["provenance"]
        vol = f["exchange/data"][()]
    assert (
        prov["alignment"]["shifts"]["sha256"]
        == hashlib.sha256(files["json"].read_bytes()).hexdigest()
    )
    # the slices are those of the scan without drift (a common shift is the axis: kept)
    from scintomo.recon import reconstruct

    still = 0.05 * _drifting_spheres(np.tile(true.mean(axis=0), (n, 1)), theta, h, w)
    ref = np.asarray(reconstruct(still.astype(np.float32), theta, center=c.center.value,
                                 algorithm="fbp", filter="parzen"))  # fmt: skip
    plain = np.asarray(reconstruct((-np.log(counts / i0)).astype(np.float32), theta,
                                   center=c.center.value, algorithm="fbp", filter="parzen"))  # fmt: skip
    inner = (slice(4, -4), slice(8, -8), slice(8, -8))
    assert np.abs(vol - ref)[inner].mean() < 0.3 * np.abs(plain - ref)[inner].mean()
    # a rerun: the shifts file is reused (not rewritten) and every block is already there
    stamp = files["json"].stat().st_mtime_ns
    again = pipeline.run(c)
    assert files["json"].stat().st_mtime_ns == stamp
    assert again.n_skipped == again.n_blocks


def test_alignment_prepass_settings_checked(tmp_path):
    c = PipelineConfig()
    c.alignment.compute = True
    c.alignment.shifts = str(tmp_path / "s.json")
    with pytest.raises(ParameterError, match="not both"):
        c.validate()
    c.alignment.shifts = ""
    c.alignment.rows = 8
    c.alignment.binning = 4
    with pytest.raises(ParameterError, match="fewer than 4 rows"):
        c.validate()


# ------------------------------------------------------------------ command line


def test_recon_cli_flags_set_the_lab_steps(tmp_path, monkeypatch):
    """scintomo recon --beam-hardening / --dynamic-flat / --distortion-model /
    --alignment-shifts set the same [sections] as a --config file would."""
    from scintomo.cli import main
    from scintomo.cli import recon as cli_recon

    parser_cfg = {}
    orig = cli_recon._config

    def spy(args):  # the config the flags give, then stop before any work
        parser_cfg["cfg"] = orig(args)
        raise SystemExit(0)

    monkeypatch.setattr(cli_recon, "_config", spy)
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(SystemExit):
        main(
            [
                "recon",
                "--file-name",
                str(tmp_path / "x.h5"),
                "--beam-hardening",
                "80",
                "Al",
                "2.699",
                "9",
                "--dynamic-flat",
                "--distortion-model",
                str(tmp_path / "d.json"),
                "--alignment-shifts",
                str(tmp_path / "s.json"),
                "--align-rows",
                "16",
            ]
        )
    cfg = parser_cfg["cfg"]
    assert cfg.beamhardening.method == "spectrum"
    assert cfg.beamhardening.options == {
        "kvp": 80.0,
        "material": "Al",
        "density": 2.699,
        "max_thickness": 9.0,
    }
    assert cfg.flatfield.dynamic is True
    assert cfg.distortion.model == str(tmp_path / "d.json")
    assert cfg.alignment.shifts == str(tmp_path / "s.json")
    assert cfg.alignment.rows == 16
    assert cfg.alignment.compute is False
    with pytest.raises(SystemExit):
        main(["recon", "--file-name", str(tmp_path / "x.h5"), "--align", "--align-rows", "24"])
    assert parser_cfg["cfg"].alignment.compute is True
    assert parser_cfg["cfg"].alignment.rows == 24
    assert main(["recon", "--file-name", "x.h5", "--beam-hardening", "hot", "Al", "2", "9"]) == 2
