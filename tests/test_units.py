"""One length grammar for every --pixel-size, and the pixel size a file states
(DICOM pixel spacing, TIFF resolution tags) used when none is given."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import tifffile

from conftest import shared_file
from scintomo.cli import build_parser, main
from scintomo.exceptions import ParameterError, ScintomoWarning
from scintomo.io import pixel_size_from_file
from scintomo.simulate import GaussianPSF, bar_target
from scintomo.units import parse_length_um, resolve_pixel_size


@pytest.mark.parametrize(
    "text, um",
    [
        ("0.185um", 0.185),
        ("0.392 mm", 392.0),
        ("650nm", 0.65),
        ("0.185 µm", 0.185),
        ("0.185 μm", 0.185),  # Greek mu, as some keyboards type it
        ("2 microns", 2.0),
        ("1.3", 1.3),  # a bare number is micrometres
        (" 1e-3 m ", 1000.0),
        (6.5, 6.5),
    ],
)
def test_length_grammar(text, um):
    assert parse_length_um(text) == pytest.approx(um, rel=1e-12)


@pytest.mark.parametrize(
    "text", ["1e400um", "1e305 m", "inf", "nan um", "0", "-1um", "0 nm", "1 furlong", "um", True]
)
def test_length_refused(text):
    with pytest.raises(ParameterError):
        parse_length_um(text)


# every command's --pixel-size speaks the same grammar
COMMANDS = [
    ["recon", "--file-name", "x.h5"],
    ["mtf", "x.tif", "-o", "r.json"],
    ["characterise", "nps", "x.tif"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("text, um", [("0.392 mm", 392.0), ("650nm", 0.65), ("0.185", 0.185)])
def test_every_command_parses_pixel_size(cmd, text, um):
    args = build_parser().parse_args([*cmd, "--pixel-size", text])
    assert args.pixel_size == pytest.approx(um)


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_refuses_bad_pixel_size(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*cmd, "--pixel-size", "1e400um"])
    assert e.value.code == 2
    assert "a length must be finite, got '1e400um'" in capsys.readouterr().err


def test_every_pixel_size_help_states_the_rule(capsys):
    for cmd in (["recon"], ["mtf"], ["characterise", "nps"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*cmd, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "a bare number is micrometres" in out, cmd


# ------------------------------------------------------------ from the file


def test_leeds_dicom_pixel_spacing():
    import pydicom

    path = shared_file("leeds.dcm")
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    assert "PixelSpacing" not in ds and [float(v) for v in ds.ImagePlanePixelSpacing] == [
        0.388,
        0.388,
    ]
    um, source = pixel_size_from_file(path)
    assert um == pytest.approx(388.0)
    assert "ImagePlanePixelSpacing" in source


def test_tiff_resolution_tags(tmp_path):
    img = np.zeros((4, 4), np.uint16)
    tifffile.imwrite(
        tmp_path / "ij.tif", img, imagej=True, resolution=(1 / 0.185, 1 / 0.185),
        metadata={"unit": "um"},
    )  # fmt: skip
    assert pixel_size_from_file(tmp_path / "ij.tif")[0] == pytest.approx(0.185)
    tifffile.imwrite(
        tmp_path / "cm.tif", img, resolution=(1e4 / 6.5, 1e4 / 6.5), resolutionunit="CENTIMETER"
    )
    assert pixel_size_from_file(tmp_path / "cm.tif")[0] == pytest.approx(6.5)
    tifffile.imwrite(tmp_path / "in.tif", img, resolution=(1000, 1000), resolutionunit="INCH")
    assert pixel_size_from_file(tmp_path / "in.tif")[0] == pytest.approx(25.4)
    # screen resolutions written by default, no tags, other files: nothing stated
    tifffile.imwrite(tmp_path / "72.tif", img, resolution=(72, 72), resolutionunit="INCH")
    tifffile.imwrite(tmp_path / "none.tif", img)
    np.save(tmp_path / "a.npy", img)
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    for name in ("72.tif", "none.tif", "a.npy", "bad.tif"):
        assert pixel_size_from_file(tmp_path / name) is None, name


def test_given_pixel_size_wins_and_warns_when_it_disagrees():
    found = (388.0, "leeds.dcm: DICOM ImagePlanePixelSpacing 0.388 mm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_pixel_size("0.39 mm", found) == (390.0, "given")  # 0.5 %: quiet
        assert resolve_pixel_size(None, found) == found
        assert resolve_pixel_size(None, None) == (None, "none")
    with pytest.warns(ScintomoWarning, match=r"400 um differs from the file's 388 um.*3\.09 %"):
        assert resolve_pixel_size("0.4mm", found)[0] == 400.0


def test_mtf_cli_takes_the_pixel_size_from_the_tiff(tmp_path):
    im, _ = bar_target([0.05, 0.1, 0.15, 0.2], GaussianPSF(1.0), n_bars=10)
    path = tmp_path / "bars.tif"
    tifffile.imwrite(
        path, im.astype(np.float32), imagej=True, resolution=(1.0, 1.0), metadata={"unit": "um"}
    )
    out = tmp_path / "auto.json"
    assert main(["mtf", str(path), "--bars", "auto", "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    # 1 um pixels from the file: cycles/px x 1000 = lp/mm
    assert rep["frequency_unit"] == "lp/mm"
    np.testing.assert_allclose(rep["frequencies"], [50, 100, 150, 200], rtol=0.01)


def test_thickness_options_speak_the_same_grammar():
    args = build_parser().parse_args(
        ["characterise", "absorption", "CsI", "--density", "4.5", "--thickness", "30", "0.1mm"]
    )
    assert args.thickness == [30.0, 100.0]
    args = build_parser().parse_args(
        ["characterise", "light-yield", "--signal", "1", "--reference-signal", "1",
         "--material", "CsPbBr3", "--density", "4.55", "--thickness", "30 um",
         "--reference-thickness", "0.5 mm"]
    )  # fmt: skip
    assert (args.thickness, args.reference_thickness) == (30.0, 500.0)


def test_mtf_cli_on_leeds_dicom_uses_its_pixel_spacing(tmp_path):
    """No --pixel-size: the DICOM's 0.388 mm at the panel; with the RT image's
    magnification (RTImageSID / RadiationMachineSAD = 1499 / 1000) the detected
    bar groups fall on the Leeds TOR 18FG's nominal frequencies at the object,
    an independent check of the spacing read from the file."""
    tor_18fg = np.array([0.50, 0.56, 0.63, 0.71, 0.80, 0.90, 1.00, 1.12, 1.25, 1.40, 1.60, 1.80])
    out = tmp_path / "leeds.json"
    argv = ["mtf", str(shared_file("leeds.dcm")), "--bars", "auto", "--magnification", "1.499"]
    assert main([*argv, "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["frequency_unit"] == "lp/mm" and rep["pixel_size_um"] == pytest.approx(
        388.0 / 1.499
    )  # at the object
    f = np.asarray(rep["frequencies"])
    assert f.size >= 6
    nearest = tor_18fg[np.abs(f[:, None] / tor_18fg[None, :] - 1).argmin(axis=1)]
    np.testing.assert_allclose(f, nearest, rtol=0.03)
