"""The pipeline's resolution report (issue 16): FRC of even/odd-angle half
reconstructions and the radial MTF of a disc, beside the volume.

1. The report's FRC is the one that ``recon.fourier_ring_correlation`` gives when
   called directly on half reconstructions made here from the scan (numpy -log,
   ``recon.reconstruct``).
2. A scan through a known PSF (exact Shepp-Logan projections blurred by a Gaussian,
   white noise of known sigma; tests/_frc_sim.py) gives the 1/7 crossing that the
   system MTF predicts, and a lower one with more noise.
3. A cylinder (uniform disc in every slice): the radial MTF with a Gaussian PSF of
   1.5 px divided by the one without it is exp(-2 pi^2 sigma^2 f^2) (the
   reconstruction's own MTF, common to both, cancels).
"""

from __future__ import annotations

import json
import math
import warnings

import _frc_sim
import numpy as np
import pytest
from scipy import ndimage

from scintomo import io, recon
from scintomo.cli import main
from scintomo.exceptions import NumericalError, ParameterError, ScintomoWarning
from scintomo.pipeline import PipelineConfig, run
from scintomo.pipeline.report import report_rows
from scintomo.simulate import ellipse_projections

I0 = 1000.0


def _write_scan(path, proj, theta):
    """A DXchange scan whose -log((P - D) / (F - D)) is ``proj`` (angle, row, column):
    noise-free flats I0, zero darks."""
    a, r, n = proj.shape
    raw = (I0 * np.exp(-proj.astype(np.float64))).astype(np.float32)
    return io.write_dxchange(
        path, raw, np.full((2, r, n), I0, np.float32), np.zeros((2, r, n), np.float32), theta
    )


def _cfg(scan, out, **report):
    cfg = PipelineConfig()
    cfg.input.file = str(scan)
    cfg.output.folder = str(out)
    cfg.center.value = (io.read(scan).shape[2] - 1) / 2
    cfg.recon.filter = "ramp"
    cfg.run.n_threads = 1
    cfg.run.progress = False
    cfg.report.resolution = True
    for k, v in report.items():
        setattr(cfg.report, k, v)
    return cfg


# ---------------------------------------------------------------- known PSF

N_DET, N_ANGLES, ROWS = 256, 402, 6


@pytest.fixture(scope="module")
def phantom():
    return _frc_sim.phantom(N_DET, N_ANGLES)


def _shepp_scan(tmp_path, phantom, psf_sigma, noise_sigma, name="scan"):
    theta, sino, _, _ = phantom
    # every row the same slice, each with its own noise; scaled so that exp(-p) stays
    # well inside float32 (the FRC does not see a common scale of signal and noise)
    k = float(sino.max()) / 2
    proj = np.stack(
        [_frc_sim.blurred_noisy(sino, psf_sigma, noise_sigma, seed=r) for r in range(ROWS)],
        axis=1,
    )
    return _write_scan(tmp_path / f"{name}.h5", proj / k, theta)


def test_report_frc_agrees_with_a_direct_call(tmp_path, phantom):
    scan = _shepp_scan(tmp_path, phantom, 1.0, 0.5)
    cfg = _cfg(scan, tmp_path / "out", resolution_slices=3)
    cfg.phase.options["pixel_size"] = 0.65  # um: lp/mm and nm in the report
    res = run(cfg)
    rep = res.resolution
    assert rep["rows"] == [1, 4]  # the 3 central rows of 6
    # the same halves made here: -log in numpy, every other angle, recon.reconstruct
    s = io.read(scan)
    flat = s.flats[:].astype(np.float64).mean(axis=0)[1:4]
    p = (-np.log(s.projections[:, 1:4].astype(np.float64) / flat)).astype(np.float32)
    th = np.asarray(s.theta, dtype=np.float64)
    halves = [
        recon.reconstruct(p[i::2], th[i::2], center=cfg.center.value, filter="ramp") for i in (0, 1)
    ]
    direct = recon.fourier_ring_correlation(*halves, pixel_size=0.65)
    for key in ("frequency_half_bit", "frequency_one_seventh"):
        assert rep["frc"][key] == pytest.approx(getattr(direct, key), rel=1e-4)
    np.testing.assert_allclose(rep["frc"]["values"], direct.values, atol=1e-4)
    assert rep["frc_one_seventh_cycles_per_px"] == rep["frc"]["frequency_one_seventh"]
    assert rep["frc"]["resolution_nm_one_seventh"] == pytest.approx(
        650 / (2 * direct.frequency_one_seventh), rel=1e-4
    )
    # written beside the volume: the JSON holds the same figures, the PNG a figure
    js = json.loads((tmp_path / "out" / "scan_rec_resolution.json").read_text())
    assert js["frc"]["frequency_one_seventh"] == rep["frc"]["frequency_one_seventh"]
    assert js["plot"].endswith("scan_rec_resolution.png")
    assert (tmp_path / "out" / "scan_rec_resolution.png").stat().st_size > 10_000
    # the Shepp-Logan slice has no single disc: a note, not an error
    assert rep["radial_mtf"] is None and "no disc" in rep["radial_note"]
    assert "FRC 1/2-bit" in res.resolution_summary and "nm" in res.resolution_summary


