"""scintomo.io: readers (DXchange, NXtomo, TIFF stacks), writers, bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from scintomo import io
from scintomo.exceptions import FileFormatError, ShapeError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TOOTH = DATA / "tooth.h5"
K11 = DATA / "k11_diad" / "k11-18014.nxs"
needs_tooth = pytest.mark.skipif(
    not TOOTH.exists(), reason="real data ../shared/data/tooth.h5 absent"
)
needs_k11 = pytest.mark.skipif(not K11.exists(), reason="real data ../shared/data/k11_diad absent")


def small_scan(rng, n=12, h=6, w=10):
    proj = rng.integers(100, 4000, size=(n, h, w), dtype=np.uint16)
    flats = rng.integers(3000, 4000, size=(3, h, w), dtype=np.uint16)
    darks = rng.integers(90, 110, size=(2, h, w), dtype=np.uint16)
    theta = np.linspace(0, np.pi, n, endpoint=False)
    return proj, flats, darks, theta


# ---------------------------------------------------------------- DXchange


@needs_tooth
def test_read_dxchange_tooth_lazy_rows_and_radians():
    with io.read(TOOTH) as scan, h5py.File(TOOTH, "r") as f:
        assert scan.metadata["format"] == "dxchange"
        assert scan.shape == (181, 2, 640)
        np.testing.assert_allclose(scan.theta, np.deg2rad(f["exchange/theta"][()]))
        assert 0 <= scan.theta.min() and scan.theta.max() <= np.pi + 1e-6  # degrees in the file
        np.testing.assert_array_equal(scan.projections[:, 1:2, :], f["exchange/data"][:, 1:2, :])
        assert scan.flats.shape == (10, 2, 640) and scan.darks.shape == (10, 2, 640)


def test_dxchange_roundtrip_and_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    proj, flats, darks, theta = small_scan(rng)
    p = io.write_dxchange(tmp_path / "s.h5", proj, flats, darks, theta)
    with io.read(p) as scan:
        np.testing.assert_array_equal(scan.projections[:, 2:4, :], proj[:, 2:4, :])
        np.testing.assert_allclose(scan.theta, theta)
    # mismatched angle count
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["exchange/data"] = proj
        f["exchange/theta"] = np.zeros(5)
    with pytest.raises(FileFormatError, match=r"bad\.h5.*5 angles.*12 projections"):
        io.read(tmp_path / "bad.h5")
    # wrong shape of flats
    with h5py.File(tmp_path / "bad2.h5", "w") as f:
        f["exchange/data"] = proj
        f["exchange/data_white"] = flats[:, :3]
        f["exchange/theta"] = np.zeros(12)
    with pytest.raises(FileFormatError, match=r"bad2\.h5.*data_white"):
        io.read(tmp_path / "bad2.h5")
    # truncated file
    raw = p.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(FileFormatError, match=r"trunc\.h5"):
        io.read(tmp_path / "trunc.h5", format="dxchange")
    with pytest.raises(FileNotFoundError, match="nothere"):
        io.read(tmp_path / "nothere.h5")


# ------------------------------------------------------------------ NXtomo


@needs_k11
def test_read_nxtomo_k11_external_links_and_flat_series():
    with io.read(K11) as scan, h5py.File(K11, "r") as f:
        assert scan.metadata["format"] == "nxtomo"
        keys = f["entry/instrument/imaging/image_key"][()]
        assert scan.shape == (int(np.sum(keys == 0)), 22, 26) == (3001, 22, 26)
        assert scan.flats.shape[0] == 100 and scan.darks.shape[0] == 100
        # flats were taken before and after the projections
        assert len(scan.flat_series) == 2
        assert scan.flat_positions == (-0.5, 3000.5)
        # independent read of the same frames through the external link
        raw = f["entry/imaging/data"]
        sel = np.nonzero(keys == 0)[0]
        np.testing.assert_array_equal(
            scan.projections[:, 5:8, :], raw[sel[0] : sel[-1] + 1, 5:8, :]
        )
        np.testing.assert_array_equal(scan.darks[:, 0, :], raw[np.nonzero(keys == 2)[0], 0, :])
        angles = f["entry/imaging_sum/gts_theta_value"][()][sel]
        np.testing.assert_allclose(scan.theta, np.deg2rad(angles))
        assert 89 < np.rad2deg(scan.theta[0]) < 91 and 269 < np.rad2deg(scan.theta[-1]) < 271
        # the angles of the NXdata group that shows the detector's frames; the file's metadata
        assert scan.metadata["angles_path"] == "/entry/imaging/gts_theta_value"
        assert scan.metadata["/entry/instrument/source/energy"].endswith("GeV")
        assert scan.metadata["start_time"].startswith("2022-10-15")


@needs_k11
def test_nxtomo_missing_linked_file_is_named(tmp_path):
    shutil.copy(K11, tmp_path / "k11.nxs")
    with pytest.raises(
        FileFormatError, match=r"k11\.nxs.*external link.*k11-18014-imaging\.h5.*missing"
    ):
        io.read(tmp_path / "k11.nxs")


def test_nxtomo_roundtrip_image_keys(tmp_path):
    rng = np.random.default_rng(1)
    proj, flats, darks, theta = small_scan(rng)
    after = flats + 7
    p = io.write_nxtomo(tmp_path / "s.nxs", proj, flats, darks, theta, flats_after=after)
    # mark one projection invalid (image_key 3): it must be dropped with its angle
    with h5py.File(p, "r+") as f:
        k = f["entry/instrument/detector/image_key"]
        keys = k[()]
        first_proj = int(np.nonzero(keys == 0)[0][0])
        keys[first_proj + 4] = 3
        k[...] = keys
    with io.read(p) as scan:
        keep = np.delete(np.arange(12), 4)
        assert scan.shape == (11, 6, 10)
        np.testing.assert_array_equal(scan.projections[:, 1:3, :], proj[keep][:, 1:3, :])
        np.testing.assert_allclose(scan.theta, theta[keep])
        assert scan.flat_positions == (-0.5, 10.5)
        np.testing.assert_array_equal(scan.flat_series[1][:], after)
        np.testing.assert_array_equal(np.asarray(scan.flats), np.concatenate([flats, after]))
        np.testing.assert_array_equal(scan.darks[:, :, 2:4], darks[:, :, 2:4])
        assert scan.metadata["n_invalid"] == 1
        # integer and list keys, reverse order
        np.testing.assert_array_equal(scan.projections[3], proj[keep][3])
        np.testing.assert_array_equal(scan.projections[[5, 1]], proj[keep][[5, 1]])


def test_nxtomo_bad_files(tmp_path):
    rng = np.random.default_rng(2)
    proj, flats, darks, theta = small_scan(rng)
    p = io.write_nxtomo(tmp_path / "s.nxs", proj, flats, darks, theta)
    q = tmp_path / "keys.nxs"
    shutil.copy(p, q)
    with h5py.File(q, "r+") as f:
        del f["entry/instrument/detector/image_key"]
        f["entry/instrument/detector/image_key"] = np.zeros(4, np.int32)
    with pytest.raises(FileFormatError, match=r"keys\.nxs.*image_key has 4 entries.*17 frames"):
        io.read(q)
    r = tmp_path / "angles.nxs"
    shutil.copy(p, r)
    with h5py.File(r, "r+") as f:
        del f["entry/sample/rotation_angle"]
        f["entry/sample/rotation_angle"] = np.zeros(7)
    with pytest.raises(FileFormatError, match=r"angles\.nxs.*7 angles.*17 frames.*12 projections"):
        io.read(r)
    raw = p.read_bytes()
    (tmp_path / "trunc.nxs").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match=r"trunc\.nxs"):
        io.read(tmp_path / "trunc.nxs", format="nxtomo")
    s = tmp_path / "nodata.nxs"
    with h5py.File(s, "w") as f:
        f["entry/x"] = 1
    with pytest.raises(FileFormatError, match=r"nodata\.nxs.*no NXtomo entry"):
        io.read(s)


# ------------------------------------------------------------- TIFF stacks


def test_tiff_stack_roundtrip_lazy_and_two_flat_series(tmp_path):
    rng = np.random.default_rng(3)
    proj, flats, darks, theta = small_scan(rng)
    folder = io.write_tiff_scan(tmp_path / "scan", proj, flats, darks, theta, flats_after=flats + 3)
    assert (folder / "proj_00000.tiff").exists() and (folder / "angles.txt").exists()
    with io.read(folder) as scan:
        assert scan.metadata["format"] == "tiff"
        assert scan.shape == proj.shape and scan.projections.dtype == np.uint16
        np.testing.assert_array_equal(scan.projections[:, 2:5, :], proj[:, 2:5, :])
        np.testing.assert_allclose(scan.theta, theta, atol=1e-9)
        np.testing.assert_array_equal(scan.darks[:], darks)
        assert scan.flat_positions == (-0.5, 11.5)
        np.testing.assert_array_equal(scan.flat_series[1][:], flats + 3)


def test_tiff_stack_bad_inputs(tmp_path):
    rng = np.random.default_rng(4)
    proj, flats, darks, theta = small_scan(rng)
    folder = io.write_tiff_scan(tmp_path / "scan", proj, flats, darks, theta[:-2])
    with pytest.raises(FileFormatError, match=r"10 angles in .*angles\.txt but 12 projections"):
        io.read(folder)
    (folder / "angles.txt").unlink()
    with pytest.raises(FileFormatError, match="no angles file"):
        io.read(folder)
    folder2 = io.write_tiff_scan(tmp_path / "scan2", proj, flats[:, :4], darks, theta)
    with pytest.raises(FileFormatError, match=r"flat_00000\.tiff: flats are \(4, 10\)"):
        io.read(folder2)
    folder3 = io.write_tiff_scan(tmp_path / "scan3", proj, None, None, theta)
    (folder3 / "proj_00003.tiff").write_bytes(b"II*\x00garbage")
    # found when the folder is opened: every frame's header is read then
    with pytest.raises(FileFormatError, match=r"proj_00003\.tiff: not a readable TIFF"):
        io.read(folder3)


def test_angles_file_units(tmp_path):
    (tmp_path / "a.txt").write_text("# unit: rad\n0.0\n1.0, 2.0, 3.0\n")
    np.testing.assert_allclose(io.read_angles(tmp_path / "a.txt"), [0, 1, 2, 3])
    (tmp_path / "b.txt").write_text("0\n90\nx\n")
    with pytest.raises(FileFormatError, match=r"b\.txt: line 3"):
        io.read_angles(tmp_path / "b.txt")


# ------------------------------------------------------------------ writers


@pytest.mark.parametrize("fmt", ["tiff", "h5", "zarr"])
def test_volume_writers_blocks_resume_and_read_back(tmp_path, fmt):
    rng = np.random.default_rng(5)
    vol = rng.standard_normal((10, 8, 8)).astype(np.float32)
    name = {"tiff": "rec", "h5": "rec.h5", "zarr": "rec.zarr"}[fmt]
    w = io.volume_writer(fmt, tmp_path / name, vol.shape, chunk_rows=4)
    blocks = [(0, 4), (4, 8), (8, 10)]
    assert not any(w.done(a, b) for a, b in blocks)
    w.write(0, 4, vol[0:4])
    with pytest.raises(ShapeError):
        w.write(4, 8, vol[0:3])
    if fmt == "h5":
        w.finish()  # incomplete: stays under .partial, not under its final name
        assert not (tmp_path / name).exists()
    # a new run sees block 0 done and writes the others
    w = io.volume_writer(fmt, tmp_path / name, vol.shape, chunk_rows=4)
    assert w.done(0, 4) and not w.done(4, 8)
    for a, b in blocks[1:]:
        w.write(a, b, vol[a:b])
    out = w.finish({"center": 4.5})
    if fmt == "tiff":
        back = np.stack([tifffile.imread(p) for p in sorted(out.glob("recon_*.tiff"))])
    elif fmt == "h5":
        with h5py.File(out) as f:
            back = f["exchange/data"][()]
            assert f["exchange/data"].attrs["center"] == 4.5
    else:
        import zarr

        meta = json.loads((out / "zarr.json").read_text())
        assert meta["zarr_format"] == 3 and meta["chunk_grid"]["configuration"]["chunk_shape"] == [
            4,
            8,
            8,
        ]
        back = zarr.open_array(str(out), mode="r")[:]
    np.testing.assert_array_equal(back, vol)


def test_atomic_tiff_slice_never_half_written(tmp_path, monkeypatch):
    w = io.TiffSliceWriter(tmp_path / "rec", (3, 4, 4))

    def boom(path, data, **kw):
        Path(path).write_bytes(b"II*\x00half")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", boom)
    with pytest.raises(OSError):
        w.write(0, 3, np.zeros((3, 4, 4), np.float32))
    assert list((tmp_path / "rec").iterdir()) == []
    assert not w.done(0, 1)


def test_zarr_writer_refuses_other_shape(tmp_path):
    io.write_zarr(tmp_path / "v.zarr", np.zeros((4, 3, 3), np.float32), chunk_rows=2)
    with pytest.raises(FileFormatError, match=r"v\.zarr.*existing Zarr array"):
        io.volume_writer("zarr", tmp_path / "v.zarr", (5, 3, 3))
