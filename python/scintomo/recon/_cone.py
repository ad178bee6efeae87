"""Cone-beam reconstruction (FDK with Parker and Wang weights) and the Joseph
projector pair, on the Rust kernels. Conventions: :mod:`scintomo.recon`."""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from .._validate import as_float32, as_sinogram_stack, check_finite, choice, n_threads_arg
from ..exceptions import ParameterError, ShapeError
from ._geometry import ConeGeometry, _length

#: A scan whose angles span at least this share of a full turn (plus one
#: step) is treated as a full scan.
_FULL_TOL = 1e-3
#: Columns of asymmetry around the central ray above which the detector
#: counts as displaced (Wang weights).
_OFFSET_COLUMNS = 1.0


def _theta(theta, n_ang: int) -> np.ndarray:
    th = np.asarray(theta, dtype=np.float64).ravel()
    if th.size != n_ang:
        raise ShapeError(f"theta has {th.size} angles for {n_ang} projections")
    if not np.all(np.isfinite(th)):
        raise ParameterError("theta must be finite")
    return th


def _circular_weights(th: np.ndarray) -> np.ndarray:
    """Quadrature weight of each angle on the full circle, radians: half the
    distance between its neighbours, angles taken modulo 2 pi (2 pi / n for
    a uniform full turn)."""
    t = np.mod(th, 2 * np.pi)
    if t.size == 1:
        return np.array([2 * np.pi])
    order = np.argsort(t, kind="stable")
    ts = t[order]
    prev = np.roll(ts, 1)
    prev[0] -= 2 * np.pi
    nxt = np.roll(ts, -1)
    nxt[-1] += 2 * np.pi
    w = np.empty_like(ts)
    w[order] = 0.5 * (nxt - prev)
    return w


def scan_kind(theta, fan_angle_deg: float) -> str:
    """'full' when the angles cover a full turn, 'short' when they cover a
    short scan (180 degrees + the fan angle) but less than a turn; raises
    otherwise. Short scans must be monotonic."""
    th = np.asarray(theta, dtype=np.float64)
    if th.size < 2:
        raise ParameterError("a cone-beam scan needs at least 2 angles")
    span = abs(th[-1] - th[0])
    step = span / (th.size - 1)
    if span + step >= 2 * np.pi * (1 - _FULL_TOL) or np.ptp(th) + step > 2 * np.pi:
        return "full"
    d = np.diff(th)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise ParameterError("theta of a short scan must increase or decrease monotonically")
    need = np.pi + math.radians(fan_angle_deg)
    if span < need * (1 - 1e-6):
        raise ParameterError(
            f"theta covers {math.degrees(span):.2f} degrees; a cone-beam scan needs a short "
            f"scan of at least 180 + fan angle = {math.degrees(need):.2f} degrees, or a full turn"
        )
    return "short"


