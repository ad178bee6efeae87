"""The flatfield command, atomic writes, the demo and the scan simulator."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from conftest import shared_file
from scintomo import flatfield as ff
from scintomo.cli import main
from scintomo.io import atomic_path, read_dxchange, write_dxchange
from scintomo.io.writers import hdf5_writer
from scintomo.simulate import simulate_scan


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "flatfield" in out and "demo" in out


def test_flatfield_command_on_real_scan(tmp_path, capsys):
    src = shared_file("tooth.h5")
    dst = tmp_path / "tooth_ff.h5"
    assert main(["flatfield", str(src), "-o", str(dst), "--log", "--chunk", "50"]) == 0
    assert "181 projections" in capsys.readouterr().out
    with h5py.File(src, "r") as h:
        want = ff.correct(
            h["exchange/data"][()],
            h["exchange/data_white"][()],
            h["exchange/data_dark"][()],
            log=True,
        )
        theta = h["exchange/theta"][()]
    with h5py.File(dst, "r") as h:
        np.testing.assert_array_equal(h["exchange/data"][()], want)
        np.testing.assert_allclose(h["exchange/theta"][()], theta)
    assert [p.name for p in tmp_path.iterdir()] == ["tooth_ff.h5"]  # no temporary left


def test_flatfield_command_tiff(tmp_path):
    scan = simulate_scan(n_angles=7, n_rows=3, n_cols=16)
    src = write_dxchange(tmp_path / "s.h5", scan.projections, scan.flats, scan.darks, scan.theta)
    assert main(["flatfield", str(src), "-o", str(tmp_path / "s.tif"), "--chunk", "3"]) == 0
    pages = tifffile.imread(tmp_path / "s.tif")
    np.testing.assert_array_equal(pages, ff.correct(scan.projections, scan.flats, scan.darks))


def test_flatfield_command_errors(tmp_path, capsys):
    assert main(["flatfield", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    assert main(["flatfield", str(bad), "-o", str(tmp_path / "o.h5")]) == 2
    assert "not a readable HDF5" in capsys.readouterr().err
    with h5py.File(tmp_path / "nodata.h5", "w") as h:
        h["exchange/theta"] = np.zeros(3)
    assert main(["flatfield", str(tmp_path / "nodata.h5"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "/exchange/data" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()


def test_truncated_file_is_a_clear_error(tmp_path):
    scan = simulate_scan(n_angles=5, n_rows=2, n_cols=8)
    src = write_dxchange(tmp_path / "s.h5", scan.projections, scan.flats, scan.darks, scan.theta)
    data = src.read_bytes()
    (tmp_path / "t.h5").write_bytes(data[: len(data) // 3])
    from scintomo.exceptions import FileFormatError

    with pytest.raises(FileFormatError, match="t.h5"):
        with read_dxchange(tmp_path / "t.h5") as s:
            np.asarray(s.projections[()])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "vol.h5"
    with pytest.raises(RuntimeError), hdf5_writer(target, (4, 3, 3)) as ds:
        ds[0] = 1.0
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    # an existing result is kept intact when a rewrite fails
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_simulated_scan_is_physical():
    scan = simulate_scan(n_angles=20, n_rows=3, n_cols=64, seed=1)
    assert scan.projections.dtype == np.uint16 and scan.projections.shape == (20, 3, 64)
    model = scan.detector
    flat_level = scan.flats_before.mean() - scan.darks.mean()
    assert flat_level == pytest.approx(model.quanta_per_pixel * model.adu_per_quantum, rel=0.1)
    assert scan.darks.mean() == pytest.approx(model.dark_offset_adu, abs=2)
    # after the beam drifts, later flats are brighter
    assert scan.flats_after.mean() > scan.flats_before.mean() * (1 + model.beam_drift / 2)
    # the corrected -log projections estimate the true line integrals
    sino = ff.correct(
        scan.projections,
        [scan.flats_before, scan.flats_after],
        scan.darks,
        flat_positions=scan.flat_positions,
        log=True,
    )
    assert abs(float((sino - scan.line_integrals).mean())) < 0.01
    # using only the first flat series leaves the drift in: a larger bias
    single = ff.correct(scan.projections, scan.flats_before, scan.darks, log=True)
    assert abs(float((single - scan.line_integrals).mean())) > 0.01


def test_demo_runs(tmp_path, capsys):
    assert (
        main(
            ["demo", "-o", str(tmp_path / "demo"), "--angles", "31", "--size", "64", "--rows", "2"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "flat-field" in out
    assert (tmp_path / "demo" / "corrected.h5").exists()
