"""TIFF scans: frames of mixed dtypes, Savu's image_test layout, flats, darks
and angles given from elsewhere, gaps in the numbering, missing darks, and
damaged files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from scintomo import io
from scintomo.cli import main
from scintomo.exceptions import FileFormatError, ParameterError, ScintomoWarning


def _write(folder, prefix, frames, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        tifffile.imwrite(folder / f"{prefix}_{start + i:05d}.tiff", f)


def _quiet():
    w = warnings.catch_warnings()
    w.__enter__()
    warnings.simplefilter("error")
    return w


def _scan(rng, n=16, h=4, w=12):
    proj = rng.integers(1000, 3000, size=(n, h, w), dtype=np.uint16)
    flats = rng.integers(3000, 4000, size=(3, h, w), dtype=np.uint16)
    darks = rng.integers(90, 110, size=(2, h, w), dtype=np.uint16)
    deg = np.linspace(0, 180, n, endpoint=False)
    return proj, flats, darks, deg


# --------------------------------------------------------------- mixed dtypes


def test_mixed_int_and_float_frames_promote_to_float(tmp_path, rng):
    proj, _, _, deg = _scan(rng)
    frames = [f for f in proj]
    odd = np.full(proj.shape[1:], 7.25, np.float32)
    odd[0, :3] = [1e6, -5.0, np.nan]
    frames[5] = odd
    _write(tmp_path / "s", "proj", frames)
    np.savetxt(tmp_path / "s" / "angles.txt", deg)
    with io.read(tmp_path / "s") as scan:
        assert scan.projections.dtype == np.float32
        got = np.asarray(scan.projections)
        sliced = scan.projections[4:7, 0:1, :]
    assert got.dtype == np.float32
    # each frame as tifffile reads it on its own
    ref = np.stack([tifffile.imread(tmp_path / "s" / f"proj_{i:05d}.tiff") for i in range(16)])
    np.testing.assert_array_equal(got, ref.astype(np.float32))
    assert got[5, 0, 0] == 1e6 and got[5, 0, 1] == -5.0 and np.isnan(got[5, 0, 2])
    np.testing.assert_array_equal(sliced, ref[4:7, 0:1, :].astype(np.float32))


def test_mixed_unsigned_and_signed_frames_keep_negative_values(tmp_path, rng):
    proj, _, _, deg = _scan(rng)
    frames = [f for f in proj]
    frames[2] = np.full(proj.shape[1:], -5, np.int16)
    _write(tmp_path / "s", "proj", frames)
    np.savetxt(tmp_path / "s" / "angles.txt", deg)
    with io.read(tmp_path / "s") as scan:
        assert scan.projections.dtype == np.int32  # holds uint16 and int16
        assert scan.projections[2].min() == -5
        np.testing.assert_array_equal(scan.projections[3], proj[3])
        assert scan.metadata["mixed_dtypes"].keys() == {"uint16", "int16"}


def test_frames_no_dtype_holds_and_frames_of_other_sizes_are_refused(tmp_path, rng):
    proj, _, _, deg = _scan(rng)
    frames = [f.astype(np.float32) for f in proj]
    frames[1] = np.full(proj.shape[1:], 2**60, np.int64)
    _write(tmp_path / "a", "proj", frames)
    np.savetxt(tmp_path / "a" / "angles.txt", deg)
    with pytest.raises(FileFormatError, match="64-bit integers"):
        io.read(tmp_path / "a")
    frames = [f for f in proj]
    frames[7] = np.zeros((5, 12), np.uint16)
    _write(tmp_path / "b", "proj", frames)
    np.savetxt(tmp_path / "b" / "angles.txt", deg)
    with pytest.raises(FileFormatError, match=r"different sizes.*proj_00007\.tiff is \(5, 12\)"):
        io.read(tmp_path / "b")


def test_truncated_frame_is_a_named_error(tmp_path, rng):
    proj, _, _, deg = _scan(rng)
    _write(tmp_path / "s", "proj", proj)
    np.savetxt(tmp_path / "s" / "angles.txt", deg)
    f = tmp_path / "s" / "proj_00009.tiff"
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(FileFormatError, match=r"proj_00009\.tiff: not a readable TIFF"):
        io.read(tmp_path / "s")
    with pytest.raises(FileFormatError, match="not a readable HDF5"):
        (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 30)
        io.read(tmp_path / "junk.h5")


# ---------------------------------------------------------------- Savu layout


def _savu(tmp_path, rng, *, header="angles (deg)"):
    """Savu's image_test: projections in tiffs/, flats, darks, angles beside."""
    proj, flats, darks, deg = _scan(rng)
    root = tmp_path / "image_test"
    _write(root / "tiffs", "raw", proj)
    _write(root, "flat", flats, start=1)
    _write(root, "dark", darks, start=1)
    text = (header + "\n" if header else "") + "\n".join(f"{v:.4f}" for v in deg) + "\n\n\n"
    (root / "angles.txt").write_text(text)
    return root, proj, flats, darks, deg


