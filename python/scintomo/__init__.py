"""scintomo: X-ray microscopy and micro-CT with thin scintillator films.

Subpackages: :mod:`scintomo.flatfield`, :mod:`scintomo.io`,
:mod:`scintomo.simulate` (and, as they land, ``mtf``, ``psf``, ``deconv``,
``recon``, ``detector``). Heavy kernels are in Rust (``scintomo._core``).
"""

from __future__ import annotations

from . import exceptions, flatfield, mtf
from ._core import __version__

__all__ = ["__version__", "exceptions", "flatfield", "mtf"]
