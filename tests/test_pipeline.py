"""scintomo.pipeline: config <-> TOML, block runner (bounded memory, resumable), try centres.

The reconstruction step is called through ``recon_fn``; these tests inject a
small numpy filtered back-projection (``fbp_numpy`` below, test-only) so that
they test the runner, not the reconstruction (tests/test_recon.py does that).
"""

from __future__ import annotations

import json
import math
import tomllib

import h5py
import numpy as np
import pytest
import tifffile

from scintomo import io, pipeline
from scintomo.exceptions import FileFormatError, ParameterError, ScintomoWarning
from scintomo.pipeline import PipelineConfig
from scintomo.simulate import simulate_scan


def fbp_numpy(proj, theta, *, center=None, **_):
    """Ramp-filtered back-projection, linear interpolation (test stand-in)."""
    n, r, w = proj.shape
    c = (w - 1) / 2 if center is None else center
    pad = np.zeros((n, r, 2 * w))
    pad[..., :w] = proj
    filt = np.fft.irfft(np.fft.rfft(pad, axis=-1) * 2 * np.abs(np.fft.rfftfreq(2 * w)), axis=-1)[
        ..., :w
    ]
    x = np.arange(w) - (w - 1) / 2
    xx, yy = np.meshgrid(x, x)
    out = np.zeros((r, w, w))
    cols = np.arange(w)
    for i, t in enumerate(theta):
        s = (xx * np.cos(t) + yy * np.sin(t) + c).ravel()
        for k in range(r):
            out[k] += np.interp(s, cols, filt[i, k], left=0, right=0).reshape(w, w)
    return (out * np.pi / (2 * n)).astype(np.float32)


@pytest.fixture(scope="module")
def sim():
    return simulate_scan(n_angles=60, n_rows=10, n_cols=32, seed=0)


@pytest.fixture
def dx_file(tmp_path, sim):
    d = tmp_path / "raw"
    d.mkdir()
    # a single flat series (DXchange has one): the mean of both
    return io.write_dxchange(d / "scan.h5", sim.projections, sim.flats, sim.darks, sim.theta)


def reference_minus_log(sim, flats=None, positions=None):
    """-ln((P - D) / (F - D)) in float64 numpy, flats linearly interpolated between series."""
    p = sim.projections.astype(np.float64)
    d = sim.darks.astype(np.float64).mean(0)
    if positions is None:
        f = (sim.flats if flats is None else flats).astype(np.float64).mean(0)[None]
    else:
        f0, f1 = (x.astype(np.float64).mean(0) for x in flats)
        i = np.arange(p.shape[0])[:, None, None]
        wgt = (i - positions[0]) / (positions[1] - positions[0])
        f = (1 - wgt) * f0 + wgt * f1
    return -np.log(np.clip((p - d) / (f - d), 1e-6, None))


def cfg_for(path, fmt="tiff", nsino=3, **over):
    cfg = PipelineConfig()
    cfg.input.file = str(path)
    cfg.output.format = fmt
    cfg.output.nsino_per_chunk = nsino
    cfg.center.value = 15.5
    cfg.run.n_threads = 1
    cfg.run.progress = False
    for k, v in over.items():
        sec, key = k.split("__")
        setattr(getattr(cfg, sec), key, v)
    return cfg


def read_volume(path, fmt):
    if fmt == "tiff":
        return np.stack([tifffile.imread(p) for p in sorted(path.glob("recon_*.tiff"))])
    if fmt == "h5":
        with h5py.File(path) as f:
            return f["exchange/data"][()]
    import zarr

    return zarr.open_array(str(path), mode="r")[:]


# ------------------------------------------------------------------ config


