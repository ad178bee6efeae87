"""Every command speaks one language: broken input gives exit status 2 and one
line on stderr, ``scintomo CMD: error: ...``, never a traceback or a warning dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from conftest import shared_file
from scintomo.cli import error_message, main


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A folder of broken inputs, made with independent tools (numpy, h5py, tifffile)."""
    d = tmp_path_factory.mktemp("broken")
    rng = np.random.default_rng(7)
    (d / "garbage.dcm").write_bytes(rng.bytes(4000))
    (d / "garbage.tif").write_bytes(rng.bytes(3000))
    (d / "garbage.h5").write_bytes(rng.bytes(3000))
    (d / "empty.npy").write_bytes(b"")
    tifffile.imwrite(d / "ok.tif", np.zeros((32, 32), np.uint16))
    (d / "trunc.tif").write_bytes((d / "ok.tif").read_bytes()[:300])
    np.save(d / "object.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(d / "cube.npy", np.zeros((2, 3, 8, 8), np.float32))
    np.save(d / "text.npy", np.array(["a", "b"]))
    with h5py.File(d / "group.h5", "w") as f:  # /exchange/data is a group
        f.create_group("exchange/data")
        f["exchange/data_white"] = np.ones((2, 4, 4))
        f["exchange/theta"] = np.arange(3.0)
    with h5py.File(d / "scan.h5", "w") as f:  # a small valid DXchange scan
        f["exchange/data"] = np.full((8, 2, 16), 500, np.uint16)
        f["exchange/data_white"] = np.full((2, 2, 16), 1000, np.uint16)
        f["exchange/data_dark"] = np.zeros((2, 2, 16), np.uint16)
        f["exchange/theta"] = np.linspace(0, 180, 8, endpoint=False)
    return d


def _cases(d: Path, leeds: Path | None):
    out = str(d / "out.json")
    nodir = "/nonexistent_dir_scintomo/out"
    cases = [
        ["mtf", str(d / "garbage.dcm"), "-o", out],
        ["mtf", str(d / "garbage.tif"), "-o", out],
        ["mtf", str(d / "trunc.tif"), "-o", out],
        ["mtf", str(d / "object.npy"), "-o", out],
        ["mtf", str(d / "empty.npy"), "-o", out],
        ["mtf", str(d / "cube.npy"), "-o", out],
        ["mtf", str(d / "text.npy"), "-o", out],
        ["mtf", str(d / "missing.npy"), "-o", out],
        ["mtf", str(d / "ok.tif"), "-o", nodir + ".json"],
        ["mtf", str(d / "ok.tif"), "--bars", "1", "2", "-o", out],
        ["mtf", str(d / "ok.tif"), "--bootstrap", "x", "-o", out],
        ["flatfield", str(d / "group.h5"), "-o", str(d / "f.h5")],
        ["flatfield", str(d / "garbage.h5"), "-o", str(d / "f.h5")],
        ["flatfield", str(d / "scan.h5"), "-o", nodir + ".h5"],
        ["flatfield", str(d / "scan.h5"), "-o", str(d / "f.txt")],
        ["deconvolve", str(d / "scan.h5"), "--psf", "/nonexistent.npy", "-o", str(d / "d.h5")],
        ["deconvolve", str(d / "scan.h5"), "--psf", str(d / "object.npy"), "-o", str(d / "d.h5")],
        ["deconvolve", str(d / "garbage.tif"), "--psf", str(d / "object.npy"), "-o", out],
        ["recon", "--file-name", str(d / "group.h5")],
        ["recon", "--file-name", str(d / "garbage.h5")],
        ["recon", "--file-name", str(d / "missing.h5")],
        ["recon", "--file-name", str(d / "scan.h5"), "--reconstruction-type", "full",
         "--cluster", "bogus", "--output-folder", str(d / "rec")],
        ["recon", "--file-name", str(d / "scan.h5"), "--retrieve-phase-method", "paganin",
         "--output-folder", str(d / "rec")],
        ["recon", "--file-name", str(d / "scan.h5"), "--psf", "/nonexistent.npy",
         "--output-folder", str(d / "rec")],
        ["characterise", "nps", str(d / "object.npy"), "--pixel-size", "1"],
        ["characterise", "nps", str(d / "garbage.tif"), "--pixel-size", "1"],
        ["characterise", "uniformity", str(d / "trunc.tif")],
        ["characterise", "afterglow", str(d / "text.npy"), "--frame-time", "1"],
        ["characterise", "absorption", "Xx", "--density", "1", "--thickness", "1"],
        ["characterise", "nps", str(d / "ok.tif"), "--pixel-size", "1", "-o", nodir + ".json"],
        ["recon", "--file-name", str(d / "scan.h5"), "--output-folder", nodir + "/rec"],
        ["init", nodir + ".toml"],
        ["demo", "--size", "0", "-o", str(d / "demo")],
        ["demo", "-o", nodir],
    ]  # fmt: skip
    if leeds is not None:  # a real DICOM cut short
        trunc = d / "trunc.dcm"
        trunc.write_bytes(leeds.read_bytes()[:5000])
        cases.append(["mtf", str(trunc), "-o", out])
    return cases


def _check(argv, rc, err):
    cmd = " ".join(a for a in argv[:2] if not a.startswith(("-", "/")) and "." not in a)
    lines = err.strip().splitlines()
    assert rc == 2, (argv, rc, err)
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith(f"scintomo {cmd}: error: "), (argv, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)


def test_every_command_on_broken_input(broken, capsys):
    leeds = None
    try:
        leeds = shared_file("leeds.dcm")
    except pytest.skip.Exception:
        pass
    for argv in _cases(broken, leeds):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse usage errors
            rc = e.code
        _check(argv, rc, capsys.readouterr().err)
    assert not Path("/nonexistent_dir_scintomo").exists()  # refused, not created


def test_messages_say_what_is_wrong(broken, capsys):
    main(["deconvolve", str(broken / "scan.h5"), "--psf", "/nonexistent.npy", "-o", "x.h5"])
    assert "/nonexistent.npy: no such file" in capsys.readouterr().err
    main(["recon", "--file-name", str(broken / "scan.h5"), "--retrieve-phase-method", "paganin"])
    err = capsys.readouterr().err
    assert all(o in err for o in ("--energy", "--propagation-distance", "--delta-beta"))
    main(["flatfield", str(broken / "group.h5"), "-o", str(broken / "f.h5")])
    assert "/exchange/data is a group" in capsys.readouterr().err


def test_error_message_mapping():
    assert (
        error_message(FileNotFoundError(Path("/a/b.npy"))) == "/a/b.npy: no such file or directory"
    )
    assert error_message(FileNotFoundError(2, "No such file or directory", "/x")) == (
        "/x: No such file or directory"
    )
    assert "not enough memory" in error_message(MemoryError())
    assert error_message(KeyError("Unable to open object 'data'")) == "Unable to open object 'data'"
    assert error_message(ValueError("bad\n  ^\nthing")) == "bad thing"
    internal = error_message(AttributeError("'NoneType' object has no attribute 'x'"))
    assert internal.startswith("internal error (AttributeError") and "SCINTOMO_DEBUG=1" in internal


def test_entry_point_in_a_subprocess(broken):
    """The installed command: one line, exit 2; SCINTOMO_DEBUG=1 shows the traceback."""
    argv = [sys.executable, "-m", "scintomo", "mtf", str(broken / "garbage.dcm"), "-o", "x.json"]
    env = dict(os.environ, PYTHONWARNINGS="default")
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    _check(argv[3:], r.returncode, r.stderr)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env=dict(env, SCINTOMO_DEBUG="1"))  # fmt: skip
    assert r.returncode != 0 and "Traceback" in r.stderr


