"""Noise power spectrum of flat images, IEC 62220-1-1:2015.

Linearised flat (open-beam) images; a 2-D polynomial (degree 2 by default)
fitted to each frame and subtracted; regions of interest of 256 x 256 pixels
with 50% overlap;

    NPS(u, v) = dx dy / (M Nx Ny) * sum_m |DFT(I_m - S_m)|^2        [signal^2 mm^2]
    NNPS = NPS / mean^2                                               [mm^2]

and 1-D cuts along each frequency axis from the 7 lines on each side of the
axis, excluding the axis itself, each value placed at its radial frequency
sqrt(u^2 + v^2) and averaged in bins of width 1 / (Nx dx) (the DFT's own
spacing; IEC 62220-1-1 allows any bin width, e.g. 0.01 / dx). The region
FFTs run in Rust (``scintomo._core.nps_sum``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._validate import (
    as_stack,
    check_nonempty,
    check_result,
    choice,
    n_threads_arg,
    positive,
    scale_down,
)
from ..exceptions import ParameterError, ShapeError
from ._common import new_axes, result_dict

__all__ = ["NPS", "nps"]


@dataclass(frozen=True)
class NPS:
    """Normalised noise power spectrum.

    Attributes
    ----------
    frequencies : (K,) ndarray
        Bin centres of the 1-D cuts, lp/mm (from 1 / (roi dx) to Nyquist).
    horizontal, vertical : (K,) ndarray
        NNPS along u (image columns, x) and v (rows, y), mm^2.
    nnps_2d : (roi, roi) ndarray
        2-D NNPS, mm^2, zero frequency at the centre (``numpy.fft.fftshift``).
    frequency_step : float
        Spacing of the 2-D grid, lp/mm.
    mean_signal : float
        Mean of the (linearised) signal over the regions.
    n_rois, n_frames, roi : int
    pixel_size : float
        Micrometres.
    """

    frequencies: np.ndarray
    horizontal: np.ndarray
    vertical: np.ndarray
    nnps_2d: np.ndarray
    frequency_step: float
    mean_signal: float
    n_rois: int
    n_frames: int
    roi: int
    pixel_size: float
    unit: str = "mm^2"
    #: Analysed area of the frames, (row0, row1, col0, col1), pixels, half-open.
    region: tuple = ()

    @property
    def values(self) -> np.ndarray:
        """Mean of the horizontal and vertical cuts, mm^2."""
        return 0.5 * (self.horizontal + self.vertical)

    def to_dict(self, *, include_2d: bool = False) -> dict:
        return result_dict(self, skip=() if include_2d else ("nnps_2d",))

    def plot(self, ax=None):
        ax = new_axes(ax)
        ax.semilogy(self.frequencies, self.horizontal, label="horizontal (u)")
        ax.semilogy(self.frequencies, self.vertical, label="vertical (v)")
        ax.set_xlabel("spatial frequency (lp/mm)")
        ax.set_ylabel("NNPS (mm$^2$)")
        ax.set_title(f"NNPS, {self.n_rois} ROIs of {self.roi} px")
        ax.legend()
        return ax


def _cut(power: np.ndarray, n_lines: int, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Radially binned 1-D cut of the half-plane spectrum ``power`` (rows v in
    fftfreq order, columns u = 0..N/2), in units of the frequency step."""
    n = power.shape[0]
    v = np.fft.fftfreq(n, 1.0 / n)
    u = np.arange(power.shape[1], dtype=float)
    if axis == "horizontal":
        rows = np.r_[1 : n_lines + 1, n - n_lines : n]
        sel = power[rows]
        f = np.hypot(u[None, :], v[rows, None])
    else:
        # columns u = 1..n_lines; the u < 0 side is the conjugate (u, -v),
        # already among the rows.
        sel = power[:, 1 : n_lines + 1]
        f = np.hypot(u[None, 1 : n_lines + 1], v[:, None])
    idx = np.rint(f).astype(int).ravel()
    nb = n // 2 + 1
    keep = idx < nb
    s = np.bincount(idx[keep], weights=sel.ravel()[keep], minlength=nb)
    c = np.bincount(idx[keep], minlength=nb)
    bins = np.arange(1, nb)
    return bins, s[1:] / np.maximum(c[1:], 1)


#: Side of the analysed area of IEC 62220-1-1:2015, mm.
IEC_REGION_MM = 125.0