def parker_weights(theta, gamma) -> np.ndarray:
    """Parker's (1982) short-scan weights, (angle, column): ``theta`` (A,)
    monotonic radians spanning pi + 2 delta, ``gamma`` (N,) the fan angle of
    each column, radians, in our convention (positive towards +u; see
    :mod:`scintomo.recon`). Generalised to any overscan (delta >= the fan
    half-angle) as in Wesarg et al. (2002): the pair of rays through the same
    line gets weights that sum to 1."""
    th = np.asarray(theta, dtype=np.float64)
    # Conjugate of the ray (theta, gamma) is (theta + pi - 2 gamma, -gamma) for
    # increasing angles; Parker's formula is written for
    # (beta + pi + 2 g, -g), so g = -gamma (and +gamma when the scan runs backwards).
    sign = 1.0 if th[-1] > th[0] else -1.0
    beta = sign * (th - th[0])[:, None]
    g = -sign * np.asarray(gamma, dtype=np.float64)[None, :]
    delta = 0.5 * (abs(th[-1] - th[0]) - np.pi)
    w = np.ones((th.size, g.shape[1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = beta < 2 * (delta - g)
        w = np.where(r1, np.sin(np.pi / 4 * beta / (delta - g)) ** 2, w)
        r3 = beta > np.pi - 2 * g
        w = np.where(r3, np.sin(np.pi / 4 * (np.pi + 2 * delta - beta) / (delta + g)) ** 2, w)
    return np.clip(np.nan_to_num(w), 0.0, 1.0)


def wang_weights(u, u0: float) -> np.ndarray:
    """Wang's (2002) offset-detector weights for detector coordinates ``u``
    (the long side positive), overlap half-width ``u0`` (same unit): 0 beyond
    -u0, sin^2(pi/4 (1 + u/u0)) across the overlap, 1 beyond +u0; w(u) +
    w(-u) = 1, so each line of a full turn is counted once."""
    u = np.asarray(u, dtype=np.float64)
    t = np.clip(u / u0, -1.0, 1.0)
    return np.sin(np.pi / 4 * (1.0 + t)) ** 2


def _untilt(arr: np.ndarray, cc: float, cr: float, tilt_deg: float) -> np.ndarray:
    """Resample projections from a detector tilted by ``tilt_deg`` onto an
    untilted one with the same central pixel (bilinear, edges extended)."""
    from scipy.ndimage import map_coordinates

    na, nr, nc = arr.shape
    phi = math.radians(tilt_deg)
    r, c = np.mgrid[:nr, :nc].astype(np.float64)
    u, v = c - cc, r - cr
    cols = cc + u * math.cos(phi) + v * math.sin(phi)
    rows = cr - u * math.sin(phi) + v * math.cos(phi)
    out = np.empty_like(arr)
    for a in range(na):
        out[a] = map_coordinates(arr[a], [rows, cols], order=1, mode="nearest")
    return out


def _shape_arg(shape, default):
    if shape is None:
        return default
    try:
        s = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise ParameterError(f"shape must be (nz, ny, nx), got {shape!r}") from None
    if len(s) != 3 or min(s) < 1:
        raise ParameterError(f"shape must be three positive sizes (nz, ny, nx), got {shape!r}")
    return s


def reconstruct_cone(
    projections,
    theta,
    geometry: ConeGeometry,
    *,
    algorithm: str = "fdk",
    shape=None,
    voxel_size=None,
    filter: str = "shepp",  # noqa: A002
    pad: bool | int = True,
    n_threads: int | None = None,
    _rows=None,
    _z_range=None,
):
    """FDK; see :func:`scintomo.recon.reconstruct`. Returns (volume, meta).

    ``_rows=(a0, n_rows)``: ``projections`` are rows ``a0:a0 + len`` of a detector of
    ``n_rows`` rows (the geometry refers to the whole detector); ``_z_range=(k0, k1)``:
    only voxel rows ``k0:k1`` of ``shape`` are returned. Used by the pipeline's z-slabs
    (:mod:`scintomo.pipeline.geometry` says which rows a slab needs).
    """
    from ._recon import FILTERS, padded_length

    choice(algorithm, "algorithm (cone beam)", ("fdk",))
    choice(filter, "filter", FILTERS)
    n_threads = n_threads_arg(n_threads)
    arr, single = as_sinogram_stack(projections)
    if single:
        raise ShapeError("cone-beam projections must be (angle, row, column)")
    na, nr, nc = arr.shape
    row0 = 0
    if _rows is not None:
        row0, nr_full = int(_rows[0]), int(_rows[1])
        if not (0 <= row0 and row0 + nr <= nr_full):
            raise ShapeError(f"rows {row0}:{row0 + nr} are not on a detector of {nr_full} rows")
        nr = nr_full
    th = _theta(theta, na)
    cc, cr = geometry.centers(nr, nc)
    if not (-0.5 <= cc <= nc - 0.5 and -0.5 <= cr <= nr - 0.5):
        raise ParameterError(
            f"center_column {cc} / center_row {cr} must be on the detector ({nr} x {nc} pixels)"
        )
    vox = geometry.voxel_size if voxel_size is None else _length(voxel_size, "voxel_size", "um")
    shape = _shape_arg(shape, (nr, nc, nc))
    nz, ny, nx = shape

    px_v = geometry.pixel_size / vox  # detector pitch in voxels
    sod_v = geometry.source_object * 1e3 / vox
    sdd_v = geometry.source_detector * 1e3 / vox
    half_diag = 0.5 * math.hypot(nx, ny)
    if sod_v <= half_diag:
        raise ParameterError(
            f"source_object ({geometry.source_object} mm) puts the source inside the volume "
            f"({nx} x {ny} voxels of {vox:.4g} um: half-diagonal {half_diag * vox / 1e3:.4g} mm)"
        )

    if geometry.tilt != 0.0:
        arr = _untilt(arr, cc, cr - row0, geometry.tilt)
    left, right = cc + 0.5, nc - 0.5 - cc  # pixels either side of the central ray
    displaced = abs(left - right) > _OFFSET_COLUMNS
    gamma = np.arctan((np.arange(nc) - cc) * geometry.pixel_size * 1e-3 / geometry.source_detector)
    fan = 2 * math.degrees(np.abs(gamma).max() + math.atan(0.5 * px_v / sdd_v))
    kind = scan_kind(th, fan)
    if displaced and kind != "full":
        raise ParameterError(
            "a displaced detector (center_column off the middle by "
            f"{abs(left - right) / 2:.1f} pixels) needs a full 360-degree scan"
        )

    # Field of view: the magnified detector's half-width and half-height at
    # the axis, in voxels (one voxel of slack for the default shape).
    half_w = (max(left, right) if displaced else min(left, right)) * px_v * sod_v / sdd_v
    half_h = min(cr + 0.5, nr - 0.5 - cr) * px_v * sod_v / sdd_v
    if min(nx, ny) / 2.0 > half_w + 1.0:
        raise ParameterError(
            f"the detector is too small for the volume: shape {shape} with voxel_size "
            f"{vox:.4g} um is {min(nx, ny)} voxels across, the detector sees "
            f"{2 * half_w:.1f} at the axis"
        )
    if nz / 2.0 > half_h + 1.0:
        raise ParameterError(
            f"the detector is too small for the volume: shape {shape} with voxel_size "
            f"{vox:.4g} um is {nz} voxels high, the detector sees {2 * half_h:.1f} at the axis"
        )

    if kind == "full":
        quad = _circular_weights(th)
        red = np.full((na, nc), 0.5)
        if displaced:
            # Long side positive; overlap up to the short side's last pixel centre.
            u = (np.arange(nc) - cc) * (1.0 if right > left else -1.0)
            red = np.broadcast_to(wang_weights(u, min(left, right) - 0.5), (na, nc))
    else:
        d = np.abs(np.diff(th))
        quad = 0.5 * (np.concatenate([[0.0], d]) + np.concatenate([d, [0.0]]))
        red = parker_weights(th, gamma)
    weights = np.ascontiguousarray(quad[:, None] * red, dtype=np.float32)

    if displaced:
        # Extend the short side with zeros so the filter sees a detector
        # symmetric about the central ray (the weighted data end at 0 there).
        extra = int(math.ceil(abs(right - left)))
        pad_cols = (extra, 0) if left < right else (0, extra)
        arr = np.pad(arr, ((0, 0), (0, 0), pad_cols))
        weights = np.pad(weights, ((0, 0), pad_cols))
        cc += pad_cols[0]
        nc = arr.shape[2]
    pad_len = padded_length(nc, pad)
    kshape, z_offset = shape, 0.0
    if _z_range is not None:
        # Only the slab's rows, placed at their height in the whole volume: voxel k0 + s
        # sits at z = k0 + s - (nz - 1) / 2 = s - (k1 - k0 - 1) / 2 + z_offset. Half-integers,
        # so every voxel's height is the whole volume's bit for bit.
        k0, k1 = int(_z_range[0]), int(_z_range[1])
        if not 0 <= k0 < k1 <= nz:
            raise ParameterError(f"z range {k0}:{k1} is not in a volume of {nz} rows")
        kshape = (k1 - k0, ny, nx)
        z_offset = k0 + (k1 - k0 - 1) / 2.0 - (nz - 1) / 2.0
    out = _core.cone_fdk(
        np.ascontiguousarray(arr),
        th.tolist(),
        weights,
        sod=sod_v,
        sdd=sdd_v,
        pixel=px_v,
        center_col=float(cc),
        center_row=float(cr - row0),
        shape=kshape,
        filter=filter,
        pad_len=pad_len,
        z_offset=z_offset,
        n_threads=n_threads,
    )
    meta = {
        "backend": "builtin",
        "algorithm": "fdk",
        "filter": filter,
        "geometry": geometry.to_dict(),
        "voxel_size_um": vox,
        "scan": kind,
        "redundancy": "wang" if displaced else ("parker" if kind == "short" else "none"),
        "pad_len": pad_len,
        "n_angles": na,
    }
    return out, meta


def _kernel_geometry(geometry: ConeGeometry, voxel_size, n_rows: int, n_cols: int) -> dict:
    vox = geometry.voxel_size if voxel_size is None else _length(voxel_size, "voxel_size", "um")
    cc, cr = geometry.centers(n_rows, n_cols)
    return {
        "sod": geometry.source_object * 1e3 / vox,
        "sdd": geometry.source_detector * 1e3 / vox,
        "pixel": geometry.pixel_size / vox,
        "center_col": float(cc),
        "center_row": float(cr),
        "tilt": math.radians(geometry.tilt),
    }


def cone_project(
    volume,
    theta,
    geometry: ConeGeometry,
    detector_shape,
    *,
    voxel_size=None,
    n_threads: int | None = None,
) -> np.ndarray:
    """Cone-beam forward projection (Joseph 1982, trilinear-free: bilinear in
    each voxel plane crossed).

    Parameters
    ----------
    volume : (nz, ny, nx) ndarray
        Attenuation per voxel (as :func:`reconstruct` returns it), centred on
        the rotation axis and the central plane. Not modified.
    theta : (A,) array_like, radians
    geometry : ConeGeometry
    detector_shape : (rows, columns)
    voxel_size : float or str, micrometres, optional
        Default: the geometry's voxel size at the object.

    Returns
    -------
    (A, rows, columns) float32 line integrals (-log transmission).
    """
    vol = as_float32(volume, "volume")
    if vol.ndim != 3:
        raise ShapeError(f"volume must be (nz, ny, nx), got shape {vol.shape}")
    check_finite(vol, "volume")
    nr, nc = (int(v) for v in detector_shape)
    th = np.asarray(theta, dtype=np.float64).ravel()
    if not np.all(np.isfinite(th)):
        raise ParameterError("theta must be finite")
    return _core.cone_project(
        np.ascontiguousarray(vol),
        th.tolist(),
        n_rows=nr,
        n_cols=nc,
        n_threads=n_threads_arg(n_threads),
        **_kernel_geometry(geometry, voxel_size, nr, nc),
    )


def cone_backproject(
    projections,
    theta,
    geometry: ConeGeometry,
    shape,
    *,
    voxel_size=None,
    n_threads: int | None = None,
) -> np.ndarray:
    """The exact adjoint (transpose) of :func:`cone_project`: unfiltered,
    unweighted back-projection into an (nz, ny, nx) float32 volume, for
    iterative methods (<A x, y> = <x, A^T y>)."""
    arr, single = as_sinogram_stack(projections)
    if single:
        raise ShapeError("cone-beam projections must be (angle, row, column)")
    na, nr, nc = arr.shape
    th = _theta(theta, na)
    shape = _shape_arg(shape, None)
    return _core.cone_backproject(
        np.ascontiguousarray(arr),
        th.tolist(),
        shape=shape,
        n_threads=n_threads_arg(n_threads),
        **_kernel_geometry(geometry, voxel_size, nr, nc),
    )
