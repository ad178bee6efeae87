"""Truncated and garbled files: the readers raise a named scintomo error (or
FileNotFoundError), never a raw h5py / tifffile exception, whether the damage
shows when the file is opened or only when its frames are read."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from scintomo import io
from scintomo.exceptions import FileFormatError, ScintomoError


def _read_all(target):
    with io.read(target) as scan:
        for stack in (scan.projections, scan.flats, scan.darks):
            if stack is not None:
                np.asarray(stack)


def _damaged(data: bytes):
    """Truncations and 64-byte garbles at positions across the file."""
    n = len(data)
    cuts = sorted({0, 1, 8, 64, 100, 200, 400, 800, 2048, n // 4, n // 2, 3 * n // 4, n - 64})
    for cut in (c for c in cuts if 0 <= c < n):
        yield f"truncated at {cut}", data[:cut]
        g = bytearray(data)
        for i in range(cut, min(n, cut + 64)):
            g[i] ^= 0xA5
        yield f"garbled at {cut}", bytes(g)


def _scan(rng):
    proj = rng.integers(0, 4000, (12, 6, 10), dtype=np.uint16)
    return proj, proj[:3] + 3000, proj[:2] // 40, np.linspace(0, np.pi, 12, endpoint=False)


@pytest.mark.parametrize("kind", ["dxchange", "dxchange-gzip", "nxtomo", "tiff"])
def test_damaged_files_raise_named_errors(tmp_path, rng, kind, caplog):
    proj, flats, darks, theta = _scan(rng)
    if kind.startswith("dxchange"):
        comp = "gzip" if kind.endswith("gzip") else None
        good = io.write_dxchange(tmp_path / "g.h5", proj, flats, darks, theta, compression=comp)
        victim, target = tmp_path / "x.h5", tmp_path / "x.h5"
    elif kind == "nxtomo":
        good = io.write_nxtomo(tmp_path / "g.nxs", proj, flats, darks, theta)
        victim, target = tmp_path / "x.nxs", tmp_path / "x.nxs"
    else:
        folder = io.write_tiff_scan(tmp_path / "t", proj, flats, darks, theta)
        good = victim = folder / "proj_00004.tiff"
        target = folder
    data = good.read_bytes()
    outcomes = {"named error": 0, "read": 0}
    for what, bad in _damaged(data):
        victim.write_bytes(bad)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _read_all(target)
            outcomes["read"] += 1  # damage in padding or values: nothing to detect
        except (ScintomoError, FileNotFoundError) as e:
            assert str(e), what
            outcomes["named error"] += 1
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{kind} {what}: raw {type(e).__name__}: {e}")
    assert outcomes["named error"] >= 5, outcomes
    # tifffile's own log lines about the damage stay off the terminal
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("tifffile")]


def test_garbage_and_empty_inputs(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(FileFormatError, match=r"junk\.h5: not a readable HDF5"):
        io.read(tmp_path / "junk.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match="no numbered projection TIFFs"):
        io.read(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        io.read(tmp_path / "missing.h5")
    import h5py

    with h5py.File(tmp_path / "group.h5", "w") as f:
        f.create_group("exchange/data")
    with pytest.raises(FileFormatError, match=r"/exchange/data is a group, not a dataset"):
        io.read(tmp_path / "group.h5")
