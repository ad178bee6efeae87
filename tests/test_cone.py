"""Cone-beam geometry, FDK and the Joseph projector pair against analytic
ellipsoid projections (numpy, independent of the Rust kernels), the parallel
FBP in the far-source limit, and RTK where ``itk-rtk`` is installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math

import numpy as np
import pytest

from scintomo.exceptions import ParameterError, ShapeError
from scintomo.recon import (
    ConeGeometry,
    ParallelGeometry,
    cone_backproject,
    cone_project,
    find_cone_center,
    reconstruct,
)
from scintomo.recon._cone import parker_weights, wang_weights
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


# -------------------------------------------------------------------- FDK


def test_fdk_full_scan_shepp_logan(full_scan, truth):
    theta, p = full_scan
    rec = reconstruct(p, theta, geometry=GEO, shape=(N, N, N))
    assert rec.dtype == np.float32 and rec.shape == (N, N, N)
    assert rec.meta["scan"] == "full" and rec.meta["redundancy"] == "none"
    c, s = central_slab_stats(rec, truth)
    assert c >= 0.94, c
    assert abs(s - 1) < 0.02, s


def test_fdk_default_volume_and_input_untouched(full_scan):
    theta, p = full_scan
    keep = p.copy()
    rec = reconstruct(p, theta, geometry=GEO, n_threads=1)
    np.testing.assert_array_equal(p, keep)
    assert rec.shape == (N, N, N)
    assert rec.meta["voxel_size_um"] == pytest.approx(VOX)


def test_fdk_short_scan_parker(truth):
    fan = GEO.fan_angle(N)
    span = np.pi + math.radians(fan + 4.0)
    theta = np.linspace(0, span, 160)
    p = ellipsoid_cone_projections(shepp(), theta, GEO, (N, N)).astype(np.float32)
    rec = reconstruct(p, theta, geometry=GEO, shape=(N, N, N))
    assert rec.meta["scan"] == "short" and rec.meta["redundancy"] == "parker"
    c, s = central_slab_stats(rec, truth)
    assert c >= 0.94, c
    assert abs(s - 1) < 0.02, s
    # The same scan run backwards (decreasing angles) gives the same volume.
    rec_b = reconstruct(p[::-1], theta[::-1], geometry=GEO, shape=(N, N, N))
    np.testing.assert_allclose(rec_b, rec, atol=1e-3 * float(np.abs(rec).max()))


def test_parker_weights_sum_to_one_over_conjugate_rays():
    """For a ray (theta, u) the conjugate ray through the same line, found
    geometrically here, gets the complementary weight."""
    g = ConeGeometry(30.0, 90.0, "0.5mm")
    sdd = g.source_detector
    theta = np.linspace(0, np.pi + math.radians(25.0), 2001)
    cols = np.linspace(-30, 30, 13)
    gamma = np.arctan(cols * g.pixel_size * 1e-3 / sdd)
    w = parker_weights(theta, gamma)
    for k in range(0, 2001, 97):
        for j, gm in enumerate(gamma):
            # Ray direction angle: theta + pi/2 - gamma (see scintomo.recon);
            # the same line from the other side: +pi, fan angle -gamma.
            t2 = theta[k] + np.pi - 2 * gm
            if not (theta[0] <= t2 <= theta[-1]):
                t2 = theta[k] - np.pi - 2 * gm
            if not (theta[0] <= t2 <= theta[-1]):
                assert w[k, j] == pytest.approx(1.0, abs=1e-12)
                continue
            w2 = np.interp(t2, theta, parker_weights(theta, [-gm])[:, 0])
            assert w[k, j] + w2 == pytest.approx(1.0, abs=2e-3)


def test_wang_weights_complementary():
    u = np.linspace(-20, 20, 81)
    w = wang_weights(u, 10.0)
    np.testing.assert_allclose(w + w[::-1], 1.0, atol=1e-12)
    assert np.all(w[u <= -10] == 0) and np.all(w[u >= 10] == 1)


def test_fdk_displaced_detector_wang(truth):
    """Half-fan: 44 columns, the central ray at column 10, a full turn."""
    g = ConeGeometry(30.0, 90.0, "0.5mm", center_column=10.0)
    theta = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    p = ellipsoid_cone_projections(shepp(), theta, g, (N, 44)).astype(np.float32)
    rec = reconstruct(p, theta, geometry=g, shape=(N, N, N))
    assert rec.meta["redundancy"] == "wang"
    c, s = central_slab_stats(rec, truth)
    assert c >= 0.94, c
    assert abs(s - 1) < 0.02, s


def bead_table(positions, r):
    return np.array([[1.0 / VOX, r, r, r, x, y, z, 0.0] for x, y, z in positions])


def centroid(rec, idx, w=3):
    k, j, i = (int(round(v)) for v in idx)
    sub = np.clip(
        np.asarray(rec, dtype=np.float64)[k - w : k + w + 1, j - w : j + w + 1, i - w : i + w + 1],
        0,
        None,
    )
    grid = np.mgrid[-w : w + 1, -w : w + 1, -w : w + 1]
    return np.array([k, j, i]) + np.array([(g * sub).sum() / sub.sum() for g in grid])


@pytest.mark.parametrize("tilt", [0.0, 2.0])
def test_beads_land_at_their_positions(tilt):
    """Beads over the field (x, y up to 0.6 of the radius, z up to 0.55 of the
    half-height, both signs) reconstruct within 0.25 voxel of where they
    are: a wrong magnification, handedness, centre or tilt moves them."""
    g = ConeGeometry(30.0, 90.0, "0.5mm", center_column=33.2, center_row=30.6, tilt=tilt)
    h = (N / 2) * VOX
    pos = [
        (0.0, 0.0, 0.0),
        (0.6 * h, 0.1 * h, 0.0),
        (-0.2 * h, 0.55 * h, 0.4 * h),
        (0.35 * h, -0.45 * h, -0.5 * h),
        (-0.5 * h, -0.3 * h, 0.55 * h),
        (0.1 * h, -0.6 * h, 0.3 * h),
    ]
    theta = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    p = ellipsoid_cone_projections(bead_table(pos, 1.5 * VOX), theta, g, (N, N)).astype(np.float32)
    rec = reconstruct(p, theta, geometry=g, shape=(N, N, N))
    c = (N - 1) / 2.0
    for x, y, z in pos:
        want = np.array([z / VOX + c, c - y / VOX, x / VOX + c])
        got = centroid(rec, want)
        assert np.abs(got - want).max() <= 0.25, (want, got)


def test_parallel_limit_equals_fbp(full_scan):
    """Source 1000 km away: FDK is the parallel FBP (same filter and padding)."""
    theta, _ = full_scan
    far = ConeGeometry(1e9, 1e9 + 30.0, 166.0)
    e = shepp_logan_ellipsoids(0.8 * 24 * far.voxel_size, value=1.0 / far.voxel_size)
    p = ellipsoid_cone_projections(e, theta, far, (24, 48)).astype(np.float32)
    cone = reconstruct(p, theta, geometry=far, shape=(24, 48, 48), filter="hann")
    par = reconstruct(p, theta, algorithm="fbp", backend="builtin", mask=False, filter="hann")
    yy, xx = np.mgrid[:48, :48] - 23.5
    m = xx**2 + yy**2 <= 22.0**2
    err = np.abs(np.asarray(cone) - np.asarray(par))[:, m].max()
    assert err <= 1e-3 * np.abs(np.asarray(par)).max(), err


# ------------------------------------------------------ projector pair


def test_forward_projector_matches_analytic(full_scan, truth):
    theta, p = full_scan
    fp = cone_project(truth, theta[::20], GEO, (N, N))
    assert fp.dtype == np.float32 and fp.shape == (12, N, N)
    ref = p[::20]
    err = np.abs(fp - ref)
    # Voxelised (partial-volume) phantom vs exact ellipsoids: edges differ by
    # about a voxel's share; the bulk agrees closely.
    assert np.median(err[ref > 0]) <= 0.02 * ref.max(), np.median(err[ref > 0])
    assert np.corrcoef(fp.ravel(), ref.ravel())[0, 1] >= 0.995


@pytest.mark.parametrize("tilt", [0.0, 3.0])
def test_projector_adjoint(tilt):
    rng = np.random.default_rng(1)
    g = ConeGeometry(30.0, 90.0, "0.5mm", center_column=13.4, center_row=9.7, tilt=tilt)
    shape = (14, 20, 18)
    theta = rng.uniform(0, 2 * np.pi, 7)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal((7, 19, 27)).astype(np.float32)
    ax = cone_project(x, theta, g, (19, 27))
    aty = cone_backproject(y, theta, g, shape)
    lhs = float(np.dot(ax.ravel().astype(np.float64), y.ravel()))
    rhs = float(np.dot(x.ravel().astype(np.float64), aty.ravel()))
    assert abs(lhs - rhs) <= 1e-4 * max(abs(lhs), abs(rhs)), (lhs, rhs)
    assert aty.shape == shape and aty.dtype == np.float32


# ------------------------------------------------------------ bad input


def test_fdk_bad_input(full_scan):
    theta, p = full_scan
    # Each error names the parameter to change.
    with pytest.raises(ParameterError, match="source_object .* inside the volume"):
        reconstruct(p, theta, geometry=ConeGeometry(1.0, 90.0, "0.5mm"), voxel_size="100um")
    with pytest.raises(ParameterError, match="theta covers 180.00 degrees.*short scan"):
        reconstruct(p[:100], np.linspace(0, np.pi, 100), geometry=GEO)
    with pytest.raises(ParameterError, match="too small for the volume: shape .* voxel_size"):
        reconstruct(p, theta, geometry=GEO, shape=(N, 2 * N, 2 * N))
    with pytest.raises(ParameterError, match="too small for the volume: shape .* voxel_size"):
        reconstruct(p, theta, geometry=GEO, shape=(2 * N, N, N))
    with pytest.raises(ShapeError, match="theta"):
        reconstruct(p, theta[:-1], geometry=GEO)
    with pytest.raises(ParameterError, match="algorithm"):
        reconstruct(p, theta, geometry=GEO, algorithm="gridrec")
    with pytest.raises(ParameterError, match="center"):
        reconstruct(p, theta, geometry=GEO, center=30)
    with pytest.raises(ParameterError, match="voxel_size"):
        reconstruct(p, theta, geometry=GEO, voxel_size=-1)
    with pytest.raises(ParameterError, match="cone-beam options"):
        reconstruct(p[:, 0], theta, shape=(1, N, N))
    bad = p.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        reconstruct(bad, theta, geometry=GEO)
    g = ConeGeometry(30.0, 90.0, "0.5mm", center_column=10.0)
    short = np.linspace(0, np.pi + 0.6, 100)
    with pytest.raises(ParameterError, match="displaced"):
        reconstruct(p[:100, :, :44], short, geometry=g)


# ------------------------------------------------------------------ RTK


def rtk_fdk(p, theta, geo, shape, vox_um):
    """RTK's CPU FDK on our data, its volume mapped onto our axes: RTK's y
    (rotation axis) is our z, RTK's z is our -y, so our (k, j, i) is RTK's
    numpy (j, k, i)."""
    import itk
    from itk import RTK as rtk

    na, nr, nc = p.shape
    cc, cr = geo.centers(nr, nc)
    px = geo.pixel_size * 1e-3
    vox = vox_um * 1e-3
    g = rtk.ThreeDCircularProjectionGeometry.New()
    for t in theta:
        g.AddProjection(geo.source_object, geo.source_detector, math.degrees(t))
    proj = itk.image_from_array(np.ascontiguousarray(p, dtype=np.float32))
    proj.SetOrigin([-cc * px, -cr * px, 0.0])
    proj.SetSpacing([px, px, 1.0])
    nz, ny, nx = shape
    vol = itk.image_from_array(np.zeros((ny, nz, nx), np.float32))
    vol.SetOrigin([-(nx - 1) / 2 * vox, -(nz - 1) / 2 * vox, -(ny - 1) / 2 * vox])
    vol.SetSpacing([vox, vox, vox])
    f = rtk.FDKConeBeamReconstructionFilter[itk.Image[itk.F, 3]].New()
    f.SetInput(0, vol)
    f.SetInput(1, proj)
    f.SetGeometry(g)
    f.Update()
    out = itk.array_from_image(f.GetOutput())  # (z_rtk, y_rtk, x_rtk), 1/mm
    return np.transpose(out, (1, 0, 2)) * vox


def _rtk_installed() -> bool:
    try:
        importlib.metadata.version("itk-rtk")
    except importlib.metadata.PackageNotFoundError:
        return False
    return importlib.util.find_spec("itk") is not None


rtk_missing = not _rtk_installed()


@pytest.mark.skipif(rtk_missing, reason="itk-rtk is not installed")
def test_same_convention_and_accuracy_as_rtk(full_scan, truth):
    theta, p = full_scan
    ours = reconstruct(p, theta, geometry=GEO, shape=(N, N, N), filter="ramp")
    theirs = rtk_fdk(p, theta, GEO, (N, N, N), VOX)
    c_ours, s_ours = central_slab_stats(ours, truth)
    c_rtk, s_rtk = central_slab_stats(theirs, truth)
    assert c_ours >= c_rtk - 1e-3, (c_ours, c_rtk)
    assert abs(s_ours - 1) < 0.02 and abs(s_rtk - 1) < 0.05, (s_ours, s_rtk)
    # Same axes: the two volumes agree voxel by voxel (not only in statistics).
    # (mirroring our volume along x, y or z drops this to 0.998, 0.92, 0.994)
    assert np.corrcoef(np.asarray(ours).ravel(), theirs.ravel())[0, 1] >= 0.9995


# ---------------------------------------------------------- calibration


@pytest.mark.parametrize(
    ("cc", "tilt", "cr", "seed", "noise"),
    [
        (33.3, 0.0, None, 3, 0.0),
        (29.8, 1.5, None, 3, 0.0),
        (31.7, 0.5, None, 4, 0.0),
        (32.4, -1.0, 30.2, 5, 0.0),
        (30.6, 2.0, None, 6, 0.0),
        (31.2, 0.7, 33.1, 7, 0.01),
    ],
)
def test_find_cone_center(cc, tilt, cr, seed, noise):
    """Centre column to 0.01 px and tilt to 0.05 degree from the data, on the
    Shepp-Logan with 12 beads (structure along z, which the tilt needs), the
    central row on and off the middle, one case with 1 % noise. (The former
    conjugate-ray score missed tilts of 0.5 and -1 degree by 0.52 and 0.22.)"""
    g = ConeGeometry(30.0, 90.0, "0.5mm", center_column=cc, center_row=cr, tilt=tilt)
    theta = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    rng = np.random.default_rng(seed)
    h = RADIUS
    pos = [
        (rng.uniform(-0.6, 0.6) * h, rng.uniform(-0.6, 0.6) * h, rng.uniform(-0.3, 0.3) * h)
        for _ in range(12)
    ]
    e = np.vstack([shepp(), bead_table(pos, 2 * VOX)])
    p = ellipsoid_cone_projections(e, theta, g, (N, N))
    p = (p + rng.normal(0.0, noise * p.max(), p.shape)).astype(np.float32)
    before = p.copy()
    nominal = ConeGeometry(30.0, 90.0, "0.5mm", center_row=cr)
    # angles in any order
    perm = np.random.default_rng(0).permutation(theta.size)
    cal = find_cone_center(p[perm], theta[perm], nominal)
    np.testing.assert_array_equal(p, before)
    assert abs(cal.center_column - cc) <= 0.01, cal
    assert abs(cal.tilt - tilt) <= 0.05, cal
    assert cal.center_row == nominal.centers(N, N)[1]
    fixed = cal.geometry(nominal)
    assert fixed.center_column == cal.center_column and fixed.tilt == cal.tilt
    # Without the tilt search: the column alone, tilt 0.
    if tilt == 0.0:
        cal0 = find_cone_center(p, theta, nominal, tilt=False)
        assert abs(cal0.center_column - cc) <= 0.1 and cal0.tilt == 0.0


def test_find_cone_center_needs_full_turn(full_scan):
    theta, p = full_scan
    with pytest.raises(ParameterError, match="full turn"):
        find_cone_center(p[:120], theta[:120], GEO)
