"""Synthetic data with known answers: the tests' oracle and a user feature
("what would my film record?").

- :mod:`.phantom`: analytic phantoms (Shepp-Logan ellipses) and their exact
  parallel-beam projections.
- :mod:`.psf_models`: isotropic PSFs with analytic MTFs (Gaussian, exponential,
  Lorentzian, scintillator mixture); :mod:`.targets`: slanted edges and bar
  groups rendered through them (resolution oracle).
- :mod:`.scan`: a micro-CT scan as a scintillator-film microscope records it
  (film PSF, gain pattern, dark current, Poisson and read noise, uint16).
- :mod:`.cone`: 3-D ellipsoid phantoms (3-D Shepp-Logan) and their exact
  cone-beam projections (lab micro-CT).
- :mod:`.detector`: detector test data (ideal photon-counting flats, flats
  and darks with known PRNU/DSNU, afterglow series, lag, curved films).
"""

from __future__ import annotations

from .cone import ellipsoid_cone_projections, ellipsoids_volume, shepp_logan_ellipsoids
from .detector import (
    afterglow_series,
    curved_film_image,
    flat_dark_series,
    lagged_sequence,
    photon_counting_flats,
)
from .phantom import ellipse_projections, ellipses_image, shepp_logan_ellipses
from .psf_models import ExponentialPSF, GaussianPSF, LorentzianPSF, MixturePSF, PSFModel
from .scan import DetectorModel, SimulatedScan, simulate_scan
from .targets import add_noise, bar_target, slanted_edge

__all__ = [
    "DetectorModel",
    "ExponentialPSF",
    "GaussianPSF",
    "LorentzianPSF",
    "MixturePSF",
    "PSFModel",
    "add_noise",
    "bar_target",
    "slanted_edge",
    "SimulatedScan",
    "afterglow_series",
    "curved_film_image",
    "ellipse_projections",
    "ellipsoid_cone_projections",
    "ellipsoids_volume",
    "ellipses_image",
    "flat_dark_series",
    "lagged_sequence",
    "photon_counting_flats",
    "shepp_logan_ellipses",
    "shepp_logan_ellipsoids",
    "simulate_scan",
]
