"""Offset-axis 360-degree scans through the pipeline and the CLI: the axis
found from the data (or given), the double field of view written, the
half-acquisition layout in the metadata and provenance, resumable, and the
volume equal to scintomo.recon.reconstruct(half_acquisition=True) (itself
tested against the analytic phantom in test_recon_halfacq)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from scintomo import io, pipeline
from scintomo.cli import main
from scintomo.exceptions import ParameterError, StaleOutputError
from scintomo.pipeline import PipelineConfig
from scintomo.recon import reconstruct, stitched_width
from scintomo.simulate import ellipse_projections, shepp_logan_ellipses

N, NR, NA = 48, 6, 240
AXIS = 40.4  # right side, overlap 14.2 px
I0 = 20000.0


@pytest.fixture(scope="module")
def offset_scan(tmp_path_factory):
    th = np.linspace(0, 2 * np.pi, NA, endpoint=False)
    e = shepp_logan_ellipses(stitched_width(N, AXIS), fill=0.95, scale=0.02)
    p = ellipse_projections(e, th, N, center=AXIS)
    p = np.repeat(p[:, None, :], NR, axis=1)
    counts = (I0 * np.exp(-p)).astype(np.float32)
    flats = np.full((2, NR, N), I0, np.float32)
    darks = np.zeros((1, NR, N), np.float32)
    d = tmp_path_factory.mktemp("halfacq") / "data"
    d.mkdir()
    path = io.write_dxchange(d / "offset.h5", counts, flats, darks, th)
    minus_log = -np.log(counts.astype(np.float64) / I0).astype(np.float32)
    return path, minus_log, th


def cfg_for(path, out, *, fmt="h5", **geo):
    cfg = PipelineConfig()
    cfg.input.file = str(path)
    cfg.output.folder = str(out)
    cfg.output.format = fmt
    cfg.output.nsino_per_chunk = 4
    cfg.recon.filter = "shepp"
    cfg.run.n_threads = 1
    cfg.run.progress = False
    cfg.geometry.half_acquisition = True
    for k, v in geo.items():
        setattr(cfg.geometry, k, v)
    return cfg


def test_pipeline_finds_the_axis_and_writes_the_double_field(offset_scan, tmp_path):
    path, minus_log, th = offset_scan
    res = pipeline.run(cfg_for(path, tmp_path / "out"))
    assert abs(res.center - AXIS) <= 0.2
    w = stitched_width(N, res.center)
    assert res.shape == (NR, w, w) and w > 1.6 * N
    import h5py

    with h5py.File(res.output) as f:
        vol = f["exchange/data"][()]
        attrs = dict(f["exchange/data"].attrs)
    truth = reconstruct(minus_log, th, center=res.center, half_acquisition=True, filter="shepp")
    np.testing.assert_allclose(vol, truth, atol=1e-5 * np.abs(truth).max())
    text = json.dumps({k: str(v) for k, v in attrs.items()})
    assert "half_acquisition" in text and "overlap_px" in text and '\\"right\\"' in text


def test_resume_and_a_changed_axis_is_refused(offset_scan, tmp_path):
    path, *_ = offset_scan
    out = tmp_path / "out"
    first = pipeline.run(cfg_for(path, out, fmt="tiff"))
    again = pipeline.run(cfg_for(path, out, fmt="tiff"))
    assert again.n_skipped == again.n_blocks == first.n_blocks
    desc = json.loads(
        tifffile.TiffFile(next(iter(sorted(out.rglob("*.tiff"))))).pages[0].description
    )
    assert desc["half_acquisition"]["side"] == "right"
    assert desc["provenance"]["half_acquisition"]["center"] == pytest.approx(first.center)
    cfg = cfg_for(path, out, fmt="tiff")
    cfg.center.value = 39.0
    with pytest.raises(StaleOutputError):
        pipeline.run(cfg)


def test_given_side_and_axis_and_errors(offset_scan, tmp_path):
    path, *_ = offset_scan
    cfg = cfg_for(path, tmp_path / "a", half_acquisition_side="left")
    with pytest.raises(ParameterError):  # searched on the wrong side: no match there
        pipeline.run(cfg)
    cfg = cfg_for(path, tmp_path / "b", half_acquisition_side="left")
    cfg.center.value = AXIS
    with pytest.raises(ParameterError, match="right side"):
        pipeline.run(cfg)
    cfg = cfg_for(path, tmp_path / "c")
    cfg.geometry.type = "cone"
    with pytest.raises(ParameterError, match="parallel-beam"):
        cfg.validate()
    cfg = cfg_for(path, tmp_path / "d")
    cfg.recon.algorithm = "sirt"
    with pytest.raises(ParameterError, match="direct methods"):
        cfg.validate()
    with pytest.raises(ParameterError, match="sino_360_to_180"):
        reconstruct(offset_scan[1][:, 0], offset_scan[2], algorithm="sirt", half_acquisition=True)


def test_cli_half_acquisition_and_try(offset_scan, tmp_path, capsys):
    path, minus_log, th = offset_scan
    out = tmp_path / "cli"
    common = ["recon", "--file-name", str(path), "--half-acquisition", "--filter", "shepp"]
    common += ["--output-folder", str(out), "--threads", "1", "--no-progress"]
    rc = main(common + ["--reconstruction-type", "full", "--save-format", "h5"])
    assert rc == 0, capsys.readouterr().err
    import h5py

    with h5py.File(next(out.glob("*.h5"))) as f:
        vol = f["exchange/data"][()]
    assert vol.shape[1] == vol.shape[2] > 1.6 * N
    rc = main(common + ["--reconstruction-type", "try", "--rotation-axis", "40.5"])
    assert rc == 0, capsys.readouterr().err
    assert "sharpest" in capsys.readouterr().out


def test_memory_budget_counts_the_double_field(offset_scan):
    """Slices of about twice the width: a budget gives smaller blocks than for the
    same scan reconstructed over the detector's own width."""
    from scintomo.pipeline.plan import _choose_nsino, estimate_block_bytes

    path, *_ = offset_scan
    cfg = cfg_for(path, "unused")
    scan = io.read(path)
    try:
        budget = estimate_block_bytes(NA, N, 40, n_threads=1) / 1e6
        cfg.output.memory_budget_mb = budget
        half = _choose_nsino(cfg, scan, 0, 1)
        cfg.geometry.half_acquisition = False
        normal = _choose_nsino(cfg, scan, 0, 1)
        assert half < normal
        # what the block holds: slices of the stitched width fit the budget
        w = stitched_width(N, AXIS)
        assert estimate_block_bytes(NA // 2, w, half, n_threads=1) <= budget * 1e6
    finally:
        scan.close()
