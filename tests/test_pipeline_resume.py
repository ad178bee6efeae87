"""Resume never trusts stale output (issue 17 item 1).

A re-run continues the blocks on disk only when they were produced from the
same input, with every parameter that changes the result, by the same
scintomo version; otherwise it refuses, naming what differs, or (overwrite)
replaces the old volume. Parameters that do not change the result (threads,
block size, progress) still resume, and a resumed volume is bit-equal to an
uninterrupted run. Each output format; the truth is an uninterrupted run in
a fresh folder with the same stand-in reconstruction.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
import tifffile
from test_pipeline import cfg_for, fbp_numpy, read_volume  # noqa: E402

import scintomo
from scintomo import io, pipeline
from scintomo.cli import main
from scintomo.exceptions import StaleOutputError
from scintomo.simulate import simulate_scan

FORMATS = ["tiff", "h5", "zarr"]


@pytest.fixture(scope="module")
def sim():
    return simulate_scan(n_angles=40, n_rows=8, n_cols=24, seed=0)


@pytest.fixture
def scan(tmp_path, sim):
    (tmp_path / "raw").mkdir()
    return io.write_dxchange(
        tmp_path / "raw" / "scan.h5", sim.projections, sim.flats, sim.darks, sim.theta
    )


def cfg(scan, fmt, **over):
    return cfg_for(scan, fmt, nsino=3, **{"center__value": 11.5, **over})


def fresh(scan, fmt, tmp_path, name="fresh", **over):
    """The volume an uninterrupted run gives in a folder of its own."""
    c = cfg(scan, fmt, output__folder=str(tmp_path / name), **over)
    pipeline.run(c, recon_fn=fbp_numpy)
    return read_volume(pipeline.output_paths(c, scan)["full"], fmt)


def crash_after(n_blocks):
    calls = []

    def recon(proj, theta, **kw):
        calls.append(1)
        if len(calls) > n_blocks:
            raise RuntimeError("killed")
        return fbp_numpy(proj, theta, **kw)

    return recon


CHANGES = {
    "center": ({"center__value": 10.5}, "center_px: 11.5 -> 10.5"),
    "algorithm": ({"recon__algorithm": "fbp"}, "recon.algorithm: 'gridrec' -> 'fbp'"),
    "filter": ({"recon__filter": "shepp"}, "recon.filter: 'parzen' -> 'shepp'"),
    "rows": ({"output__start_row": 2}, "rows: [0, 8] -> [2, 8]"),
    "zingers": ({"zinger__enabled": True}, "zinger: 'off'"),
    "flat reduction": ({"flatfield__reduce": "median"}, "flatfield.reduce: 'mean' -> 'median'"),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_finished_volume_of_other_parameters_is_refused(scan, fmt, change):
    over, said = CHANGES[change]
    first = cfg(scan, fmt)
    pipeline.run(first, recon_fn=fbp_numpy)
    out = pipeline.output_paths(first, scan)["full"]
    before = read_volume(out, fmt)
    with pytest.raises(StaleOutputError, match="cannot be resumed") as e:
        pipeline.run(cfg(scan, fmt, **over), recon_fn=fbp_numpy)
    assert said in str(e.value) and str(out) in str(e.value) and "--overwrite" in str(e.value)
    np.testing.assert_array_equal(read_volume(out, fmt), before)  # left as it was


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_interrupted_volume_is_not_finished_with_other_parameters(scan, fmt, tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        pipeline.run(cfg(scan, fmt), recon_fn=crash_after(1))
    with pytest.raises(StaleOutputError, match=r"center_px: 11\.5 -> 10\.5"):
        pipeline.run(cfg(scan, fmt, center__value=10.5), recon_fn=fbp_numpy)
    # overwrite: the old blocks go, the new run's volume is the uninterrupted one
    c = cfg(scan, fmt, center__value=10.5, output__overwrite=True)
    res = pipeline.run(c, recon_fn=fbp_numpy)
    assert res.n_skipped == 0
    np.testing.assert_array_equal(
        read_volume(pipeline.output_paths(c, scan)["full"], fmt),
        fresh(scan, fmt, tmp_path, center__value=10.5),
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_another_input_file_at_the_same_path_is_refused(scan, sim, fmt, tmp_path):
    pipeline.run(cfg(scan, fmt), recon_fn=fbp_numpy)
    other = simulate_scan(n_angles=40, n_rows=8, n_cols=24, seed=1)  # same shape, other data
    io.write_dxchange(scan, other.projections, other.flats, other.darks, other.theta)
    with pytest.raises(StaleOutputError, match=r"input\.fingerprint"):
        pipeline.run(cfg(scan, fmt), recon_fn=fbp_numpy)
    # the same bytes with a new modification time are another file too (size + time + samples)
    st = os.stat(scan)
    os.utime(scan, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    res = pipeline.run(cfg(scan, fmt, output__overwrite=True), recon_fn=fbp_numpy)
    assert res.n_skipped == 0
    os.utime(scan, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    with pytest.raises(StaleOutputError, match=r"input\.mtime"):
        pipeline.run(cfg(scan, fmt), recon_fn=fbp_numpy)


@pytest.mark.parametrize("fmt", FORMATS)
def test_another_scintomo_version_is_refused(scan, fmt, monkeypatch):
    pipeline.run(cfg(scan, fmt), recon_fn=fbp_numpy)
    monkeypatch.setattr(scintomo, "__version__", "0.0.0-other")
    with pytest.raises(StaleOutputError, match=r"scintomo_version: .* -> '0\.0\.0-other'"):
        pipeline.run(cfg(scan, fmt), recon_fn=fbp_numpy)


@pytest.mark.parametrize("fmt", FORMATS)
def test_resume_ignores_threads_block_size_progress_and_is_bit_equal(scan, fmt, tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        pipeline.run(cfg(scan, fmt), recon_fn=crash_after(1))
    other = cfg(scan, fmt, run__n_threads=2, output__nsino_per_chunk=5, run__progress=False)
    other.output.memory_budget_mb = 0.0
    res = pipeline.run(other, recon_fn=fbp_numpy)
    # the blocks stay those of the interrupted run (3 rows), so that block edges do not move
    assert (res.n_blocks, res.n_skipped, res.nsino_per_chunk) == (3, 1, 3)
    got = read_volume(pipeline.output_paths(other, scan)["full"], fmt)
    np.testing.assert_array_equal(got, fresh(scan, fmt, tmp_path))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_run_with_nothing_left_reports_the_recorded_pace(scan, fmt):
    first = pipeline.run(cfg(scan, fmt), recon_fn=fbp_numpy)
    again = pipeline.run(cfg(scan, fmt), recon_fn=fbp_numpy)
    assert again.n_skipped == again.n_blocks == 3
    assert first.slices_per_second > 0
    assert again.slices_per_second == pytest.approx(first.slices_per_second, rel=0.05)
    assert again.to_dict()["slices_per_second"] == again.slices_per_second


def _with_pixel_size(scan):
    with h5py.File(scan, "r+") as f:
        ds = f.create_dataset("measurement/instrument/detector/pixel_size", data=0.65)
        ds.attrs["units"] = "um"


@pytest.mark.parametrize("fmt", FORMATS)
def test_outputs_carry_their_metadata_and_provenance(scan, fmt):
    _with_pixel_size(scan)
    c = cfg(scan, fmt, output__start_row=2)
    res = pipeline.run(c, recon_fn=fbp_numpy)
    out = pipeline.output_paths(c, scan)["full"]
    if fmt == "tiff":
        with tifffile.TiffFile(out / "recon_00001.tiff") as tf:
            meta = tf.shaped_metadata[0]
            tags = tf.pages[0].tags
            assert tags["ResolutionUnit"].value == 3  # centimetre
            x = tags["XResolution"].value
            assert x[0] / x[1] == pytest.approx(1e4 / 0.65, rel=1e-6)  # pixels per cm
        assert meta["slice"] == 1 and meta["row"] == 3
        rec = json.loads((out / "scintomo.json").read_text())
    elif fmt == "h5":
        with h5py.File(out) as f:
            a = f["exchange/data"].attrs
            assert a["center_px"] == 11.5 and a["algorithm"] == "gridrec"
            assert a["pixel_size_um"] == pytest.approx(0.65)
            meta = rec = json.loads(a["scintomo"])
    else:
        import zarr

        a = zarr.open_array(str(out), mode="r").attrs
        assert a["center_px"] == 11.5 and a["filter"] == "parzen"
        meta = rec = a["scintomo"]
    for m in (meta, rec):
        assert m["center_px"] == 11.5 and m["algorithm"] == "gridrec" and m["filter"] == "parzen"
        assert m["pixel_size_um"] == pytest.approx(0.65)
        assert m["scintomo_version"] == scintomo.__version__
        prov = m["provenance"]
        assert prov["input"]["path"] == str(scan.resolve())
        assert prov["input"]["size"] == scan.stat().st_size
        assert prov["rows"] == [2, 8] and prov["shape"] == [6, 24, 24]
    assert rec["slices_per_second"] == pytest.approx(res.slices_per_second)


def test_recon_cli_refuses_stale_output_and_overwrites_on_request(scan, tmp_path, capsys):
    import sys
    import types

    fake = types.ModuleType("scintomo.recon")
    fake.reconstruct = fbp_numpy
    sys.modules["scintomo.recon"] = fake
    try:
        args = ["recon", "--file-name", str(scan), "--reconstruction-type", "full"]
        args += ["--save-format", "h5", "--no-progress", "--threads", "1"]
        assert main([*args, "--rotation-axis", "11.5"]) == 0
        capsys.readouterr()
        assert main([*args, "--rotation-axis", "10.5"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("scintomo recon: error:") and "center_px: 11.5 -> 10.5" in err
        assert main([*args, "--rotation-axis", "10.5", "--overwrite"]) == 0
        assert "0 already on disk" in capsys.readouterr().out
        out = pipeline.output_paths(cfg(scan, "h5"), scan)["full"]
        with h5py.File(out) as f:
            assert f["exchange/data"].attrs["center_px"] == 10.5
    finally:
        del sys.modules["scintomo.recon"]


def test_try_slices_carry_their_centre_and_metadata(scan):
    _with_pixel_size(scan)
    c = cfg(scan, "tiff", center__search_width=1.0, center__search_step=1.0)
    res = pipeline.try_centers(c, recon_fn=fbp_numpy)
    for center, f in zip(res.centers, res.files, strict=True):
        with tifffile.TiffFile(f) as tf:
            meta = tf.shaped_metadata[0]
            x = tf.pages[0].tags["XResolution"].value
        assert meta["center_px"] == center and meta["row"] == res.row
        assert meta["algorithm"] == "gridrec" and meta["pixel_size_um"] == pytest.approx(0.65)
        assert x[0] / x[1] == pytest.approx(1e4 / 0.65, rel=1e-6)


def test_another_psf_in_the_same_file_is_refused(scan, sim, tmp_path):
    psf_mod = pytest.importorskip("scintomo.psf", reason="scintomo.psf not in this build")
    pytest.importorskip("scintomo.deconv", reason="scintomo.deconv not in this build")
    px = sim.pixel_size_um
    path = tmp_path / "film.h5"
    psf_mod.save(psf_mod.model(sigma_um=1.0 * px, pixel_size_um=px), path)
    over = {"deconv__psf": str(path), "deconv__options": {"iterations": 2}}
    pipeline.run(cfg(scan, "h5", **over), recon_fn=fbp_numpy)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same content: resumes
    assert pipeline.run(cfg(scan, "h5", **over), recon_fn=fbp_numpy).n_skipped == 3
    psf_mod.save(psf_mod.model(sigma_um=1.5 * px, pixel_size_um=px), path)
    with pytest.raises(StaleOutputError, match=r"deconv\.psf\.sha256 differs"):
        pipeline.run(cfg(scan, "h5", **over), recon_fn=fbp_numpy)
    with pytest.raises(StaleOutputError, match=r"deconv\.options\.iterations: 2 -> 3"):
        pipeline.run(
            cfg(scan, "h5", deconv__psf=str(path), deconv__options={"iterations": 3}),
            recon_fn=fbp_numpy,
        )


def test_a_tiff_scan_whose_flats_live_elsewhere_is_checked_whole(sim, tmp_path):
    """A TIFF folder scan is identified by every file in it; flats, darks and angles given
    from elsewhere ([input] flats/darks/angles) by their own identity."""
    tomo, calib = tmp_path / "tomo", tmp_path / "calib"
    io.write_tiff_frames(tomo, sim.projections, prefix="proj")
    io.write_tiff_frames(calib / "whites", sim.flats, prefix="w")
    io.write_tiff_frames(calib / "blacks", sim.darks, prefix="b")
    (calib / "rot.txt").write_text("\n".join(f"{v:.6f}" for v in np.rad2deg(sim.theta)))
    over = {
        "input__flats": str(calib / "whites"),
        "input__darks": str(calib / "blacks"),
        "input__angles": str(calib / "rot.txt"),
    }
    assert pipeline.run(cfg(tomo, "h5", **over), recon_fn=fbp_numpy).n_skipped == 0
    assert pipeline.run(cfg(tomo, "h5", **over), recon_fn=fbp_numpy).n_skipped == 3
    io.write_tiff_frames(calib / "whites", (sim.flats * 0.9).astype(sim.flats.dtype), prefix="w")
    with pytest.raises(StaleOutputError, match=r"input_files\.flats\.fingerprint differs"):
        pipeline.run(cfg(tomo, "h5", **over), recon_fn=fbp_numpy)
    io.write_tiff_frames(calib / "whites", sim.flats, prefix="w")
    io.write_tiff_frames(tomo, sim.projections[:1] + 1, prefix="proj")  # one frame changed
    with pytest.raises(StaleOutputError, match=r"input\.fingerprint differs"):
        pipeline.run(cfg(tomo, "h5", **over), recon_fn=fbp_numpy)
