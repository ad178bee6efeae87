"""Micro-CT reconstruction and the steps around it.

- :func:`reconstruct`: built-in (Rust) Fourier gridding and filtered
  back-projection (the default, ``backend="auto"``, whatever is installed),
  or TomoPy's ``recon`` with ``backend="tomopy"``.
- :func:`find_center`: rotation axis by Vo's Fourier double-wedge metric and
  0/180-degree registration, sub-pixel.
- :func:`remove_stripes`: ring-artefact removal on sinograms (Vo et al. 2018;
  Munch et al. 2009 with PyWavelets).
- :func:`paganin`: single-distance phase retrieval (Paganin et al. 2002), in
  Rust over a stack.

Geometry (the same as TomoPy's ``project``/``recon`` and scikit-image's
``radon``/``iradon``)
--------------------------------------------------------------------------
A slice of n x n pixels has its origin at the centre; x = col - (n - 1) / 2
runs along the columns and y = (n - 1) / 2 - row points *up* (row 0 is the
top). The projection at angle theta integrates along the line
x cos(theta) + y sin(theta) = s, and detector column j sits at s = j - center,
``center`` being the column index of the rotation axis (pixel centres at
integers; default (n_det - 1) / 2). So a point right of the centre (x > 0,
theta = 0) appears right of the axis, and at theta = 90 degrees a point above
the centre (y > 0) appears right of the axis.

scikit-image's ``radon`` follows the same rule with its sinogram transposed
(column, angle), theta in degrees and its centre at n // 2 (equal to ours for
odd n; for even n pass ``center=n / 2``). TomoPy uses the same orientation,
and its ``center`` is the same column index as ours: measured with TomoPy
1.15 built from source, ``tomopy.find_center_vo`` returns our ``center``
within 0.25 pixel and ``tomopy.recon`` given our ``center`` puts the object
where ours does (``tests/test_recon_tomopy.py``); the TomoPy backend passes
it unchanged. ``scintomo.simulate`` projects with this convention.

Units: projections are -log(I/I0) (dimensionless line integrals); slices are
attenuation per pixel (divide by the pixel size for per-length units).
"""

from __future__ import annotations

from ._center import find_center
from ._phase import paganin
from ._recon import Reconstruction, angle_weights, padded_length, reconstruct, tomopy_available
from ._stripes import remove_stripes

__all__ = [
    "Reconstruction",
    "angle_weights",
    "find_center",
    "padded_length",
    "paganin",
    "reconstruct",
    "remove_stripes",
    "tomopy_available",
]
