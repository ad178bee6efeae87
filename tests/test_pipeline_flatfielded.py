"""``scintomo flatfield``'s output is a scan ``scintomo recon`` accepts (issue 17 item 12):
recognised from the marks flatfield writes, it skips the flat-field (and the -log when
taken) and gives the volume the raw scan gives."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from test_pipeline import cfg_for, fbp_numpy, read_volume  # noqa: E402

from scintomo import io, pipeline
from scintomo.cli import main
from scintomo.exceptions import ParameterError
from scintomo.simulate import simulate_scan


@pytest.fixture(scope="module")
def sim():
    return simulate_scan(n_angles=48, n_rows=6, n_cols=32, seed=4)


@pytest.fixture
def raw(tmp_path, sim):
    (tmp_path / "raw").mkdir()
    return io.write_dxchange(
        tmp_path / "raw" / "scan.h5", sim.projections, sim.flats, sim.darks, sim.theta
    )


def volume(scan, tmp_path, name, **over):
    c = cfg_for(scan, "h5", nsino=4, output__folder=str(tmp_path / name), **over)
    pipeline.run(c, recon_fn=fbp_numpy)
    return read_volume(pipeline.output_paths(c, scan)["full"], "h5")


@pytest.mark.parametrize("log", [False, True])
def test_flatfield_then_recon_equals_recon_of_the_raw_scan(raw, tmp_path, log, capsys):
    ff = tmp_path / ("ff_log.h5" if log else "ff.h5")
    assert main(["flatfield", str(raw), "-o", str(ff), "--no-progress"] + ["--log"] * log) == 0
    with io.read(ff) as scan:
        assert pipeline.input_corrected(scan) == ("-log" if log else "ratio")
    with io.read(raw) as scan:
        assert pipeline.input_corrected(scan) is None
    ref = volume(raw, tmp_path, "from_raw")
    got = volume(ff, tmp_path, "from_ff")
    assert got.dtype == np.float32 and got.shape == ref.shape == (6, 32, 32)
    # the same steps on the same numbers; the -log of a ratio file is numpy's, not the kernel's
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_recon_cli_reconstructs_flatfield_output_and_refuses_raw_count_steps(raw, tmp_path, capsys):
    ff = tmp_path / "ff.h5"
    assert main(["flatfield", str(raw), "-o", str(ff), "--log", "--no-progress"]) == 0
    fake = types.ModuleType("scintomo.recon")
    fake.reconstruct = fbp_numpy
    sys.modules["scintomo.recon"] = fake
    try:
        args = ["recon", "--file-name", str(ff), "--rotation-axis", "15.5", "--no-progress"]
        assert main([*args, "--reconstruction-type", "full", "--save-format", "h5"]) == 0
        assert "6 slices of 32 x 32" in capsys.readouterr().out
        assert main([*args, "--reconstruction-type", "try", "--center-search-width", "1"]) == 0
    finally:
        del sys.modules["scintomo.recon"]
    with pytest.raises(ParameterError, match="already flat-field corrected.*zinger removal"):
        volume(ff, tmp_path, "z", zinger__enabled=True)