def _region(region, shape, pixel_size_um: float) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the analysed area in frames of ``shape``."""
    h, w = (int(n) for n in shape)
    if region is None:
        return (0, h, 0, w)
    if isinstance(region, str):
        choice(region, "region", ("iec",))
        side = int(round(IEC_REGION_MM * 1e3 / pixel_size_um))
        rh, rw = min(side, h), min(side, w)
        r0, c0 = (h - rh) // 2, (w - rw) // 2
        return (r0, r0 + rh, c0, c0 + rw)
    try:
        r0, r1, c0, c1 = (int(v) for v in region)
    except (TypeError, ValueError):
        raise ParameterError(
            "region must be None, 'iec' or (row0, row1, col0, col1) pixel bounds"
        ) from None
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
        raise ShapeError(f"region {(r0, r1, c0, c1)} is not inside frames of {h} x {w}")
    return (r0, r1, c0, c1)


def nps(
    frames,
    *,
    pixel_size: float,
    roi: int = 256,
    overlap: float = 0.5,
    detrend_order: int = 2,
    detrend: str = "frame",
    n_lines: int = 7,
    linearise=None,
    region=None,
    n_threads: int | None = None,
) -> NPS:
    """Normalised noise power spectrum of a series of flat images.

    Parameters
    ----------
    frames : (F, H, W) or (H, W) array_like
        Flat (open-beam) images in a signal linear in exposure (or give
        ``linearise``). uint16, float32 and float64 are read without a copy.
    pixel_size : float
        Pixel pitch, micrometres.
    roi : int
        Side of the square regions, pixels (IEC 62220-1-1: 256).
    overlap : float
        Fractional overlap of neighbouring regions in [0, 1) (IEC: 0.5).
    detrend_order : int
        Degree of the 2-D polynomial subtracted (0 to 4; IEC: 2).
    detrend : {'frame', 'roi'}
        Fit the polynomial to each whole frame (IEC 62220-1-1:2015) or to
        each region.
    n_lines : int
        Lines on each side of an axis averaged into the 1-D cuts (IEC: 7).
    linearise : callable, optional
        Conversion function applied to the frames first (e.g. the inverse of
        a measured signal-vs-air-kerma curve).
    region : None, 'iec' or (row0, row1, col0, col1)
        Analysed area: the whole frame (None); the central 125 mm x 125 mm
        of IEC 62220-1-1 (``'iec'``, from ``pixel_size``; the whole extent
        along an axis shorter than 125 mm); or explicit pixel bounds,
        half-open. The detrend polynomial is fitted over this area.
    n_threads : int, optional
        Threads (default: all cores).

    Returns
    -------
    NPS
    """
    pixel_size = positive(pixel_size, "pixel_size")
    choice(detrend, "detrend", ("frame", "roi"))
    if linearise is not None:
        frames = np.asarray(linearise(np.asarray(frames)), dtype=np.float32)
    stack, _ = as_stack(frames, "frames")
    check_nonempty(stack, "frames")
    roi = int(roi)
    if roi < 8 or roi % 2:
        raise ParameterError(f"roi must be an even number >= 8, got {roi}")
    if not 0.0 <= float(overlap) < 1.0:
        raise ParameterError(f"overlap must be in [0, 1), got {overlap}")
    if not 1 <= int(n_lines) < roi // 2:
        raise ParameterError(f"n_lines must be in [1, {roi // 2}), got {n_lines}")
    bounds = _region(region, stack.shape[1:], pixel_size)
    stack = stack[:, bounds[0] : bounds[1], bounds[2] : bounds[3]]
    if roi > min(stack.shape[1:]):
        raise ShapeError(f"roi {roi} does not fit in the analysed area {stack.shape[1:]}")
    step = max(1, int(round(roi * (1.0 - float(overlap)))))
    # The NNPS is normalised by the mean squared, so scaling the frames by a
    # power of two (exact) changes nothing but keeps |FFT|^2 of values near
    # the float32 maximum finite; the mean is scaled back below.
    stack, scale = scale_down(stack, 2.0**32)
    power, n_rois, mean = _core.nps_sum(
        stack,
        roi=roi,
        step=step,
        order=int(detrend_order),
        per_roi=detrend == "roi",
        n_threads=n_threads_arg(n_threads),
    )
    if not mean > 0:
        raise ParameterError(
            f"mean signal {mean} is not positive: NNPS needs a linear, offset-free signal"
        )
    dx = pixel_size * 1e-3  # mm
    half = check_result(power * (dx * dx / (n_rois * roi * roi)) / mean**2, "nps")
    mean = mean * scale
    bins, horiz = _cut(half, int(n_lines), "horizontal")
    _, vert = _cut(half, int(n_lines), "vertical")
    df = 1.0 / (roi * dx)
    # full plane from the half plane: P(-u, -v) = P(u, v)
    full = np.empty((roi, roi))
    full[:, : roi // 2 + 1] = half
    neg_u = np.arange(roi // 2 + 1, roi)
    full[:, neg_u] = half[(-np.arange(roi)) % roi][:, roi - neg_u]
    return NPS(
        frequencies=bins * df,
        horizontal=horiz,
        vertical=vert,
        nnps_2d=np.fft.fftshift(full),
        frequency_step=df,
        mean_signal=float(mean),
        n_rois=int(n_rois),
        n_frames=int(stack.shape[0]),
        roi=roi,
        pixel_size=pixel_size,
        region=bounds,
    )
