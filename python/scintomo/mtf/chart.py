"""Every edge of a chart: the sides of slanted squares (or rectangles) found in
a larger image and each measured by :func:`scintomo.mtf.edge_mtf`, as MTF
Mapper does (issue 16).

Finding: the image is split at the midpoint of its 1st and 99th percentiles,
the minority class (dark squares on a bright ground, or the reverse) is
labelled, and objects that touch the border or are small are dropped. The
sides' directions come from the gradient directions on an object's boundary
(a histogram modulo 90 deg, weighted by the gradient magnitude: the four sides
of a square share it). The boundary pixels whose gradient points within 20 deg
of one side's normal give that side's position and extent; the ROI is the
bounding box of the side's central 60% widened across it, so that it holds one
edge and no corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _validate
from ..exceptions import ParameterError, ScintomoError, ShapeError

__all__ = ["ChartEdge", "chart_mtf", "find_edges"]

# sides shorter than this are not measured (px)
_MIN_SIDE_PX = 40.0
# central fraction of each side kept (its ends meet the corners)
_CENTRAL = 0.6
# gradient directions within this of a side's normal belong to that side (deg)
_SIDE_TOL_DEG = 20.0


@dataclass(frozen=True)
class ChartEdge:
    """One side found in a chart.

    ``roi`` (r0, r1, c0, c1) half-open rows/columns; ``normal_deg`` direction
    of the side's normal (towards the bright side, degrees from the +column
    axis towards +row); ``length_px`` side length; ``object_index`` the
    object (square) it belongs to; ``mtf`` the measured :class:`MTF` or
    ``None``; ``error`` the reason it could not be measured, or ``None``;
    ``warnings`` the measurement's warnings (bad angle, low contrast ...).
    """

    roi: tuple
    normal_deg: float
    length_px: float
    object_index: int
    mtf: object = None
    error: str | None = None
    warnings: tuple = ()


def _threshold_objects(img: np.ndarray, min_area: float):
    from scipy import ndimage

    lo, hi = np.percentile(img, [1, 99])
    if not hi > lo:
        return []
    dark = img < 0.5 * (lo + hi)
    fg = dark if dark.mean() < 0.5 else ~dark
    lab, n = ndimage.label(fg)
    objs = []
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        r, c = sl
        if r.start == 0 or c.start == 0 or r.stop == img.shape[0] or c.stop == img.shape[1]:
            continue  # touches the border: not a whole square
        mask = lab[sl] == i
        if mask.sum() < min_area:
            continue
        objs.append((sl, mask))
    return objs


def find_edges(image, *, min_side_px: float = _MIN_SIDE_PX) -> list[ChartEdge]:
    """The straight sides of the squares (or rectangles) in ``image``.

    Parameters
    ----------
    image : (H, W) array, gray values
    min_side_px : shortest side found (px)

    Returns
    -------
    list of ChartEdge (``mtf`` None), ordered by object then by normal direction
    """
    from scipy import ndimage

    arr = _validate.as_array(image, "image")
    if arr.ndim != 2:
        raise ShapeError(f"image must be 2-D, got shape {arr.shape}")
    _validate.check_nonempty(arr, "image")
    _validate.check_finite(arr, "image")
    min_side_px = _validate.positive(min_side_px, "min_side_px")
    img = np.asarray(arr, dtype=np.float64)
    h, w = img.shape
    sm = ndimage.gaussian_filter(img, 1.0)
    gy, gx = np.gradient(sm)
    edges: list[ChartEdge] = []
    objs = _threshold_objects(img, 0.5 * min_side_px**2)
    for k, (sl, mask) in enumerate(objs):
        # boundary pixels of the object, with a 2 px band each side
        big = np.zeros((h, w), dtype=bool)
        big[sl] = mask
        band = ndimage.binary_dilation(big, iterations=2) & ~ndimage.binary_erosion(
            big, iterations=2
        )
        rr, cc = np.nonzero(band)
        gxb, gyb = gx[rr, cc], gy[rr, cc]
        mag = np.hypot(gxb, gyb)
        ang = np.degrees(np.arctan2(gyb, gxb))
        hist = np.bincount(np.floor(ang % 90.0).astype(int) % 90, weights=mag, minlength=90)
        # circular peak of the weighted histogram (period 90 deg), smoothed over 5 deg
        sm_h = np.convolve(np.concatenate([hist[-2:], hist, hist[:2]]), np.ones(5), "valid")
        th0 = float(np.argmax(sm_h)) + 0.5
        for q in range(4):
            phi = th0 + 90.0 * q
            dev = (ang - phi + 180.0) % 360.0 - 180.0
            sel = np.abs(dev) < _SIDE_TOL_DEG
            if sel.sum() < 10:
                continue
            # refine the normal: magnitude-weighted circular mean of the side's directions
            phi += float(np.degrees(np.arctan2(np.sum(mag[sel] * np.sin(np.radians(dev[sel]))),
                                              np.sum(mag[sel] * np.cos(np.radians(dev[sel]))))))  # fmt: skip
            nx, ny = math.cos(math.radians(phi)), math.sin(math.radians(phi))
            tx, ty = -ny, nx
            x, y, m = cc[sel].astype(float), rr[sel].astype(float), mag[sel]
            d0 = float(np.sum(m * (x * nx + y * ny)) / np.sum(m))
            s = x * tx + y * ty
            # extent along the side from where the gradient is strong
            strong = m > 0.25 * m.max()
            s0, s1 = float(s[strong].min()), float(s[strong].max())
            length = s1 - s0
            if length < min_side_px:
                continue
            a, b = s0 + 0.5 * (1 - _CENTRAL) * length, s1 - 0.5 * (1 - _CENTRAL) * length
            half = float(np.clip(0.25 * length, 12.0, 48.0))
            pts = [
                (d0 * nx + sv * tx + e * nx, d0 * ny + sv * ty + e * ny)
                for sv in (a, b)
                for e in (-half, half)
            ]
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            r0, r1 = max(0, int(math.floor(min(ys)))), min(h, int(math.ceil(max(ys))) + 1)
            c0, c1 = max(0, int(math.floor(min(xs)))), min(w, int(math.ceil(max(xs))) + 1)
            edges.append(
                ChartEdge(
                    roi=(r0, r1, c0, c1),
                    normal_deg=float(phi % 360.0),
                    length_px=length,
                    object_index=k,
                )
            )
    return edges


def chart_mtf(image, *, min_side_px: float = _MIN_SIDE_PX, **edge_mtf_options) -> list[ChartEdge]:
    """Find every side (:func:`find_edges`) and measure each with
    :func:`scintomo.mtf.edge_mtf` (``edge_mtf_options``: ``pixel_size``,
    ``n_bootstrap`` ...). A side that cannot be measured keeps ``mtf`` None
    and says why in ``error`` (the others are still measured).

    Returns
    -------
    list of ChartEdge
    """
    import dataclasses
    import warnings

    from .edge import edge_mtf

    if "roi" in edge_mtf_options:
        raise ParameterError("chart_mtf finds the ROIs itself: roi is not an option")
    out = []
    for e in find_edges(image, min_side_px=min_side_px):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                m = edge_mtf(image, roi=e.roi, **edge_mtf_options)
            msgs = tuple(str(c.message) for c in caught)
            out.append(dataclasses.replace(e, mtf=m, warnings=msgs))
        except (ScintomoError, ValueError) as exc:
            out.append(dataclasses.replace(e, error=str(exc)))
    return out
