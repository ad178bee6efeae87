"""3-D ellipsoid phantoms and their exact cone-beam projections (numpy): the
independent truth of the cone-beam tests.

Coordinates are those of :mod:`scintomo.recon` (cone beam): micrometres at
the object, x right, y up (row 0 of a slice is the top), z along the
rotation axis in the direction of increasing detector rows, origin on the
axis in the plane of the central ray. An ellipsoid is a row (value, a, b, c,
x0, y0, z0, phi): attenuation coefficient in 1/um, semi-axes and centre in
um, rotation about z in radians (the same sense as the 2-D ellipses of
:mod:`.phantom`).
"""

from __future__ import annotations

import math

import numpy as np

from ..recon._geometry import ConeGeometry

# Modified 3-D Shepp-Logan (Toft 1996, the 3-D extension of Kak and Slaney
# 1988 table 3.1 as MATLAB's phantom3d lists it), tilts about x dropped:
# (value, a, b, c, x0, y0, z0, phi in degrees), lengths in units of the
# half-width. The z = 0 slice is the 2-D modified Shepp-Logan.
_SHEPP_LOGAN_3D = (
    (1.0, 0.6900, 0.920, 0.810, 0.0, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.780, 0.0, -0.0184, 0.0, 0.0),
    (-0.2, 0.1100, 0.310, 0.220, 0.22, 0.0, 0.0, -18.0),
    (-0.2, 0.1600, 0.410, 0.280, -0.22, 0.0, 0.0, 18.0),
    (0.1, 0.2100, 0.250, 0.410, 0.0, 0.35, -0.15, 0.0),
    (0.1, 0.0460, 0.046, 0.050, 0.0, 0.1, 0.25, 0.0),
    (0.1, 0.0460, 0.046, 0.050, 0.0, -0.1, 0.25, 0.0),
    (0.1, 0.0460, 0.023, 0.050, -0.08, -0.605, 0.0, 0.0),
    (0.1, 0.0230, 0.023, 0.020, 0.0, -0.606, 0.0, 0.0),
    (0.1, 0.0230, 0.046, 0.020, 0.06, -0.605, 0.0, 0.0),
)


def shepp_logan_ellipsoids(radius: float, *, value: float = 1.0) -> np.ndarray:
    """Ellipsoid table (10, 8) of the 3-D Shepp-Logan phantom for a
    half-width of ``radius`` um (the outer ellipsoid's semi-axes are 0.69,
    0.92 and 0.81 of it along x, y and z); ``value``: attenuation of the
    outer ellipsoid, 1/um (the table's relative values are multiplied by it)."""
    e = np.array(_SHEPP_LOGAN_3D, dtype=np.float64)
    out = e.copy()
    out[:, 0] *= value
    out[:, 1:7] *= radius
    out[:, 7] = np.deg2rad(e[:, 7])
    return out


def _as_table(ellipsoids) -> np.ndarray:
    e = np.atleast_2d(np.asarray(ellipsoids, dtype=np.float64))
    if e.shape[1] != 8:
        raise ValueError(
            f"ellipsoids must be rows of 8 (value, a, b, c, x0, y0, z0, phi), got {e.shape}"
        )
    if np.any(e[:, 1:4] <= 0):
        raise ValueError("ellipsoid semi-axes must be > 0")
    return e


