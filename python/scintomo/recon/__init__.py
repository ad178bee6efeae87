"""Micro-CT reconstruction and the steps around it.

- :func:`reconstruct`: built-in (Rust) Fourier gridding and filtered
  back-projection (the default, ``backend="auto"``, whatever is installed),
  or TomoPy's ``recon`` with ``backend="tomopy"``.
- :class:`ConeGeometry`, :func:`reconstruct` with ``geometry=``: cone-beam
  (lab micro-CT) FDK; :func:`cone_project` / :func:`cone_backproject`: a
  matched projector pair; :func:`find_cone_center`: central column and
  detector tilt from the data.
- :func:`reconstruct` with ``algorithm="sirt"|"cgls"|"tv"``, :func:`iterative`
  (returns an :class:`IterativeResult` with the residual history): iterative
  reconstruction, parallel and cone beam, the film's PSF in the forward
  model (A = B P).
- :func:`find_center`: rotation axis by Vo's Fourier double-wedge metric and
  0/180-degree registration, sub-pixel.
- :func:`find_center_360`, :func:`reconstruct` with ``half_acquisition=True``,
  :func:`sino_360_to_180`: offset-axis 360-degree parallel-beam scans
  (synchrotron "half acquisition", double field of view): axis, overlap and
  side from the data, stitched into a 180-degree sinogram of double width.
- :func:`remove_stripes`: ring-artefact removal on sinograms (Vo et al. 2018;
  Munch et al. 2009 with PyWavelets).
- :func:`paganin`: single-distance phase retrieval (Paganin et al. 2002), in
  Rust over a stack.
- :func:`frc`, :func:`fourier_ring_correlation`: resolution of a reconstruction
  by Fourier ring/shell correlation of two independent halves.
- :func:`score_centers`, :func:`score_try_folder`: sharpness of trial slices,
  one per candidate centre (try mode's folder: ``try_scores.json``).

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

Cone beam (lab micro-CT, :class:`ConeGeometry`)
-----------------------------------------------
The same axes, extended to 3-D: the volume is (z, y, x) with x = i - (nx - 1)
/ 2 along the columns, y = (ny - 1) / 2 - j up, and z = k - (nz - 1) / 2
along the rotation axis, increasing with the detector's row index (slice k of
a parallel-beam reconstruction is detector row k; the cone-beam volume keeps
that order). Lengths in voxels, origin on the axis in the plane of the
central ray. At angle theta the source sits at D (sin theta, -cos theta, 0)
(D = source_object), the central ray runs along (-sin theta, cos theta, 0)
and the detector's columns along e_u = (cos theta, sin theta, 0), rows along
z. A point P lands at u = Dsd (P . e_u) / L, v = Dsd z / L, L = D + P . d
(Dsd = source_detector), i.e. at column center_column + u / pixel and row
center_row + v / pixel. As D grows this becomes the parallel-beam rule above
(s = x cos theta + y sin theta), so a far source gives the parallel result.
This is RTK's ``ThreeDCircularProjectionGeometry`` (gantry angle theta, no
offsets or out-of-plane angles) with RTK's y (its rotation axis) as our z and
RTK's z as our -y (``tests/test_cone.py`` checks it voxel by voxel against
RTK's FDK where ``itk-rtk`` is installed, and with beads at known positions
everywhere). The source, detector and (u, v) vectors are also those of
ASTRA's ``cone`` geometry as its documented cone -> cone_vec conversion gives
them (theta its projection angle); ASTRA's volume index order and TIGRE's
conventions were not checked (neither is installed here).

Units: projections are -log(I/I0) (dimensionless line integrals); slices are
attenuation per pixel (divide by the pixel size for per-length units).
"""

from __future__ import annotations

from ._center import find_center
from ._cone import cone_backproject, cone_project
from ._cone_center import ConeCalibration, find_cone_center
from ._frc import FRC, fourier_ring_correlation, frc, half_bit_threshold
from ._geometry import ConeGeometry, ParallelGeometry
from ._halfacq import HalfAcquisition, find_center_360, sino_360_to_180, stitched_width
from ._iterative import IterativeResult, iterative
from ._phase import paganin
from ._recon import Reconstruction, angle_weights, padded_length, reconstruct, tomopy_available
from ._score import CenterScores, score_centers, score_try_folder
from ._stripes import remove_stripes

__all__ = [
    "FRC",
    "CenterScores",
    "HalfAcquisition",
    "IterativeResult",
    "ConeCalibration",
    "ConeGeometry",
    "ParallelGeometry",
    "Reconstruction",
    "angle_weights",
    "cone_backproject",
    "cone_project",
    "find_center",
    "find_center_360",
    "find_cone_center",
    "fourier_ring_correlation",
    "frc",
    "half_bit_threshold",
    "iterative",
    "padded_length",
    "paganin",
    "reconstruct",
    "remove_stripes",
    "score_centers",
    "score_try_folder",
    "sino_360_to_180",
    "stitched_width",
    "tomopy_available",
]