def test_config_toml_roundtrip_through_an_independent_parser(tmp_path):
    cfg = PipelineConfig()
    cfg.input.file = 'C:\\scans\\a "b".h5'
    cfg.center.value = 1024.5
    cfg.deconv.psf = "film.psf.h5"
    cfg.deconv.options = {"iterations": 12, "damping": 0.5}
    cfg.output.format = "zarr"
    cfg.zinger.enabled = True
    p = cfg.write(tmp_path / "c.toml")
    text = p.read_text()
    assert text.count("# ") > 30  # commented
    assert tomllib.loads(text)["deconv"]["options"] == {"iterations": 12, "damping": 0.5}
    back = PipelineConfig.from_toml(p)
    # compared as text: [geometry]'s default centre is nan, which != itself in a dict
    assert back.to_toml() == cfg.to_toml()
    assert back.deconv.options == cfg.deconv.options and back.input.file == cfg.input.file
    # the default centre is nan ("find it"), which TOML can carry
    d = PipelineConfig.from_toml(PipelineConfig().write(tmp_path / "d.toml"))
    assert math.isnan(d.center.value)


def test_config_errors_name_file_and_key(tmp_path):
    (tmp_path / "a.toml").write_text("[output]\nnsino_per_chunks = 3\n")
    with pytest.raises(
        ParameterError, match=r"a\.toml.*unknown key 'nsino_per_chunks' in \[output\]"
    ):
        PipelineConfig.from_toml(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text("[output]\nnsino_per_chunk = 'many'\n")
    with pytest.raises(ParameterError, match=r"b\.toml.*nsino_per_chunk must be an integer"):
        PipelineConfig.from_toml(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text("[output]\nformat = 'png'\n")
    with pytest.raises(ParameterError, match=r"output\.format must be one of"):
        PipelineConfig.from_toml(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text("[nope]\n")
    with pytest.raises(ParameterError, match=r"unknown section \[nope\]"):
        PipelineConfig.from_toml(tmp_path / "d.toml")


def test_block_planning_and_memory_budget():
    assert pipeline.block_ranges(0, 10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert pipeline.block_ranges(3, 5, 64) == [(3, 5)]
    for nt in (1, 2, 8):
        n = pipeline.nsino_for_budget(2000, 1500, 2048, n_threads=nt)
        est = [pipeline.estimate_block_bytes(1500, 2048, k, n_threads=nt) for k in (n, n + 1)]
        assert est[0] <= 2000e6 < est[1]
    n2 = pipeline.nsino_for_budget(2000, 1500, 2048, n_threads=2)
    assert pipeline.nsino_for_budget(4000, 1500, 2048, n_threads=2) > 2 * n2
    # the reconstruction's work space grows with the threads that run at once, up to nsino
    e1 = pipeline.estimate_block_bytes(1500, 2048, 4, n_threads=1)
    assert pipeline.estimate_block_bytes(1500, 2048, 4, n_threads=4) - e1 == 3 * 16 * 4096**2
    with pytest.raises(ParameterError, match="cannot hold one sinogram row"):
        pipeline.nsino_for_budget(100, 1500, 2048, n_threads=1)


# ------------------------------------------------------------------- steps


def test_remove_zingers_against_a_direct_median():
    rng = np.random.default_rng(0)
    img = rng.normal(1000, 10, size=(2, 9, 9)).astype(np.float32)
    img[0, 4, 4] += 5000
    img[1, 0, 8] += 3000
    out = pipeline.remove_zingers(img, threshold_counts=500, size=3)
    pad = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="symmetric")
    for f, r, c in ((0, 4, 4), (1, 0, 8)):
        assert out[f, r, c] == pytest.approx(np.median(pad[f, r : r + 3, c : c + 3]))
    mask = np.ones_like(img, bool)
    mask[0, 4, 4] = mask[1, 0, 8] = False
    np.testing.assert_array_equal(out[mask], img[mask])
    assert img[0, 4, 4] > 5000  # input untouched


def test_preprocess_blocks_with_flats_before_and_after_match_numpy(tmp_path, sim):
    p = io.write_nxtomo(
        tmp_path / "s.nxs",
        sim.projections,
        sim.flats_before,
        sim.darks,
        sim.theta,
        flats_after=sim.flats_after,
    )
    cfg = cfg_for(p, zinger__enabled=False)
    ref = reference_minus_log(
        sim, [sim.flats_before, sim.flats_after], (-0.5, sim.projections.shape[0] - 0.5)
    )
    with io.read(p) as scan:
        got = np.concatenate(
            [
                pipeline.preprocess(pipeline.read_block(scan, a, b, halo=2), cfg)
                for a, b in pipeline.block_ranges(0, 10, 4)
            ],
            axis=1,
        )
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_read_block_reads_only_its_rows(dx_file):
    with io.read(dx_file) as scan:
        seen = []

        class Spy:
            def __init__(self, d):
                self.d, self.shape, self.dtype = d, d.shape, d.dtype

            def __getitem__(self, key):
                seen.append(key[1])
                return self.d[key]

        scan.projections = Spy(scan.projections)
        raw = pipeline.read_block(scan, 4, 6, halo=1)
        assert raw.projections.shape == (60, 4, 32) and (raw.a0, raw.a1) == (3, 7)
        assert seen == [slice(3, 7)]
        raw = pipeline.read_block(scan, 0, 2, halo=3)
        assert (raw.a0, raw.a1) == (0, 5)


# -------------------------------------------------------------------- runs


@pytest.mark.parametrize("fmt", ["tiff", "h5", "zarr"])
def test_run_in_blocks_equals_the_whole_scan_at_once(dx_file, sim, fmt):
    calls = []

    def recon(proj, theta, **kw):
        calls.append(proj.shape[1])
        return fbp_numpy(proj, theta, **kw)

    cfg = cfg_for(dx_file, fmt, nsino=4)
    res = pipeline.run(cfg, recon_fn=recon)
    assert calls == [4, 4, 2]  # never more rows than nsino_per_chunk at once
    paths = pipeline.output_paths(cfg, dx_file)
    assert paths["folder"] == dx_file.parent.parent / "raw_rec"  # tomopy-cli: <dir>_rec/<name>_rec
    assert res.output == str(paths["full"]) and res.n_blocks == 3 and res.n_skipped == 0
    vol = read_volume(paths["full"], fmt)
    ref = fbp_numpy(reference_minus_log(sim).astype(np.float32), sim.theta, center=15.5)
    assert vol.shape == (10, 32, 32) and vol.dtype == np.float32
    np.testing.assert_allclose(vol, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_run_resumes_after_a_crash(dx_file):
    cfg = cfg_for(dx_file, "zarr", nsino=3)
    calls = []

    def crashing(proj, theta, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("node lost")
        return fbp_numpy(proj, theta, **kw)

    with pytest.raises(RuntimeError, match="node lost"):
        pipeline.run(cfg, recon_fn=crashing)
    calls.clear()
    res = pipeline.run(cfg, recon_fn=lambda p, t, **kw: (calls.append(1), fbp_numpy(p, t, **kw))[1])
    assert res.n_blocks == 4 and res.n_skipped == 2 and len(calls) == 2
    vol = read_volume(pipeline.output_paths(cfg, dx_file)["full"], "zarr")
    cfg2 = cfg_for(dx_file, "tiff", nsino=10)
    pipeline.run(cfg2, recon_fn=fbp_numpy)
    np.testing.assert_array_equal(
        vol, read_volume(pipeline.output_paths(cfg2, dx_file)["full"], "tiff")
    )
    # a third run has nothing left to do, even asked for other blocks (they follow the chunks)
    cfg.output.nsino_per_chunk = 5
    again = pipeline.run(cfg, recon_fn=crashing)
    assert again.n_skipped == again.n_blocks == 4 and again.nsino_per_chunk == 3


def test_run_h5_crash_leaves_no_final_file(dx_file):
    cfg = cfg_for(dx_file, "h5", nsino=5)

    def crashing(proj, theta, **kw):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        pipeline.run(cfg, recon_fn=crashing)
    assert not pipeline.output_paths(cfg, dx_file)["full"].exists()


def test_try_centers_writes_one_slice_per_candidate(dx_file, sim):
    cfg = cfg_for(dx_file, center__value=15.5, center__search_width=2.0, center__search_step=1.0)
    res = pipeline.try_centers(cfg, recon_fn=fbp_numpy)
    folder = dx_file.parent.parent / "raw_rec" / "try_center" / "scan"
    assert res.folder == str(folder) and res.centers == (13.5, 14.5, 15.5, 16.5, 17.5)
    names = sorted(p.name for p in folder.glob("*.tiff"))
    assert names == [f"recon_slice{res.row:04d}_center{c:05.2f}.tiff" for c in res.centers]
    # every candidate scored beside the slices, the true centre (15.5) marked the sharpest
    scores = json.loads((folder / "try_scores.json").read_text())
    assert res.scores_file == str(folder / "try_scores.json")
    assert [e["file"] for e in scores["files"]] == names
    assert scores["best_file"] == f"recon_slice{res.row:04d}_center15.50.tiff"
    assert res.best_center == 15.5 and not res.best_at_edge
    sl = tifffile.imread(folder / f"recon_slice{res.row:04d}_center15.50.tiff")
    ref = fbp_numpy(
        reference_minus_log(sim)[:, res.row : res.row + 1].astype(np.float32),
        sim.theta,
        center=15.5,
    )[0]
    np.testing.assert_allclose(sl, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_try_centers_skip_candidates_off_the_detector(dx_file):
    """Candidates beyond the detector's columns are dropped with a warning (reconstruct
    refuses an axis off the detector); a range wholly off it is a clear error."""
    n_det = 32
    cfg = cfg_for(dx_file, center__value=1.0, center__search_width=2.0, center__search_step=1.0)
    with pytest.warns(ScintomoWarning, match="1 candidate centre"):
        res = pipeline.try_centers(cfg, recon_fn=fbp_numpy)
    assert res.centers == (0.0, 1.0, 2.0, 3.0)
    cfg = cfg_for(dx_file, center__value=n_det + 5.0, center__search_width=1.0)
    with pytest.raises(ParameterError, match="off the detector"):
        pipeline.try_centers(cfg, recon_fn=fbp_numpy)


def test_run_without_recon_module_or_flats_is_a_clear_error(tmp_path, sim):
    p = io.write_dxchange(tmp_path / "noflat.h5", sim.projections, None, sim.darks, sim.theta)
    with pytest.raises(ParameterError, match=r"noflat\.h5: the scan has no flats"):
        pipeline.run(cfg_for(p), recon_fn=fbp_numpy)
    with pytest.raises(ParameterError, match="rows 20:10"):
        pipeline.run(cfg_for(p, output__start_row=20, output__end_row=10), recon_fn=fbp_numpy)


def test_preprocess_real_nxtomo_k11_blocks_match_numpy():
    """Real NXtomo (Diamond K11): image_key selection, flats and darks before and after."""
    from pathlib import Path

    k11 = (
        Path(__file__).resolve().parents[1]
        / ".."
        / "shared"
        / "data"
        / "k11_diad"
        / "k11-18014.nxs"
    )
    if not k11.exists():
        pytest.skip("real data ../shared/data/k11_diad absent")
    with h5py.File(k11) as f:
        keys = f["entry/instrument/imaging/image_key"][()]
        frames = f["entry/imaging/data"][:, 4:9, :].astype(np.float64)
    proj, flat, dark = frames[keys == 0], frames[keys == 1], frames[keys == 2]
    d = dark.mean(0)
    f0, f1 = flat[:50].mean(0), flat[50:].mean(0)  # 50 flats before, 50 after the projections
    n = proj.shape[0]
    wgt = (np.arange(n)[:, None, None] + 0.5) / n
    ratio = (proj - d) / ((1 - wgt) * f0 + wgt * f1 - d)
    ref = -np.log(np.clip(ratio, 1e-6, None))
    cfg = PipelineConfig()
    with io.read(k11) as scan:
        got = np.concatenate(
            [
                pipeline.preprocess(pipeline.read_block(scan, a, b, halo=1), cfg)
                for a, b in ((4, 6), (6, 9))
            ],
            axis=1,
        )
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_damaged_data_is_named_when_read(tmp_path, sim):
    """A file whose compressed chunk is damaged opens, and fails when its rows are read."""
    p = tmp_path / "raw" / "bad.h5"
    p.parent.mkdir()
    io.write_dxchange(p, sim.projections, sim.flats, sim.darks, sim.theta, compression="gzip")
    with h5py.File(p) as f:
        info = f["exchange/data"].id.get_chunk_info(0)
    with open(p, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    with (
        io.read(p) as scan,
        pytest.raises(FileFormatError, match=r"bad\.h5: cannot read detector rows"),
    ):
        pipeline.read_block(scan, 0, 10)


def test_deconvolution_acts_on_intensities_block_by_block(tmp_path):
    """With a PSF file, blocks (with their halo) give what scintomo.deconv's whole-scan
    helper gives: darks subtracted, P - D and F - D deconvolved, then divided and -log."""
    deconv = pytest.importorskip(
        "scintomo.deconv", reason="scintomo.deconv (issue 4) not in this build"
    )
    psf_mod = pytest.importorskip("scintomo.psf", reason="scintomo.psf (issue 4) not in this build")
    from scintomo.simulate import DetectorModel

    sim = simulate_scan(
        n_angles=40, n_rows=24, n_cols=48, seed=2, detector=DetectorModel(psf_sigma_px=1.5)
    )
    p = io.write_dxchange(
        tmp_path / "s.h5", sim.projections, sim.flats_before, sim.darks, sim.theta
    )
    film = psf_mod.model(sigma_um=1.5 * sim.pixel_size_um, pixel_size_um=sim.pixel_size_um)
    cfg = PipelineConfig()
    cfg.deconv.psf = str(psf_mod.save(film, tmp_path / "psf.h5"))
    cfg.deconv.options = {"iterations": 8}
    halo = pipeline.halo_rows(cfg, film)
    assert halo >= film.array.shape[0] // 2
    with io.read(p) as scan:
        got = np.concatenate(
            [
                pipeline.preprocess(pipeline.read_block(scan, a, b, halo=halo), cfg)
                for a, b in pipeline.block_ranges(0, 24, 4)
            ],
            axis=1,
        )
    ref = deconv.flatfield_deconvolved(
        sim.projections, sim.flats_before, sim.darks, film, iterations=8
    )
    # rows whose halo reaches neither block edge are the same as the whole image's
    np.testing.assert_allclose(got[:, 8:16], ref[:, 8:16], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, ref, atol=1e-2 * np.abs(ref).max())


def test_stripe_removal_and_paganin_are_called_in_order(dx_file, sim):
    """Stripes: per sinogram, so blocks equal the whole scan. Paganin: on the transmission."""
    recon = pytest.importorskip(
        "scintomo.recon", reason="scintomo.recon (issue 5) not in this build"
    )
    if not hasattr(recon, "remove_stripes") or not hasattr(recon, "paganin"):
        pytest.skip("this scintomo.recon has no remove_stripes / paganin")
    cfg = cfg_for(dx_file, stripes__method="sort")
    with io.read(dx_file) as scan:
        got = np.concatenate(
            [
                pipeline.preprocess(pipeline.read_block(scan, a, b), cfg)
                for a, b in ((0, 4), (4, 10))
            ],
            axis=1,
        )
    ref = recon.remove_stripes(reference_minus_log(sim).astype(np.float32), method="sort")
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    opts = {"pixel_size": 0.65, "distance": 20.0, "energy": 20.0, "delta_beta": 50.0}
    cfg = cfg_for(dx_file, phase__method="paganin", phase__options=opts)
    with io.read(dx_file) as scan:
        got = pipeline.preprocess(pipeline.read_block(scan, 0, 10, halo=0), cfg)
    ratio = np.exp(-reference_minus_log(sim)).astype(np.float32)
    np.testing.assert_allclose(got, recon.paganin(ratio, **opts), rtol=1e-4, atol=1e-4)