def ellipsoids_volume(ellipsoids, shape, voxel_size: float, *, supersample: int = 2) -> np.ndarray:
    """Render ellipsoids on an (nz, ny, nx) grid of ``voxel_size`` um centred
    on the axis: attenuation per voxel (value x voxel_size), each voxel the
    mean over ``supersample``^3 points. float32."""
    e = _as_table(ellipsoids)
    nz, ny, nx = (int(v) for v in shape)
    ss = int(supersample)
    off = (np.arange(ss) + 0.5) / ss - 0.5
    out = np.zeros((nz, ny, nx))
    z1 = (np.arange(nz) - (nz - 1) / 2.0) * voxel_size
    y1 = ((ny - 1) / 2.0 - np.arange(ny)) * voxel_size
    x1 = (np.arange(nx) - (nx - 1) / 2.0) * voxel_size
    for dz in off:
        for dy in off:
            for dx in off:
                z = (z1 + dz * voxel_size)[:, None, None]
                y = (y1 - dy * voxel_size)[None, :, None]
                x = (x1 + dx * voxel_size)[None, None, :]
                for v, a, b, c, x0, y0, z0, phi in e:
                    cs, sn = math.cos(phi), math.sin(phi)
                    xr = (x - x0) * cs + (y - y0) * sn
                    yr = -(x - x0) * sn + (y - y0) * cs
                    inside = (xr / a) ** 2 + (yr / b) ** 2 + ((z - z0) / c) ** 2 <= 1.0
                    out += v * inside
    return (out * voxel_size / ss**3).astype(np.float32)


def ellipsoid_cone_projections(
    ellipsoids, theta, geometry: ConeGeometry, detector_shape, *, supersample: int = 2
) -> np.ndarray:
    """Exact line integrals (-log transmission) of the ellipsoids in a
    circular cone-beam scan, (len(theta), rows, columns) float64, each pixel
    the mean over ``supersample``^2 rays through its area. Uses the
    geometry's central pixel (defaults: the detector's middle) and tilt."""
    e = _as_table(ellipsoids)
    th = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    nr, nc = (int(v) for v in detector_shape)
    cc, cr = geometry.centers(nr, nc)
    ss = int(supersample)
    px = geometry.pixel_size
    sod = geometry.source_object * 1e3
    q = geometry.source_detector * 1e3 - sod
    off = (np.arange(ss) + 0.5) / ss - 0.5
    rr = (np.arange(nr)[:, None] + off[None, :]).ravel()
    cols = (np.arange(nc)[:, None] + off[None, :]).ravel()
    pr, pc = np.meshgrid((rr - cr) * px, (cols - cc) * px, indexing="ij")
    phi = math.radians(geometry.tilt)
    # Detector coordinates along e_u (untilted columns) and e_v = z.
    u = pc * math.cos(phi) - pr * math.sin(phi)
    v = pc * math.sin(phi) + pr * math.cos(phi)
    out = np.empty((th.size, nr, nc))
    for k, t in enumerate(th):
        cs, sn = math.cos(t), math.sin(t)
        src = np.array([sod * sn, -sod * cs, 0.0])
        dx = -q * sn + u * cs - src[0]
        dy = q * cs + u * sn - src[1]
        dz = v - src[2]
        norm = np.sqrt(dx * dx + dy * dy + dz * dz)
        dx, dy, dz = dx / norm, dy / norm, dz / norm
        acc = np.zeros_like(u)
        for val, a, b, c, x0, y0, z0, ph in e:
            cp, sp = math.cos(ph), math.sin(ph)
            # Source and direction in the ellipsoid's unit-sphere frame.
            px0, py0, pz0 = src[0] - x0, src[1] - y0, src[2] - z0
            s0 = np.array([(px0 * cp + py0 * sp) / a, (-px0 * sp + py0 * cp) / b, pz0 / c])
            d0 = (dx * cp + dy * sp) / a
            d1 = (-dx * sp + dy * cp) / b
            d2 = dz / c
            qa = d0 * d0 + d1 * d1 + d2 * d2
            tm = -(s0[0] * d0 + s0[1] * d1 + s0[2] * d2) / qa
            # Chord through the unit sphere from the ray's point nearest its
            # centre, m: |m + t d|^2 = 1 -> t = +-sqrt((1 - |m|^2) / |d|^2).
            # (Stable for a far source, where the textbook discriminant
            # cancels catastrophically.)
            m2 = (s0[0] + tm * d0) ** 2 + (s0[1] + tm * d1) ** 2 + (s0[2] + tm * d2) ** 2
            acc += 2.0 * val * np.sqrt(np.clip(1.0 - m2, 0.0, None) / qa)
        out[k] = acc.reshape(nr, ss, nc, ss).mean(axis=(1, 3))
    return out
