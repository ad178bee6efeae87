"""Cone-beam geometry, FDK and the Joseph projector pair against analytic
ellipsoid projections (numpy, independent of the Rust kernels), the parallel
FBP in the far-source limit, and RTK where ``itk-rtk`` is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scintomo.exceptions import ParameterError
from scintomo.recon import ConeGeometry, ParallelGeometry
from scintomo.simulate import (
    ellipsoid_cone_projections,
    ellipsoids_volume,
    shepp_logan_ellipsoids,
)

# A lab micro-CT with a +-10 degree fan: 64 detector pixels of 0.5 mm, the
# source 30 mm from the axis and 90 mm from the detector (M = 3).
N = 64
GEO = ConeGeometry("30mm", 90.0, "0.5mm")
VOX = GEO.voxel_size  # um
RADIUS = 0.85 * (N / 2) * VOX * math.cos(math.radians(10))  # inside the field of view


def shepp():
    return shepp_logan_ellipsoids(RADIUS, value=1.0 / VOX)


def central_slab_stats(rec, truth, half=4, r_frac=0.85):
    """Over the central slab (|z| <= half voxels), inside a cylinder of r_frac
    of the half-width: the correlation with the phantom, and the intensity
    scale, mean(rec) / mean(truth) over the voxels whose 5^3 neighbourhood in
    the phantom is uniform (a least-squares scale over all voxels would
    measure the blur of the phantom's thin shell, not the scale)."""
    from scipy.ndimage import maximum_filter, minimum_filter

    nz, ny, nx = truth.shape
    yy, xx = np.mgrid[:ny, :nx] - (ny - 1) / 2.0
    m2 = xx**2 + yy**2 <= (r_frac * nx / 2) ** 2
    k0 = (nz - 1) // 2
    sl = slice(k0 - half, k0 + half + 1)
    rec = np.asarray(rec, dtype=np.float64)
    t3 = np.asarray(truth, dtype=np.float64)
    flat = (maximum_filter(t3, 5) == minimum_filter(t3, 5)) & (t3 > 0)
    r, t, f = rec[sl][:, m2], t3[sl][:, m2], flat[sl][:, m2]
    return np.corrcoef(r.ravel(), t.ravel())[0, 1], r[f].sum() / t[f].sum()


@pytest.fixture(scope="module")
def truth():
    return ellipsoids_volume(shepp(), (N, N, N), VOX)


@pytest.fixture(scope="module")
def full_scan():
    theta = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    p = ellipsoid_cone_projections(shepp(), theta, GEO, (N, N)).astype(np.float32)
    return theta, p


# ---------------------------------------------------------------- geometry


def test_geometry_properties_and_units():
    g = ConeGeometry("6 cm", "250mm", "0.185um", center_column=10.5, tilt=0.3)
    assert g.source_object == pytest.approx(60.0) and g.source_detector == pytest.approx(250.0)
    assert g.pixel_size == pytest.approx(0.185)
    assert g.magnification == pytest.approx(250 / 60)
    assert g.voxel_size == pytest.approx(0.185 * 60 / 250)
    # Fan angle of 2048 px of 0.185 um at 250 mm, central ray off-centre.
    half = max(10.5 + 0.5, 2048 - 0.5 - 10.5) * 0.185e-3
    assert g.fan_angle(2048) == pytest.approx(2 * math.degrees(math.atan(half / 250)))
    assert g.cone_angle(100) == pytest.approx(2 * math.degrees(math.atan(50 * 0.185e-3 / 250)))
    assert g.centers(100, 2048) == (10.5, 49.5)
    with pytest.raises(AttributeError):
        g.tilt = 1.0  # frozen
    assert ParallelGeometry(center=3).magnification == 1.0


@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        ((0, 100, 1), {}, "source_object"),
        ((-5, 100, 1), {}, "source_object"),
        ((50, "0mm", 1), {}, "source_detector"),
        ((50, 40, 1), {}, "source_detector"),
        ((50, 100, 0), {}, "pixel_size"),
        ((50, 100, "1 parsec"), {}, "pixel_size"),
        ((50, 100, 1), {"tilt": float("nan")}, "tilt"),
        ((50, 100, 1), {"center_column": "middle"}, "center_column"),
    ],
)
def test_geometry_bad_input(args, kwargs, name):
    with pytest.raises(ParameterError, match=name):
        ConeGeometry(*args, **kwargs)


# ---------------------------------------------------------- analytic truth


def test_ellipsoid_projection_matches_chord_length():
    """A centred sphere's central ray: the chord 2 R; a ray at height v
    through the sphere at magnification M: 2 sqrt(R^2 - d^2), d the
    distance of the ray from the centre (computed here by hand)."""
    g = ConeGeometry(30.0, 90.0, "0.5mm")
    r = 4000.0  # um
    e = [[1.0, r, r, r, 0, 0, 0, 0]]
    p = ellipsoid_cone_projections(e, [0.3], g, (9, 9), supersample=1)
    assert p[0, 4, 4] == pytest.approx(2 * r)
    # Row 8, column 4: v = 4 px * 0.5 mm at 90 mm; the ray's distance from the centre.
    v = 4 * 500.0
    d = 30e3 * v / math.hypot(90e3, v)
    assert p[0, 8, 4] == pytest.approx(2 * math.sqrt(r * r - d * d), rel=1e-9)
