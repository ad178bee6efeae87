"""Synthetic data with known answers: the tests' oracle and a user feature
("what would my film record?").

- :mod:`.phantom`: analytic phantoms (Shepp-Logan ellipses) and their exact
  parallel-beam projections.
- :mod:`.scan`: a micro-CT scan as a scintillator-film microscope records it
  (film PSF, gain pattern, dark current, Poisson and read noise, uint16).
- :mod:`.detector`: detector test data (ideal photon-counting flats, flats
  and darks with known PRNU/DSNU, afterglow series, lag, curved films).
"""

from __future__ import annotations

from .detector import (
    afterglow_series,
    curved_film_image,
    flat_dark_series,
    lagged_sequence,
    photon_counting_flats,
)
from .phantom import ellipse_projections, ellipses_image, shepp_logan_ellipses
from .scan import DetectorModel, SimulatedScan, simulate_scan

__all__ = [
    "DetectorModel",
    "SimulatedScan",
    "afterglow_series",
    "curved_film_image",
    "ellipse_projections",
    "ellipses_image",
    "flat_dark_series",
    "lagged_sequence",
    "photon_counting_flats",
    "shepp_logan_ellipses",
    "simulate_scan",
]
