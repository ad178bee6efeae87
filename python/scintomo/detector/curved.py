"""Images recorded on a flexible film bent around a curved object.

A film bent along its columns (the x direction) around a cylinder of radius
R, or along a height profile z(x), seen by a camera (or X-ray beam) along z
records at camera position x the film point at arc length

    s(x) = R asin(x / R)                      (cylinder, apex at x = 0)
    s(x) = int_0^x sqrt(1 + z'(x')^2) dx'     (height profile)

``direction='unroll'`` maps a projected image (x) to the film's surface
(s): distances along the surface become true. ``direction='project'`` maps a
film read out flat (s) to the plane perpendicular to the viewing axis (x):
distances in the object's projection become true. Rows (y, along the
cylinder axis) are unchanged. Linear interpolation; points outside the
recorded range are set to ``fill``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import as_float32, check_finite, choice, positive
from ..exceptions import ParameterError, ShapeError
from ._common import new_axes, result_dict

__all__ = ["FlattenedImage", "flatten_curved"]


@dataclass(frozen=True)
class FlattenedImage:
    """Result of :func:`flatten_curved`.

    Attributes
    ----------
    image : (H, W') ndarray of float32
        The remapped image, pixel ``pixel_size`` um in both coordinates.
    coordinates : (W',) ndarray
        Output column positions (um from the apex column): arc length for
        'unroll', projected x for 'project'.
    source_columns : (W',) ndarray
        Input column (fractional) sampled for each output column.
    """

    image: np.ndarray
    coordinates: np.ndarray
    source_columns: np.ndarray
    direction: str
    pixel_size: float
    radius: float | None

    def to_dict(self, *, include_image: bool = False) -> dict:
        return result_dict(self, skip=() if include_image else ("image",))

    def plot(self, ax=None):
        ax = new_axes(ax)
        ax.imshow(self.image, cmap="gray", aspect="equal")
        ax.set_title(
            f"{self.direction}ed ({f'R = {self.radius:g} um' if self.radius else 'height map'})"
        )
        return ax


def flatten_curved(
    image,
    *,
    pixel_size: float,
    radius: float | None = None,
    height=None,
    direction: str = "unroll",
    center: float | None = None,
    fill: float = 0.0,
) -> FlattenedImage:
    """Map an image from a bent film to true distances.

    Parameters
    ----------
    image : (H, W) array_like
        The image, bent along its columns.
    pixel_size : float
        Pixel pitch in the input (and output), micrometres.
    radius : float, optional
        Cylinder radius, micrometres. Give this or ``height``.
    height : (W,) array_like, optional
        Height of the film z at each input column (x for 'unroll', which is
        the usual case of a measured surface), micrometres. Only for
        'unroll'.
    direction : {'unroll', 'project'}
        'unroll': projected view -> film surface; 'project': film read flat ->
        projection on the plane perpendicular to the view.
    center : float, optional
        Column of the cylinder's apex (x = s = 0); default the middle.
    fill : float
        Value outside the recorded range.

    Returns
    -------
    FlattenedImage
    """
    img = as_float32(image, "image")
    if img.ndim != 2:
        raise ShapeError(f"image must be 2-D, got shape {img.shape}")
    check_finite(img, "image")
    choice(direction, "direction", ("unroll", "project"))
    p = positive(pixel_size, "pixel_size")
    if (radius is None) == (height is None):
        raise ParameterError("give exactly one of radius or height")
    h, w = img.shape
    c0 = (w - 1) / 2.0 if center is None else float(center)
    x_in = (np.arange(w) - c0) * p  # positions of the input columns
    if radius is not None:
        r = positive(radius, "radius")
        if direction == "unroll":
            lim = [
                r * np.arcsin(min(1.0, abs(x_in[0]) / r)),
                r * np.arcsin(min(1.0, abs(x_in[-1]) / r)),
            ]
            out_pos = np.arange(-np.floor(lim[0] / p), np.floor(lim[1] / p) + 1) * p
            src_x = r * np.sin(out_pos / r)  # x of the film point at arc length s
        else:
            # beyond a quarter turn (s > pi R / 2) the film turns away from the view
            xmax = [
                r * np.sin(min(np.pi / 2, abs(x_in[0]) / r)),
                r * np.sin(min(np.pi / 2, x_in[-1] / r)),
            ]
            out_pos = np.arange(-np.floor(xmax[0] / p), np.floor(xmax[1] / p) + 1) * p
            src_x = r * np.arcsin(np.clip(out_pos / r, -1, 1))  # arc length of projected x
    else:
        if direction != "unroll":
            raise ParameterError(
                "a height map is given at the projected columns: use direction='unroll'"
            )
        z = np.asarray(height, dtype=float)
        if z.shape != (w,) or not np.all(np.isfinite(z)):
            raise ShapeError(f"height must be a finite (W,) = ({w},) array, got shape {z.shape}")
        ds = np.sqrt(1.0 + np.gradient(z, x_in) ** 2)
        s = np.concatenate([[0.0], np.cumsum(0.5 * (ds[1:] + ds[:-1]) * p)])
        s -= np.interp(0.0, x_in, s)
        out_pos = np.arange(-np.floor(-s[0] / p), np.floor(s[-1] / p) + 1) * p
        src_x = np.interp(out_pos, s, x_in)
        r = None
    src_col = src_x / p + c0
    valid = (src_col >= 0) & (src_col <= w - 1)
    cc = np.clip(src_col, 0, w - 1)
    i0 = np.clip(np.floor(cc).astype(int), 0, max(w - 2, 0))
    fr = (cc - i0)[None, :]
    i1 = np.minimum(i0 + 1, w - 1)
    out = img[:, i0] * (1 - fr) + img[:, i1] * fr
    out[:, ~valid] = fill
    return FlattenedImage(
        image=out.astype(np.float32),
        coordinates=out_pos,
        source_columns=src_col,
        direction=direction,
        pixel_size=p,
        radius=r,
    )