@pytest.mark.parametrize("which", ["root", "tiffs"])
def test_savu_image_test_layout(tmp_path, rng, which):
    root, proj, flats, darks, deg = _savu(tmp_path, rng)
    w = _quiet()
    try:
        with io.read(root if which == "root" else root / "tiffs") as scan:
            assert scan.metadata["format"] == "tiff"
            np.testing.assert_array_equal(np.asarray(scan.projections), proj)
            np.testing.assert_array_equal(np.asarray(scan.flats), flats)
            np.testing.assert_array_equal(np.asarray(scan.darks), darks)
            np.testing.assert_allclose(scan.theta, np.deg2rad(deg), atol=1e-6)
            # a Dask worker opens the same scan again from open_kwargs
            with io.read(scan.path, **scan.open_kwargs) as again:
                np.testing.assert_array_equal(np.asarray(again.projections), proj)
                np.testing.assert_array_equal(np.asarray(again.darks), darks)
    finally:
        w.__exit__(None, None, None)


def test_savu_angles_file_listing_the_parked_frames(tmp_path, rng):
    """Savu's real image_test/angles.txt lists every frame: the first angle 10 more
    times before the scan and the last 10 more times after it (111 values for 91
    projections; the last scan angle written 91.7999, the parked ones 91.8). The
    parked repeats are dropped with a warning; a count that no trimming explains is
    still refused."""
    root, proj, flats, darks, deg = _savu(tmp_path, rng, header="")
    parked = np.r_[[deg[0]] * 10, deg, [deg[-1] + 1e-4] * 10]
    (root / "angles.txt").write_text("\n".join(f"{v:.4f}" for v in parked) + "\n")
    with pytest.warns(ScintomoWarning, match="10 repeats of the first angle and 10 of the last"):
        with io.read(root) as scan:
            np.testing.assert_allclose(scan.theta, np.deg2rad(deg), atol=1e-6)
    odd = np.r_[deg, deg[-1] + 3.0, deg[-1] + 6.0]  # two more distinct angles: no rule fits
    (root / "angles.txt").write_text("\n".join(f"{v:.4f}" for v in odd) + "\n")
    with pytest.raises(FileFormatError, match="angles"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            io.read(root).close()


def test_flats_darks_angles_given_from_elsewhere(tmp_path, rng):
    proj, flats, darks, deg = _scan(rng)
    _write(tmp_path / "tomo", "img", proj)
    _write(tmp_path / "calib" / "whites", "w", flats)  # a folder of numbered frames
    tifffile.imwrite(tmp_path / "calib" / "darks.tif", darks)  # one multi-page file
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "rot.txt").write_text("rotation\n" + "\n".join(map(str, deg)) + "\n\n")
    w = _quiet()
    try:
        with io.read(
            tmp_path / "tomo",
            flats=tmp_path / "calib" / "whites",
            darks=str(tmp_path / "calib" / "darks.tif"),
            angles=tmp_path / "meta" / "rot.txt",
        ) as scan:
            np.testing.assert_array_equal(np.asarray(scan.flats), flats)
            np.testing.assert_array_equal(np.asarray(scan.darks), darks)
            np.testing.assert_allclose(scan.theta, np.deg2rad(deg))
            assert scan.open_kwargs["flats"] == str(tmp_path / "calib" / "whites")
            # a Dask worker opens the same scan again from open_kwargs
            with io.read(scan.path, **scan.open_kwargs) as again:
                np.testing.assert_array_equal(np.asarray(again.darks), darks)
        # a glob pattern, and arrays
        pattern = str(tmp_path / "calib" / "whites" / "w_*.tiff")
        with io.read(tmp_path / "tomo", flats=pattern, darks=darks, angles=np.deg2rad(deg)) as s:
            np.testing.assert_array_equal(np.asarray(s.flats), flats)
            np.testing.assert_array_equal(np.asarray(s.darks), darks)
    finally:
        w.__exit__(None, None, None)
    with pytest.raises(FileNotFoundError, match="flats: .*nowhere"):
        io.read(tmp_path / "tomo", flats=tmp_path / "nowhere", angles=np.deg2rad(deg))
    with pytest.raises(FileFormatError, match="flats: no TIFF file matches"):
        io.read(tmp_path / "tomo", flats=str(tmp_path / "x_*.tif"), angles=np.deg2rad(deg))


def test_flats_option_is_refused_for_hdf5_scans(tmp_path, rng):
    proj, flats, darks, deg = _scan(rng)
    p = io.write_dxchange(tmp_path / "s.h5", proj, flats, darks, np.deg2rad(deg))
    with pytest.raises(ParameterError, match="flats= apply to a folder of TIFF frames"):
        io.read(p, flats=tmp_path)