def test_report_frc_matches_the_known_system_mtf(tmp_path, phantom):
    """1/7 crossing of the report against the one the Gaussian PSF x pixel MTF and the
    noise predict (criterion of tests/_frc_sim.py), within 4% as in test_recon_frc;
    more noise, lower crossing."""
    _, _, freqs, power = phantom
    f7 = []
    for noise in (0.5, 2.0):
        scan = _shepp_scan(tmp_path, phantom, 1.0, noise, name=f"n{noise}")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # 201 angles per half: no angular-limit note
            res = run(_cfg(scan, tmp_path / f"out{noise}"))
        got = res.resolution["frc"]["frequency_one_seventh"]
        pred = _frc_sim.predicted_crossing(freqs, power, 1.0, noise, N_ANGLES)
        assert got == pytest.approx(pred, rel=0.04), (noise, got, pred)
        assert got < res.resolution["frc"]["angular_limit_cycles_per_px"]
        f7.append(got)
    assert f7[1] < f7[0]


def test_report_is_off_by_default_and_costs_nothing_then(tmp_path, phantom):
    scan = _shepp_scan(tmp_path, phantom, 1.0, 0.5)
    cfg = _cfg(scan, tmp_path / "out")
    cfg.report.resolution = False
    assert PipelineConfig().report.resolution is False
    res = run(cfg)
    assert res.resolution is None and res.resolution_summary == ""
    assert not list((tmp_path / "out").glob("*resolution*"))


# ---------------------------------------------------------------- cylinder


def _disc_scan(path, psf_sigma, *, n=160, n_angles=360, rows=3):
    theta = np.linspace(0, np.pi, n_angles, endpoint=False)
    # a cylinder of radius 40 px, off the axis by (12, -8) px (x right, y up)
    sino = ellipse_projections(np.array([[0.02, 40.0, 40.0, 12.0, -8.0, 0.0]]), theta, n)
    if psf_sigma:
        sino = ndimage.gaussian_filter1d(sino, psf_sigma, axis=-1, mode="nearest")
    noise = 0.002 * np.random.default_rng(1).standard_normal((n_angles, rows, n))
    return _write_scan(path, np.repeat(sino[:, None, :], rows, axis=1) + noise, theta)


def test_report_radial_mtf_of_a_cylinder_follows_the_psf(tmp_path):
    mtf = {}
    for sigma in (0.0, 1.5):
        scan = _disc_scan(tmp_path / f"disc{sigma}.h5", sigma)
        res = run(_cfg(scan, tmp_path / f"out{sigma}"))
        r = res.resolution["radial_mtf"]
        assert r is not None, res.resolution["radial_note"]
        # the disc found where it is: centre (79.5 + 8, 79.5 + 12), radius 40
        assert r["center"] == pytest.approx([87.5, 91.5], abs=0.05)
        assert r["radius_px"] == pytest.approx(40.0, abs=0.1)
        mtf[sigma] = np.asarray(r["frequencies_cycles_per_px"]), np.asarray(r["values"])
        assert "radial MTF50" in res.resolution_summary
    f, m0 = mtf[0.0]
    _, m1 = mtf[1.5]
    for q in (0.05, 0.1, 0.15, 0.2):
        ratio = np.interp(q, f, m1) / np.interp(q, f, m0)
        assert ratio == pytest.approx(math.exp(-2 * math.pi**2 * 1.5**2 * q**2), abs=0.01)
    # the same disc given by the user (centre and radius a few px off) gives the same MTF
    res = run(_cfg(scan, tmp_path / "given", disc=[85, 95, 37]))
    r = res.resolution["radial_mtf"]
    assert r["radius_px"] == pytest.approx(40.0, abs=0.1)
    assert r["mtf50"] == pytest.approx(
        run(_cfg(scan, tmp_path / "again")).resolution["radial_mtf"]["mtf50"], rel=1e-3
    )


