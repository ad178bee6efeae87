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
    assert "slices/s" not in s2["pipeline_pace"]
    assert s2["central_slice_correlation"] == pytest.approx(s["central_slice_correlation"])
