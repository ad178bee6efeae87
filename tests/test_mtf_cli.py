"""``scintomo mtf`` end to end."""

import json

import numpy as np
import pytest

from scintomo.cli import main
from scintomo.simulate import GaussianPSF, bar_target, slanted_edge


def test_cli_edge(tmp_path):
    img = tmp_path / "edge.npy"
    np.save(img, slanted_edge((128, 128), 5.0, GaussianPSF(1.0)))
    (tmp_path / "r").mkdir()  # an output's folder must exist (a typo is not created)
    out = tmp_path / "r" / "report.json"
    rc = main(
        ["mtf", str(img), "--pixel-size", "0.185um", "--roi", "0", "128", "8", "120",
         "--bootstrap", "5", "-o", str(out)]
    )  # fmt: skip
    assert rc == 0
    rep = json.loads(out.read_text())
    assert abs(rep["mtf50"] / 0.17996 - 1) < 0.005  # Gaussian sigma 1 x aperture at 5 deg
    assert abs(rep["mtf50_lp_per_mm"] - rep["mtf50"] * 1e3 / 0.185) < 1e-6
    assert out.with_suffix(".png").stat().st_size > 1000
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_cli_bars_and_errors(tmp_path, capsys):
    im, groups = bar_target([0.05, 0.1, 0.15, 0.2], GaussianPSF(1.0), n_bars=10)
    path = tmp_path / "bars.npy"
    np.save(path, im)
    args = ["mtf", str(path), "-o", str(tmp_path / "b.json")]
    for (r0, r1, c0, c1), f in groups:
        args += ["--bars", str(r0), str(r1), str(c0), str(c1), str(f)]
    assert main(args) == 0
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["frequency_unit"] == "cycles/px" and len(rep["ctf"]) == 4
    assert main(["mtf", str(tmp_path / "nope.npy"), "-o", str(tmp_path / "x.json")]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_bars_auto_and_frequencies(tmp_path, capsys):
    im, groups = bar_target([0.05, 0.1, 0.15, 0.2], GaussianPSF(1.0), n_bars=10)
    path = tmp_path / "bars.npy"
    np.save(path, im)
    out = tmp_path / "auto.json"
    assert main(["mtf", str(path), "--bars", "auto", "--pixel-size", "1um", "-o", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["frequency_unit"] == "lp/mm" and len(rep["regions"]) == 4
    np.testing.assert_allclose(rep["frequencies"], [50, 100, 150, 200], rtol=0.01)
    for (r0, r1, _, _), _f in groups:  # detected rows = the rendered groups' rows
        assert any(abs(g[0] - r0) <= 1 and abs(g[1] - r1) <= 1 for g in rep["regions"])
    assert out.with_suffix(".png").stat().st_size > 1000
    out2 = tmp_path / "freq.json"
    assert main(["mtf", str(path), "--bar-frequencies", "0.1", "0.2", "-o", str(out2)]) == 0
    np.testing.assert_allclose(json.loads(out2.read_text())["frequencies"], [0.1, 0.2], rtol=0.01)
    # malformed --bars and nothing to detect: clear errors, exit status 2
    assert main(["mtf", str(path), "--bars", "1", "2", "-o", str(out2)]) == 2
    assert "R0 R1 C0 C1 FREQ" in capsys.readouterr().err
    flat = tmp_path / "flat.npy"
    np.save(flat, np.full((64, 64), 10.0, np.float32))
    assert main(["mtf", str(flat), "--bars", "auto", "-o", str(tmp_path / "f.json")]) == 2
    assert "no bar groups found" in capsys.readouterr().err


def _strict_json(path):
    """Parse as a strict JSON reader would: NaN / Infinity tokens are an error."""

    def refuse(token):
        raise AssertionError(f"{path.name}: {token} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_cli_edge_report_in_lp_per_mm_and_strict_json(tmp_path):
    img = tmp_path / "edge.npy"
    np.save(img, slanted_edge((96, 96), 5.0, GaussianPSF(0.5)))
    out = tmp_path / "e.json"
    assert main(["mtf", str(img), "--pixel-size", "0.5um", "--bootstrap", "5", "-o", str(out)]) == 0
    rep = _strict_json(out)
    assert rep["frequency_unit"] == "lp/mm"
    np.testing.assert_allclose(
        rep["frequencies"], np.asarray(rep["frequencies_cycles_per_px"]) * 2000.0
    )


def test_cli_edge_on_a_slit_is_an_error(tmp_path, capsys):
    from scipy import ndimage

    y, x = np.mgrid[0:1024, 0:1024] / 8  # a 1 px wide line tilted 5 deg, 8x8 points per px
    d = (x - 64) - np.tan(np.radians(5.0)) * (y - 64)
    img = (np.abs(d) < 0.5).astype(float).reshape(128, 8, 128, 8).mean(axis=(1, 3))
    img = 0.1 + 0.8 * ndimage.gaussian_filter(img, 1.0)
    img += 0.01 * np.random.default_rng(0).standard_normal(img.shape)
    path = tmp_path / "slit.npy"
    np.save(path, img.astype(np.float32))
    out = tmp_path / "s.json"
    assert main(["mtf", str(path), "--bootstrap", "0", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scintomo mtf: error: no single edge"), err
    assert not out.exists()


@pytest.mark.parametrize("angle", [20.0, 45.0])
def test_cli_tilted_bars_exit_2_with_a_reason(tmp_path, capsys, angle):
    """Tilted bar groups (pylinac's PIPSpro has them at 45 deg): one line saying
    why nothing was measured, never a report of slivers at exit 0."""
    import warnings

    from test_mtf_bars import _tilted_groups

    path = tmp_path / "tilted.npy"
    np.save(path, _tilted_groups((0.03, 0.045, 0.06, 0.08, 0.1), angle))
    out = tmp_path / "d.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc = main(["mtf", str(path), "--bars", "auto", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("scintomo mtf: error: "), err
    assert "tilted" in err[0] or "no bar groups found" in err[0]
    assert not out.exists()


def test_cli_bars_n_bars_fit(tmp_path, capsys):
    """--n-bars adds the N-bar model's per-group MTF and limit beside the ctf."""
    freqs = [0.05, 0.15, 0.25, 0.3]
    im, groups = bar_target(freqs, GaussianPSF(1.0), n_bars=5)
    path = tmp_path / "bars5.npy"
    np.save(path, im)
    args = ["mtf", str(path), "--n-bars", "5", "-o", str(tmp_path / "b.json")]
    for (r0, r1, c0, c1), f in groups:
        args += ["--bars", str(r0), str(r1), str(c0), str(c1), str(f)]
    assert main(args) == 0
    rep = json.loads((tmp_path / "b.json").read_text())
    truth = GaussianPSF(1.0).mtf(np.array(freqs)) * np.sinc(freqs)
    assert rep["n_bars"] == 5 and len(rep["ctf"]) == 4
    np.testing.assert_allclose(rep["mtf_finite"], truth / truth[0], atol=0.02)
    assert main(args[:3] + ["1"] + args[4:]) == 2  # --n-bars 1
    assert "n_bars" in capsys.readouterr().err
