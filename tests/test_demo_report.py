"""The demo's report measures what it shows: the system MTF from an edge in
data recorded through the simulated detector, checked against analytic truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from scintomo.demo import measured_system_mtf
from scintomo.simulate import DetectorModel


def _expected_mtf50(sigma_px):
    """MTF50 (cycles/px) of a Gaussian film PSF times the pixel aperture (sinc)."""
    return brentq(lambda f: math.exp(-2 * (math.pi * sigma_px * f) ** 2) * np.sinc(f) - 0.5,
                  1e-6, 0.5)  # fmt: skip


@pytest.mark.parametrize("sigma_px", [0.8, 1.2, 2.0])
def test_measured_system_mtf_follows_the_detector(sigma_px):
    m = measured_system_mtf(DetectorModel(psf_sigma_px=sigma_px), 0.65, seed=3)
    assert m.mtf50 == pytest.approx(_expected_mtf50(sigma_px), rel=0.02)
    assert m.pixel_size_um == 0.65
    assert m.mtf50_lp_per_mm == pytest.approx(m.mtf50 * 1e3 / 0.65)
    # measured from data: a blurrier film gives a lower measured MTF50
    assert m.mtf50 < _expected_mtf50(sigma_px * 0.8)


def test_demo_summary_is_strict_json_with_the_measured_mtf(tmp_path):
    from scintomo.cli import main

    pytest.importorskip("scintomo.recon")
    out = tmp_path / "demo"
    args = ["demo", "-o", str(out), "--angles", "60", "--size", "64", "--rows", "2"]
    assert main([*args, "--backend", "builtin", "--nsino-per-chunk", "2"]) == 0
    text = (out / "summary.json").read_text()
    s = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    assert s["mtf_method"].startswith("measured")
    assert s["mtf50_cycles_per_px"] == pytest.approx(_expected_mtf50(1.2), rel=0.02)
    assert "Measured from data" in (out / "report.html").read_text()