def _all_parsers(parser, name="scintomo"):
    import argparse

    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{name} {sub_name}")


def test_help_of_every_command():
    """No '(default: None)', no RST markup, every option and argument explained."""
    from scintomo.cli import build_parser

    seen = []
    for name, parser in _all_parsers(build_parser()):
        text = parser.format_help()
        seen.append(name)
        assert "default: None" not in text, name
        assert "``" not in text and ":func:" not in text, name
        for action in parser._actions:
            if action.dest in ("help", "version") or action.help == "==SUPPRESS==":
                continue
            label = "/".join(action.option_strings) or action.dest
            assert action.help and len(action.help.strip()) > 3, f"{name} {label}: no help"
            assert not action.help.strip().startswith("default"), f"{name} {label}"
    assert {"scintomo characterise nps", "scintomo characterise afterglow", "scintomo recon"} <= (
        set(seen)
    )


def test_a_warning_is_one_line(tmp_path):
    from scintomo.simulate import add_noise, slanted_edge

    path = tmp_path / "low.npy"  # a real edge at SNR 1: measured, with a warning
    np.save(path, add_noise(slanted_edge((96, 96), 5.0, contrast=0.05), read_noise=0.05, seed=0))
    argv = [sys.executable, "-m", "scintomo", "mtf", str(path), "--bootstrap", "0"]
    r = subprocess.run([*argv, "-o", str(tmp_path / "r.json")], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scintomo mtf: warning: low edge contrast")
