"""Synthetic data with known answers: the tests' oracle and a user feature
("what would my film record?").

- :mod:`.phantom`: analytic phantoms (Shepp-Logan ellipses) and their exact
  parallel-beam projections.
- :mod:`.scan`: a micro-CT scan as a scintillator-film microscope records it
  (film PSF, gain pattern, dark current, Poisson and read noise, uint16).
"""

from __future__ import annotations

from .phantom import ellipse_projections, ellipses_image, shepp_logan_ellipses
from .scan import DetectorModel, SimulatedScan, simulate_scan

__all__ = [
    "DetectorModel",
    "SimulatedScan",
    "ellipse_projections",
    "ellipses_image",
    "shepp_logan_ellipses",
    "simulate_scan",
]
