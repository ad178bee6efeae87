"""``scintomo demo``: the whole story on a small simulated scan."""

from __future__ import annotations

import json

import pytest

from scintomo.cli import main

recon = pytest.importorskip(
    "scintomo.recon", reason="scintomo.recon (issue 5) is not in this build"
)


def test_demo_reconstructs_the_phantom_and_writes_a_report(tmp_path, capsys):
    out = tmp_path / "demo"
    # the built-in backend, so that the figures below hold where TomoPy is installed too
    # (TomoPy's parzen filter smooths more: correlation 0.88 on this scan)
    args = ["demo", "-o", str(out), "--angles", "200", "--size", "128", "--rows", "4"]
    args += ["--backend", "builtin"]
    assert main([*args, "--nsino-per-chunk", "2"]) == 0
    s = json.loads((out / "summary.json").read_text())
    # the reconstruction is the phantom: independent truth from the simulator
    assert s["recon_backend"] == "builtin"
    assert s["central_slice_correlation"] > 0.9
    assert abs(s["center_px"] - s["true_center_px"]) < 0.5
    assert s["central_slice_relative_rms"] < 0.15
    html = (out / "report.html").read_text()
    for png in ("central_slices.png", "mtf.png", "sinogram.png"):
        assert (out / png).stat().st_size > 1000 and png in html
    assert (out / "recon" / "scan_rec.h5").exists()
    assert s["blocks_resumed"] == 0 and "slices/s" in s["pipeline_pace"]
    # A rerun in the same directory resumes the reconstruction and says so,
    # with the same result.
    capsys.readouterr()
    assert main([*args, "--nsino-per-chunk", "2"]) == 0
    said = capsys.readouterr().out
    s2 = json.loads((out / "summary.json").read_text())
    assert s2["blocks_resumed"] == 2
    assert "resumed: 2 of 2 blocks already on disk" in said
    # the pace it reports is the one recorded when the volume was computed, not 0.0
    rate = s["slices_per_second"]
    assert rate > 0 and s2["slices_per_second"] == pytest.approx(rate)
    assert f"computed at {rate:.1f} slices/s" in s2["pipeline_pace"]
    assert s2["central_slice_correlation"] == pytest.approx(s["central_slice_correlation"])


def test_demo_with_other_options_refuses_to_mix_volumes_unless_overwrite(tmp_path, capsys):
    """A demo with other options in the same folder used to report the old volume (exit 0)
    or raise IndexError; now it refuses, naming what differs, or replaces with --overwrite."""
    out = tmp_path / "demo"
    base = ["demo", "-o", str(out), "--rows", "2", "--nsino-per-chunk", "2"]
    base += ["--backend", "builtin"]
    assert main([*base, "--angles", "90", "--size", "64"]) == 0
    s = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    assert main([*base, "--angles", "60", "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert "scintomo demo: error:" in err and "--angles 90 -> 60" in err and "--overwrite" in err
    assert main([*base, "--angles", "90", "--size", "48"]) == 2  # IndexError before
    assert "--size 64 -> 48" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text()) == s  # nothing was touched
    assert main([*base, "--angles", "60", "--size", "48", "--overwrite"]) == 0
    s2 = json.loads((out / "summary.json").read_text())
    assert s2["scan"]["n_angles"] == 60 and s2["blocks_resumed"] == 0
    import h5py

    with h5py.File(s2["outputs"]["volume"]) as f:
        assert f["exchange/data"].shape == (2, 48, 48)
        rec = json.loads(f["exchange/data"].attrs["scintomo"])
    assert rec["provenance"]["shape"] == [2, 48, 48]
    assert s2["central_slice_correlation"] > 0.7  # the new phantom (0.80 measured)


def test_cone_demo_reconstructs_the_3d_phantom_by_slabs(tmp_path, capsys):
    """The lab variant: exact cone-beam line integrals through the film, FDK by z-slabs in
    the pipeline, and the correlation with the phantom rendered on the same voxels (an
    independent truth: scintomo.simulate.cone's ellipsoids, not the reconstruction)."""
    out = tmp_path / "cone"
    args = ["demo", "--geometry", "cone", "-o", str(out), "--angles", "120", "--size", "64"]
    assert main([*args, "--rows", "24", "--nsino-per-chunk", "6"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["options"]["geometry"] == "cone" and s["geometry"]["type"] == "cone"
    assert s["n_slabs"] == 4 and s["volume_shape"] == [24, 64, 64]
    # noise-free line integrals give 0.94 here (shepp filter); noise and the film's blur
    # (deconvolved) cost some
    assert s["central_slab_correlation"] > 0.8
    html = (out / "report.html").read_text()
    assert "central_slices.png" in html and f"{s['central_slab_correlation']:.3f}" in html
    # the parallel demo's folder is not mixed with it
    capsys.readouterr()
    assert main(["demo", "-o", str(out), "--angles", "120", "--size", "64", "--rows", "24"]) != 0
    assert "--geometry cone -> parallel" in capsys.readouterr().err
