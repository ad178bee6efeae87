"""Angle units: readers decide degrees or radians from the file's unit and the
range the angles cover, and refuse or warn rather than read a scan in the
wrong unit; ``reconstruct`` refuses angles that cannot be radians."""

from __future__ import annotations

import shutil
import warnings

import h5py
import numpy as np
import pytest

from conftest import shared_file
from scintomo import io, recon
from scintomo.exceptions import FileFormatError, ParameterError, ScintomoWarning


def _no_warnings():
    w = warnings.catch_warnings()
    w.__enter__()
    warnings.simplefilter("error")
    return w


def _tooth_copy(tmp_path, name, theta_values, units=None):
    """tooth.h5 copied with its /exchange/theta replaced (and a units attribute or none)."""
    p = tmp_path / name
    shutil.copy(shared_file("tooth.h5"), p)
    with h5py.File(p, "r+") as f:
        del f["exchange/theta"]
        ds = f.create_dataset("exchange/theta", data=theta_values)
        if units is not None:
            ds.attrs["units"] = units
    return p


def _tooth_degrees():
    with h5py.File(shared_file("tooth.h5"), "r") as f:
        return np.asarray(f["exchange/theta"][()], dtype=np.float64)


# ------------------------------------------------------------------ DXchange


def test_tooth_degrees_read_as_degrees():
    deg = _tooth_degrees()
    assert 179 < deg.max() < 181  # the file really is in degrees
    w = _no_warnings()
    try:
        with io.read(shared_file("tooth.h5")) as scan:
            np.testing.assert_allclose(scan.theta, np.deg2rad(deg))
            assert scan.metadata["angle_unit"] == "deg"
    finally:
        w.__exit__(None, None, None)


@pytest.mark.parametrize("units", [None, "rad", "radians"])
def test_dxchange_theta_in_radians_is_detected(tmp_path, units):
    deg = _tooth_degrees()
    p = _tooth_copy(tmp_path, "rad.h5", np.deg2rad(deg), units)
    w = _no_warnings()
    try:
        with io.read(p) as scan:
            # not deg2rad twice (the scan would cover 3.1 degrees)
            np.testing.assert_allclose(scan.theta, np.deg2rad(deg), rtol=1e-12)
            assert scan.metadata["angle_unit"] == "rad"
            assert scan.metadata["angle_unit_from"] == ("range" if units is None else "stated")
    finally:
        w.__exit__(None, None, None)


def test_dxchange_radians_reconstructs_like_degrees(tmp_path):
    deg = _tooth_degrees()
    p = _tooth_copy(tmp_path, "rad.h5", np.deg2rad(deg))
    with io.read(shared_file("tooth.h5")) as a, io.read(p) as b:
        sino = -np.log(np.clip(np.asarray(a.projections[:, 0:1, :], np.float32), 1, None))
        ra = recon.reconstruct(sino, a.theta, center=320.0)
        rb = recon.reconstruct(sino, b.theta, center=320.0)
    np.testing.assert_allclose(rb, ra, rtol=1e-5, atol=1e-6 * float(np.abs(ra).max()))


def test_dxchange_unit_attribute_contradicted_by_range(tmp_path):
    deg = _tooth_degrees()
    p = _tooth_copy(tmp_path, "liar.h5", np.deg2rad(deg), "degrees")
    with pytest.raises(FileFormatError, match=r"liar\.h5.*says .*deg.*cover 3\.1.*angle_unit"):
        io.read(p)
    # the caller settles it
    with io.read(p, angle_unit="rad") as scan:
        np.testing.assert_allclose(scan.theta, np.deg2rad(deg))


def test_dxchange_range_fitting_no_unit_warns(tmp_path):
    deg = np.linspace(0, 60, 181)  # 60 degrees: neither a scan in degrees nor in radians
    p = _tooth_copy(tmp_path, "limited.h5", deg)
    with pytest.warns(ScintomoWarning, match=r"limited\.h5.*cover 60.*neither"), io.read(p) as s:
        np.testing.assert_allclose(s.theta, np.deg2rad(deg))
    # 360-degree scans and 2 pi scans are both recognised
    with io.read(_tooth_copy(tmp_path, "full.h5", np.linspace(0, 360, 181))) as s:
        assert s.metadata["angle_unit"] == "deg"
    with io.read(_tooth_copy(tmp_path, "full_rad.h5", np.linspace(0, 2 * np.pi, 181))) as s:
        assert s.metadata["angle_unit"] == "rad"
        assert s.theta.max() == pytest.approx(2 * np.pi)


