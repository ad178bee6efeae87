"""``scintomo recon`` and ``scintomo init`` on a simulated scan.

The reconstruction is the test stand-in of test_pipeline (a numpy FBP),
installed as ``scintomo.recon`` for the duration of each test, so that these
tests check the command (options, layout, log, resume), not the algorithm.
"""

from __future__ import annotations

import sys
import tomllib
import types

import pytest
import tifffile
from test_pipeline import fbp_numpy  # noqa: E402  (tests/ is on sys.path under pytest)

from scintomo import io
from scintomo.cli import main
from scintomo.simulate import simulate_scan


@pytest.fixture
def fake_recon(monkeypatch):
    mod = types.ModuleType("scintomo.recon")
    mod.reconstruct = fbp_numpy
    mod.find_center = lambda proj, theta, **kw: 15.5
    monkeypatch.setitem(sys.modules, "scintomo.recon", mod)
    return mod


def recon(scan_file, options: str) -> int:
    """``scintomo recon --file-name SCAN OPTIONS --no-progress``; the exit code."""
    return main(["recon", "--file-name", str(scan_file), *options.split(), "--no-progress"])


@pytest.fixture
def scan_file(tmp_path):
    sim = simulate_scan(n_angles=40, n_rows=6, n_cols=32, seed=1)
    (tmp_path / "data").mkdir()
    return io.write_dxchange(
        tmp_path / "data" / "sample.h5", sim.projections, sim.flats, sim.darks, sim.theta
    )


def test_init_writes_a_config_that_recon_reads(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    assert main(["init", str(cfg), "--file-name", "x.h5"]) == 0
    d = tomllib.loads(cfg.read_text())
    assert d["input"]["file"] == "x.h5" and d["output"]["nsino_per_chunk"] == 64
    assert main(["init", str(cfg)]) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err


def test_recon_try_and_full_follow_tomopy_cli_layout(scan_file, fake_recon, capsys):
    base = scan_file.parent.parent / "data_rec"
    rc = recon(
        scan_file,
        "--rotation-axis 15.5 --reconstruction-type try --center-search-width 1 --center-search-step 0.5",
    )
    assert rc == 0
    names = sorted(p.name for p in (base / "try_center" / "sample").iterdir())
    assert names == [
        "recon_slice0002_center14.50.tiff",
        "recon_slice0002_center15.00.tiff",
        "recon_slice0002_center15.50.tiff",
        "recon_slice0002_center16.00.tiff",
        "recon_slice0002_center16.50.tiff",
        "try_scores.json",
    ]
    assert "sharpest at centre" in capsys.readouterr().out
    rc = recon(
        scan_file,
        "--rotation-axis 15.5 --reconstruction-type full --nsino-per-chunk 4 --save-format tiff --threads 1",
    )
    assert rc == 0
    files = sorted((base / "sample_rec").glob("recon_*.tiff"))
    assert [f.name for f in files] == [f"recon_{i:05d}.tiff" for i in range(6)]
    assert tifffile.imread(files[0]).shape == (32, 32)
    log = (base / "sample_rec.log").read_text()
    assert "nsino_per_chunk = 4" in log and "2 blocks of 4" in log
    out = capsys.readouterr().out
    assert "6 slices of 32 x 32" in out and "0 already on disk" in out
    # where the time went: every stage's busy time (issue 19)
    line = next(ln for ln in out.splitlines() if ln.startswith("timeline"))
    for stage in ("read", "flat-field/-log/stripes", "reconstruct", "write"):
        assert f"{stage} " in line, line
    # run again: everything is on disk already
    assert (
        recon(scan_file, "--rotation-axis 15.5 --reconstruction-type full --nsino-per-chunk 4") == 0
    )
    assert "2 already on disk" in capsys.readouterr().out


def test_recon_finds_the_centre_and_reports_bad_input(scan_file, fake_recon, tmp_path, capsys):
    assert (
        recon(
            scan_file,
            f"--reconstruction-type full --save-format h5 --output-folder {tmp_path / 'o'}",
        )
        == 0
    )
    assert "centre 15.50 px" in capsys.readouterr().out
    assert (tmp_path / "o" / "sample_rec.h5").exists()
    assert main(["recon", "--file-name", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[output]\nformat = 'jpeg'\n")
    assert main(["recon", "--config", str(bad), "--file-name", str(scan_file)]) == 2
    assert "output.format" in capsys.readouterr().err
