"""Scintillator and detector characterisation: the figures scintillator
papers report, computed by the standards.

- :func:`nps`, :func:`dqe`: noise power spectrum and DQE (IEC 62220-1-1:2015).
- :func:`light_yield`, :func:`absorption_efficiency`: light yield against a
  reference scintillator from absorbed-energy fractions (xraydb data).
- :func:`linearity`, :func:`stability`, :func:`uniformity` (EMVA 1288
  DSNU/PRNU).
- :func:`afterglow`, :func:`correct_lag`: per-pixel decay fits, decay-time
  map, latent-image estimate; recursive lag correction.
- :func:`flatten_curved`: images from films bent around a cylinder or a
  height profile back to true distances.
"""

from __future__ import annotations

from .afterglow import Afterglow, afterglow, correct_lag, lag_coefficients
from .curved import FlattenedImage, flatten_curved
from .dqe import (
    BEAM_QUALITIES,
    DQE,
    SNR_IN_SQUARED,
    beam_quality_snr_in_squared,
    beam_quality_spectrum,
    dqe,
    fluence_per_air_kerma,
)
from .light_yield import (
    AbsorptionEfficiency,
    LightYield,
    Spectrum,
    absorbed_energy_fraction,
    absorption_efficiency,
    kramers_spectrum,
    light_yield,
)
from .linearity import Linearity, linearity
from .nps import NPS, nps
from .stability import Stability, stability
from .uniformity import Uniformity, uniformity

__all__ = [
    "BEAM_QUALITIES",
    "DQE",
    "NPS",
    "SNR_IN_SQUARED",
    "AbsorptionEfficiency",
    "Afterglow",
    "FlattenedImage",
    "LightYield",
    "Linearity",
    "Spectrum",
    "Stability",
    "Uniformity",
    "absorbed_energy_fraction",
    "absorption_efficiency",
    "afterglow",
    "beam_quality_snr_in_squared",
    "beam_quality_spectrum",
    "correct_lag",
    "dqe",
    "flatten_curved",
    "fluence_per_air_kerma",
    "kramers_spectrum",
    "lag_coefficients",
    "light_yield",
    "linearity",
    "nps",
    "stability",
    "uniformity",
]