def test_bad_angle_unit_argument(tmp_path):
    with pytest.raises(ParameterError, match="unknown angle unit 'grad'"):
        io.read(shared_file("tooth.h5"), angle_unit="grad")


# -------------------------------------------------------------------- NXtomo


def test_k11_degrees_without_unit_attribute():
    with h5py.File(shared_file("k11_diad/k11-18014.nxs"), "r") as f:
        assert "units" not in f["entry/imaging/gts_theta_value"].attrs  # the range must decide
    with io.read(shared_file("k11_diad/k11-18014.nxs")) as scan:
        assert scan.metadata["angle_unit"] == "deg"
        assert scan.metadata["angle_unit_from"] == "range"
        assert np.ptp(scan.theta) == pytest.approx(np.pi, abs=0.01)


@pytest.mark.parametrize("units", [None, "rad"])
def test_nxtomo_radians(tmp_path, rng, units):
    theta = np.linspace(0, np.pi, 30, endpoint=False)
    proj = rng.integers(100, 4000, size=(30, 4, 8), dtype=np.uint16)
    p = io.write_nxtomo(tmp_path / "s.nxs", proj, proj[:2], proj[:1], theta)
    with h5py.File(p, "r+") as f:
        ds = f["entry/sample/rotation_angle"]
        ds[...] = np.deg2rad(ds[()])  # the file stores radians now
        del ds.attrs["units"]
        if units:
            ds.attrs["units"] = units
    with io.read(p) as scan:
        np.testing.assert_allclose(scan.theta, theta)
    with h5py.File(p, "r+") as f:
        f["entry/sample/rotation_angle"].attrs["units"] = "degree"
    with pytest.raises(FileFormatError, match=r"s\.nxs.*rotation_angle.*says.*deg"):
        io.read(p)


# ---------------------------------------------------------------------- TIFF


def test_angles_file_with_header_and_blank_lines(tmp_path):
    deg = np.linspace(0, 180, 19)
    (tmp_path / "a.txt").write_text("angles\n" + "\n".join(f"{v}" for v in deg) + "\n\n\n")
    np.testing.assert_allclose(io.read_angles(tmp_path / "a.txt"), np.deg2rad(deg))
    # radians without any unit: found from the range
    (tmp_path / "r.txt").write_text("\n".join(f"{v:.17g}" for v in np.deg2rad(deg)) + "\n\n")
    np.testing.assert_allclose(io.read_angles(tmp_path / "r.txt"), np.deg2rad(deg))
    # a header naming the unit, contradicted by the values
    (tmp_path / "h.txt").write_text("theta (rad)\n" + "\n".join(f"{v}" for v in deg))
    with pytest.raises(FileFormatError, match=r"h\.txt.*says.*rad"):
        io.read_angles(tmp_path / "h.txt")
    # a number, then words: not a header any more
    (tmp_path / "bad.txt").write_text("0\n1\nend of file\n")
    with pytest.raises(FileFormatError, match=r"bad\.txt: line 3"):
        io.read_angles(tmp_path / "bad.txt")


# --------------------------------------------------------------- reconstruct


def test_reconstruct_refuses_degrees():
    sino = np.ones((90, 1, 32), np.float32)
    deg = np.linspace(0, 180, 90, endpoint=False)
    with pytest.raises(ParameterError, match=r"theta is in radians.*np\.deg2rad"):
        recon.reconstruct(sino, deg)
    with pytest.raises(ParameterError, match=r"theta is in radians"):  # even two angles
        recon.reconstruct(sino[:2], np.array([0.0, 90.0]))
    # one turn, end included, is radians
    recon.reconstruct(np.ones((91, 1, 32), np.float32), np.linspace(0, 2 * np.pi, 91))
    recon.reconstruct(sino, np.deg2rad(deg))


def test_recon_cli_on_a_radians_file_gives_the_degrees_volume(tmp_path):
    import tifffile

    from scintomo.cli import main

    _tooth_copy(tmp_path, "rad.h5", np.deg2rad(_tooth_degrees()))
    shutil.copy(shared_file("tooth.h5"), tmp_path / "deg.h5")
    vols = []
    for name in ("deg.h5", "rad.h5"):
        out = tmp_path / f"out_{name}"
        argv = ["recon", "--file-name", str(tmp_path / name), "--reconstruction-type", "full",
                "--rotation-axis", "320", "--output-folder", str(out), "--no-progress"]  # fmt: skip
        assert main(argv) == 0
        vols.append(np.stack([tifffile.imread(p) for p in sorted(out.rglob("*.tif*"))]))
    assert vols[0].size and np.array_equal(vols[0], vols[1])
