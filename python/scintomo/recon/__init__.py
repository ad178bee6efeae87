"""Micro-CT reconstruction and the steps around it.

- :func:`reconstruct`: built-in (Rust) Fourier gridding and filtered
  back-projection, or TomoPy when it is installed (``backend="auto"``).
- :func:`find_center`: rotation axis by Vo's Fourier double-wedge metric and
  0/180-degree registration, sub-pixel.
- :func:`remove_stripes`: ring-artefact removal on sinograms (Vo et al. 2018).
- :func:`paganin`: single-distance phase retrieval (Paganin et al. 2002).
- :func:`frc`, :func:`fourier_ring_correlation`: resolution of a reconstruction
  by Fourier ring/shell correlation of two independent halves.
- :func:`score_centers`: sharpness of trial slices, one per candidate centre.

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
odd n; for even n pass ``center=n / 2``). TomoPy's source (libtomo
``project.c``, ``preprocessing``) uses the same orientation; its ``center``
counts from the detector's edge there, half a pixel from ours, which we could
not check without TomoPy installed (the TomoPy backend passes the centre
unchanged). ``scintomo.simulate`` projects with this convention.

Units: projections are -log(I/I0) (dimensionless line integrals); slices are
attenuation per pixel (divide by the pixel size for per-length units).
"""

from __future__ import annotations

from ._center import find_center
from ._frc import FRC, fourier_ring_correlation, frc, half_bit_threshold
from ._phase import paganin
from ._recon import Reconstruction, angle_weights, padded_length, reconstruct, tomopy_available
from ._score import CenterScores, score_centers
from ._stripes import remove_stripes

__all__ = [
    "CenterScores",
    "FRC",
    "Reconstruction",
    "angle_weights",
    "find_center",
    "fourier_ring_correlation",
    "frc",
    "half_bit_threshold",
    "padded_length",
    "paganin",
    "reconstruct",
    "remove_stripes",
    "score_centers",
    "tomopy_available",
]
