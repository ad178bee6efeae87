"""Where commands write: beside the path the user gave, into folders that exist."""

from __future__ import annotations

import numpy as np

from scintomo.cli import main
from scintomo.io import write_dxchange


def _tiny_scan(path):
    x = np.linspace(-1, 1, 32)
    sino = np.clip(1 - x**2, 0, None)  # a centred disc's projection, the same at every angle
    proj = np.broadcast_to(1000 * np.exp(-sino), (16, 2, 32)).astype(np.uint16)
    write_dxchange(
        path,
        proj,
        np.full((2, 2, 32), 1000, np.uint16),
        np.zeros((2, 2, 32), np.uint16),
        np.linspace(0, np.pi, 16, endpoint=False),
    )


def test_recon_writes_beside_a_symlink_not_its_target(tmp_path, capsys):
    real = tmp_path / "archive" / "run42"
    real.mkdir(parents=True)
    _tiny_scan(real / "tooth.h5")
    work = tmp_path / "work"
    work.mkdir()
    (work / "scan.h5").symlink_to(real / "tooth.h5")
    rc = main(["recon", "--file-name", str(work / "scan.h5"), "--rotation-axis", "15.5",
               "--center-search-width", "1", "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "work_rec" / "try_center" / "scan").is_dir()
    assert not (tmp_path / "archive" / "run42_rec").exists()


def test_output_folder_must_exist(tmp_path, capsys):
    _tiny_scan(tmp_path / "s.h5")
    out = tmp_path / "typo" / "out.h5"
    assert main(["flatfield", str(tmp_path / "s.h5"), "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
    assert main(["flatfield", str(tmp_path / "s.h5"), "-o", str(tmp_path / "out.h5")]) == 0
