"""scintomo: X-ray microscopy and micro-CT with thin scintillator films.

Modules, one per capability: :mod:`~scintomo.flatfield`, :mod:`~scintomo.psf`,
:mod:`~scintomo.deconv`, :mod:`~scintomo.mtf`, :mod:`~scintomo.recon`,
:mod:`~scintomo.detector`, :mod:`~scintomo.io`, :mod:`~scintomo.pipeline`,
:mod:`~scintomo.simulate`. Heavy kernels are in Rust (``scintomo._core``).
"""

from __future__ import annotations

from . import deconv, detector, exceptions, flatfield, io, mtf, pipeline, psf, recon, simulate
from ._core import __version__

__all__ = [
    "__version__",
    "deconv",
    "detector",
    "exceptions",
    "flatfield",
    "io",
    "mtf",
    "pipeline",
    "psf",
    "recon",
    "simulate",
]