def test_report_disc_given_where_there_is_none_is_an_error(tmp_path):
    scan = _disc_scan(tmp_path / "d.h5", 1.0)
    with pytest.raises((NumericalError, ParameterError), match=r"\[report\] disc"):
        run(_cfg(scan, tmp_path / "out", disc=[20, 20, 5]))


def test_report_does_not_take_the_field_of_view_for_a_disc(tmp_path):
    """A round edge as large as the reconstruction's field (its circular mask, or a
    sample filling the field) is not taken for a sample's disc; a sample wider than
    the field gives no radial MTF through the pipeline either."""
    from scintomo.pipeline.report import _radial

    yy, xx = np.mgrid[0:200, 0:200] - 99.5
    big = ndimage.gaussian_filter((np.hypot(yy, xx) < 92).astype(np.float64), 1.0)
    r, note = _radial(big[None].astype(np.float32), PipelineConfig(), None)
    assert r is None and "field of view" in note
    small = ndimage.gaussian_filter((np.hypot(yy - 10, xx) < 60).astype(np.float64), 1.0)
    r, note = _radial(small[None].astype(np.float32), PipelineConfig(), None)
    assert r is not None and r.radius_px == pytest.approx(60, abs=0.1)
    n, n_angles = 96, 180
    theta = np.linspace(0, np.pi, n_angles, endpoint=False)
    sino = ellipse_projections(np.array([[0.01, 80.0, 80.0, 0.0, 0.0, 0.0]]), theta, n)
    scan = _write_scan(tmp_path / "wide.h5", np.repeat(sino[:, None, :], 2, axis=1), theta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScintomoWarning)
        res = run(_cfg(scan, tmp_path / "out"))
    assert res.resolution["radial_mtf"] is None and res.resolution["radial_note"]


# ---------------------------------------------------------------- config, CLI


@pytest.mark.parametrize(
    "disc", [[1], [1, 2, 3, 4], [1, -2], [1, 2, 0], ["a", 2], [1, float("nan")], "1,2", 5]
)
def test_bad_disc_is_refused(disc):
    with pytest.raises(ParameterError, match="report.disc"):
        PipelineConfig.from_dict({"report": {"disc": disc}})


def test_report_section_round_trips_through_toml(tmp_path):
    cfg = PipelineConfig.from_dict(
        {"report": {"resolution": True, "resolution_slices": 2, "disc": [10, 20.5, 8]}}
    )
    back = PipelineConfig.from_toml(cfg.write(tmp_path / "c.toml"))
    assert back.report == cfg.report
    with pytest.raises(ParameterError, match="resolution_slices"):
        PipelineConfig.from_dict({"report": {"resolution_slices": 0}})


def test_report_rows_are_central():
    assert report_rows(0, 10, 4) == (3, 7)
    assert report_rows(5, 8, 4) == (5, 8)
    assert report_rows(0, 1, 4) == (0, 1)


def test_cli_resolution_report(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    scan = _disc_scan(tmp_path / "data" / "s.h5", 1.0)
    rc = main(
        [
            "recon", "--file-name", str(scan), "--reconstruction-type", "full",
            "--rotation-axis", "79.5", "--filter", "ramp", "--resolution-report",
            "--no-progress", "--threads", "1",
        ]
    )  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "resolution: FRC 1/2-bit" in out and "radial MTF50" in out
    js = tmp_path / "data_rec" / "s_rec_resolution.json"
    assert str(js) in out and json.loads(js.read_text())["radial_mtf"]["radius_px"] > 39
