"""The pipeline and ``scintomo recon`` with the iterative algorithms: blocks of
slices give the whole-scan reconstruction (exactly without a PSF, within the
halo's reach with one), and the options reach the provenance."""

from __future__ import annotations

import numpy as np
import pytest
from test_pipeline import cfg_for, read_volume, reference_minus_log

from scintomo import io, pipeline, recon
from scintomo.cli import main
from scintomo.exceptions import ParameterError
from scintomo.simulate import simulate_scan


@pytest.fixture
def sim():
    return simulate_scan(n_angles=60, n_rows=24, n_cols=32, seed=0)


@pytest.fixture
def dx_file(tmp_path, sim):
    d = tmp_path / "raw"
    d.mkdir()
    return io.write_dxchange(d / "scan.h5", sim.projections, sim.flats, sim.darks, sim.theta)


def _gauss(size=7, sigma=1.2):
    x = np.arange(size) - size // 2
    k = np.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * sigma**2))
    return (k / k.sum()).astype(np.float32)


def test_sirt_in_blocks_equals_the_whole_scan(dx_file, sim):
    cfg = cfg_for(dx_file, "h5", nsino=7, recon__algorithm="sirt", recon__iterations=15)
    res = pipeline.run(cfg)
    vol = read_volume(pipeline.output_paths(cfg, dx_file)["full"], "h5")
    data = reference_minus_log(sim).astype(np.float32)
    want = recon.reconstruct(data, sim.theta, center=15.5, algorithm="sirt", iterations=15)
    assert res.n_blocks == 4 and vol.shape == want.shape
    np.testing.assert_allclose(vol, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_psf_in_the_model_block_by_block_with_a_halo(dx_file, sim, tmp_path):
    k = _gauss()
    np.save(tmp_path / "psf.npy", k)
    over = dict(recon__algorithm="sirt", recon__iterations=10, recon__psf=str(tmp_path / "psf.npy"))
    cfg = cfg_for(dx_file, "h5", nsino=6, **over)
    assert pipeline.halo_rows(cfg) >= 8
    pipeline.run(cfg)
    vol = read_volume(pipeline.output_paths(cfg, dx_file)["full"], "h5")
    data = reference_minus_log(sim).astype(np.float32)
    want = recon.reconstruct(data, sim.theta, center=15.5, algorithm="sirt", iterations=10, psf=k)
    err = np.abs(vol - np.asarray(want)).max() / np.abs(want).max()
    assert err < 2e-3, err
    # Blocks without a halo differ at their edges: the PSF couples slices.
    cut = np.concatenate(
        [
            np.asarray(
                recon.reconstruct(
                    data[:, r : r + 8],
                    sim.theta,
                    center=15.5,
                    algorithm="sirt",
                    iterations=10,
                    psf=k,
                )
            )
            for r in range(0, 24, 8)
        ]
    )
    assert np.abs(cut - np.asarray(want)).max() / np.abs(want).max() > 10 * err
    import h5py

    texts = []
    with h5py.File(pipeline.output_paths(cfg, dx_file)["full"], "r") as f:
        texts += [str(v) for v in f.attrs.values()]
        f.visititems(lambda _, o: texts.extend(str(v) for v in o.attrs.values()))
    text = " ".join(texts)
    assert "tv_weight" in text and "psf.npy" in text


def test_config_checks(dx_file, tmp_path):
    for over in (
        dict(recon__algorithm="sirt", recon__iterations=-1),
        dict(recon__algorithm="tv", recon__tv_weight=-0.5),
        dict(recon__algorithm="fbp", recon__psf="psf.npy"),
    ):
        cfg = cfg_for(dx_file, **over)
        with pytest.raises(ParameterError):
            cfg.validate()


def test_cli_puts_the_psf_in_the_model(dx_file, tmp_path, monkeypatch):
    np.save(tmp_path / "psf.npy", _gauss())
    import importlib

    # the module the pipeline imports now (other tests swap sys.modules entries)
    mod = importlib.import_module("scintomo.recon")
    seen = {}
    real = mod.reconstruct

    def spy(proj, theta, **kw):
        seen.update(kw)
        return real(proj, theta, **kw)

    monkeypatch.setattr(mod, "reconstruct", spy)
    rc = main(
        [
            "recon",
            "--file-name",
            str(dx_file),
            "--rotation-axis",
            "15.5",
            "--reconstruction-type",
            "full",
            "--reconstruction-algorithm",
            "tv",
            "--iterations",
            "4",
            "--tv-weight",
            "0.01",
            "--psf",
            str(tmp_path / "psf.npy"),
            "--nsino-per-chunk",
            "12",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0
    assert seen["algorithm"] == "tv" and seen["iterations"] == 4 and seen["tv_weight"] == 0.01
    assert seen["psf"].array.shape == (7, 7)