def test_gap_in_numbering_warns_with_the_missing_numbers(tmp_path, rng):
    root, proj, flats, darks, deg = _savu(tmp_path, rng)
    (root / "tiffs" / "raw_00003.tiff").unlink()
    (root / "tiffs" / "raw_00011.tiff").unlink()
    keep = [i for i in range(16) if i not in (3, 11)]
    (root / "angles.txt").write_text("\n".join(f"{deg[i]:.4f}" for i in keep))
    with pytest.warns(ScintomoWarning, match=r"raw_\*: numbered 0\.\.15 but 2 number.*: 3, 11"):
        scan = io.read(root)
    np.testing.assert_array_equal(np.asarray(scan.projections), proj[keep])
    # two files with one number cannot be ordered
    tifffile.imwrite(root / "tiffs" / "raw_4.tiff", proj[4])
    with pytest.raises(FileFormatError, match=r"several files numbered 4"):
        io.read(root)


def test_missing_darks_warn_and_default_to_zero(tmp_path, rng):
    root, proj, flats, darks, deg = _savu(tmp_path, rng)
    for p in root.glob("dark_*.tiff"):
        p.unlink()
    with pytest.warns(ScintomoWarning, match="flats but no dark frames.*taken as zero"):
        scan = io.read(root)
    assert scan.darks is None


# --------------------------------------------------------------------- CLI


def test_recon_cli_reads_savu_layout_with_options(tmp_path, rng):
    """--flats/--darks/--angles (and [input] in --config) give the same volume
    as the same scan laid out the usual way."""
    root, proj, flats, darks, deg = _savu(tmp_path, rng)
    std = io.write_tiff_scan(tmp_path / "std", proj, flats, darks, np.deg2rad(deg))
    common = ["--reconstruction-type", "full", "--rotation-axis", "5.5", "--no-progress"]
    assert main(["recon", "--file-name", str(std), *common,
                 "--output-folder", str(tmp_path / "out_std")]) == 0  # fmt: skip
    # the projections alone in a folder elsewhere; everything else given
    other = tmp_path / "elsewhere"
    _write(other, "raw", proj)
    assert main(["recon", "--file-name", str(other), *common,
                 "--flats", str(root / "flat_*.tiff"), "--darks", str(root / "dark_*.tiff"),
                 "--angles", str(root / "angles.txt"),
                 "--output-folder", str(tmp_path / "out_opt")]) == 0  # fmt: skip
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[input]\nfile = "{other}"\nflats = "{root / "flat_*.tiff"}"\n'
        f'darks = "{root / "dark_*.tiff"}"\nangles = "{root / "angles.txt"}"\n'
    )
    assert main(["recon", "--config", str(cfg), *common,
                 "--output-folder", str(tmp_path / "out_cfg")]) == 0  # fmt: skip

    def volume(folder):
        files = sorted((folder).rglob("*.tif*"))
        assert files, folder
        return np.stack([tifffile.imread(f) for f in files])

    ref = volume(tmp_path / "out_std")
    np.testing.assert_array_equal(volume(tmp_path / "out_opt"), ref)
    np.testing.assert_array_equal(volume(tmp_path / "out_cfg"), ref)
    # the options belong to TIFF scans
    h5 = io.write_dxchange(tmp_path / "s.h5", proj, flats, darks, np.deg2rad(deg))
    assert main(["recon", "--file-name", str(h5), *common, "--flats", str(root)]) == 2


def test_angles_array_in_degrees_is_refused(tmp_path, rng):
    proj, _, _, deg = _scan(rng)
    _write(tmp_path / "s", "proj", proj)
    with pytest.raises(ParameterError, match=r"angles spans .*radians.*np\.deg2rad"):
        io.read(tmp_path / "s", angles=deg)


def test_multipage_tiff_of_mixed_dtypes_keeps_every_page(tmp_path):
    pages = [
        np.full((4, 5), 3, np.uint16),
        np.full((4, 5), -5.5, np.float32),
        np.full((4, 5), 70000, np.uint32),
    ]
    with tifffile.TiffWriter(tmp_path / "m.tif") as w:
        for p in pages:
            w.write(p)
    a = io.read_tiff_pages(tmp_path / "m.tif")
    assert a.shape == (3, 4, 5) and a.dtype == np.float64
    np.testing.assert_array_equal(a, np.stack([p.astype(np.float64) for p in pages]))
    # characterise reads its stacks the same way (tifffile.imread gave the first page only)
    from scintomo.cli.characterise import _read_stack

    np.testing.assert_array_equal(_read_stack(tmp_path / "m.tif"), a)


def test_flats_pattern_of_unnumbered_files_in_name_order(tmp_path, rng):
    proj, flats, _, deg = _scan(rng)
    _write(tmp_path / "s", "proj", proj)
    for name, f in zip(("flatA", "flatB", "flatC"), flats, strict=True):
        tifffile.imwrite(tmp_path / f"{name}.tif", f)
    with pytest.warns(ScintomoWarning, match="no dark frames"):
        scan = io.read(tmp_path / "s", flats=str(tmp_path / "flat*.tif"), angles=np.deg2rad(deg))
    np.testing.assert_array_equal(np.asarray(scan.flats), flats)
