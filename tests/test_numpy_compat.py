"""Calls that must work on the oldest numpy pyproject.toml allows (1.25):
numpy-2-only functions are hidden here, so this runs on numpy 2 too. The
whole suite was also run on numpy 1.25.0 (issue #21)."""

from __future__ import annotations

import numpy as np
import pytest

from scintomo import detector as D


def test_light_yield_spectrum_without_numpy2_trapezoid(monkeypatch):
    monkeypatch.delattr(np, "trapezoid", raising=False)  # absent before numpy 2.0
    wl = np.linspace(400, 700, 601)
    band = np.exp(-0.5 * ((wl - 520) / 10) ** 2)
    r = D.light_yield(
        (wl, band),
        10 * np.sqrt(2 * np.pi),
        material="CsPbBr3",
        density=4.55,
        thickness=30.0,
        reference_thickness=500.0,
    )
    # a Gaussian band integrates to its analytic area
    assert r.signal == pytest.approx(10 * np.sqrt(2 * np.pi), rel=1e-6)
