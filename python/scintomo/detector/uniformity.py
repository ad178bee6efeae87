"""Uniformity of a flat response: profiles, global and local non-uniformity
on a grid of ROIs, and DSNU / PRNU by EMVA 1288 (Release 4.0, Linear, sec. 8:
spatial variances of the averaged dark and flat images, corrected for the
temporal noise left after averaging L frames: s^2 = s^2_measured -
sigma^2_temporal / L)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .._validate import as_stack, check_finite, check_nonempty
from ..exceptions import ParameterError, ScintomoWarning, ShapeError
from ._common import new_axes, result_dict

__all__ = ["Uniformity", "uniformity"]


@dataclass(frozen=True)
class Uniformity:
    """Uniformity figures of a flat image.

    Attributes
    ----------
    profile_x, profile_y : ndarray
        Mean over a central band (``band`` pixels) along columns (x) and rows (y).
    roi_means : (gy, gx) ndarray
        Mean of each ROI of the grid (dark subtracted if darks were given).
    global_nonuniformity : float
        std / mean of the ROI means.
    global_range : float
        (max - min) / mean of the ROI means.
    local_nonuniformity : float
        Largest |ROI mean - mean of its up-to-8 neighbours| / that neighbour mean.
    dsnu : float or None
        EMVA 1288 DSNU, DN (spatial std of the dark signal).
    prnu : float or None
        EMVA 1288 PRNU, fraction (multiply by 100 for %).
    """

    profile_x: np.ndarray
    profile_y: np.ndarray
    roi_means: np.ndarray
    global_nonuniformity: float
    global_range: float
    local_nonuniformity: float
    mean_signal: float
    dsnu: float | None
    prnu: float | None
    n_flats: int
    n_darks: int

    def to_dict(self) -> dict:
        return result_dict(self)

    def plot(self, axes=None):
        axes = new_axes(axes, ncols=2)
        axes[0].plot(self.profile_x / self.mean_signal, label="x")
        axes[0].plot(self.profile_y / self.mean_signal, label="y")
        axes[0].set_xlabel("pixel")
        axes[0].set_ylabel("relative signal")
        axes[0].legend()
        im = axes[1].imshow(self.roi_means / self.mean_signal, cmap="viridis")
        axes[1].set_title(f"ROI means, global NU {100 * self.global_nonuniformity:.2f}%")
        axes[1].figure.colorbar(im, ax=axes[1])
        return axes


def _spatial_var(stack: np.ndarray) -> tuple[float, float, float]:
    """(mean, spatial variance of the mean image corrected for temporal noise,
    temporal variance) of a (L, H, W) stack, EMVA 1288."""
    st = stack.astype(np.float64)
    mean_img = st.mean(axis=0)
    s2 = float(mean_img.var())
    n = st.shape[0]
    if n > 1:
        temporal = float(st.var(axis=0, ddof=1).mean())
        s2 -= temporal / n
    else:
        temporal = float("nan")
    return float(mean_img.mean()), max(s2, 0.0), temporal


def uniformity(flats, darks=None, *, grid=(8, 8), band: int | None = None) -> Uniformity:
    """Uniformity of flat images.

    Parameters
    ----------
    flats : (L, H, W) or (H, W) array_like
        Flat (uniformly irradiated) frames; several frames give the EMVA 1288
        temporal-noise correction.
    darks : (L, H, W) or (H, W) array_like, optional
        Dark frames, subtracted; needed for DSNU and PRNU.
    grid : (int, int)
        ROIs along y and x (at least 1 x 1; 3 x 3 for local NU).
    band : int, optional
        Width of the central band averaged into the profiles (default H/10, W/10).
    """
    f, _ = as_stack(flats, "flats")
    check_nonempty(f, "flats")
    check_finite(f, "flats")
    d = None
    if darks is not None:
        d, _ = as_stack(darks, "darks")
        check_nonempty(d, "darks")
        check_finite(d, "darks")
        if d.shape[1:] != f.shape[1:]:
            raise ShapeError(f"darks {d.shape[1:]} and flats {f.shape[1:]} differ in frame shape")
    gy, gx = (int(v) for v in grid)
    h, w = f.shape[1:]
    if gy < 1 or gx < 1 or gy > h or gx > w:
        raise ParameterError(f"grid {grid} does not fit {h} x {w} frames")
    img = f.mean(axis=0, dtype=np.float64)
    dark_mean = d.mean(axis=0, dtype=np.float64) if d is not None else 0.0
    img = img - dark_mean
    m = float(img.mean())
    if not m > 0:
        raise ParameterError(f"mean flat signal (dark subtracted) is {m}; must be > 0")
    rows = max(1, h // 10) if band is None else int(band)
    cols = max(1, w // 10) if band is None else int(band)
    if not (1 <= rows <= h and 1 <= cols <= w):
        raise ParameterError(f"band {band} does not fit {h} x {w} frames")
    r0, c0 = (h - rows) // 2, (w - cols) // 2
    profile_x = img[r0 : r0 + rows].mean(axis=0)
    profile_y = img[:, c0 : c0 + cols].mean(axis=1)
    ry = np.linspace(0, h, gy + 1).astype(int)
    rx = np.linspace(0, w, gx + 1).astype(int)
    roi = np.array(
        [[img[ry[i] : ry[i + 1], rx[j] : rx[j + 1]].mean() for j in range(gx)] for i in range(gy)]
    )
    gnu = float(roi.std() / roi.mean())
    grange = float(np.ptp(roi) / roi.mean())
    lnu = 0.0
    for i in range(gy):
        for j in range(gx):
            nb = [
                roi[a, b]
                for a in range(max(0, i - 1), min(gy, i + 2))
                for b in range(max(0, j - 1), min(gx, j + 2))
                if (a, b) != (i, j)
            ]
            if nb:
                ref = float(np.mean(nb))
                lnu = max(lnu, abs(roi[i, j] - ref) / ref)
    dsnu = prnu = None
    if d is not None:
        if f.shape[0] < 2 or d.shape[0] < 2:
            warnings.warn(
                "EMVA 1288 DSNU/PRNU from single frames include the temporal noise",
                ScintomoWarning,
                stacklevel=2,
            )
        mu_d, s2_d, _ = _spatial_var(d)
        mu_f, s2_f, _ = _spatial_var(f)
        dsnu = float(np.sqrt(s2_d))
        prnu = float(np.sqrt(max(s2_f - s2_d, 0.0)) / (mu_f - mu_d))
    return Uniformity(
        profile_x,
        profile_y,
        roi,
        gnu,
        grange,
        lnu,
        m,
        dsnu,
        prnu,
        f.shape[0],
        0 if d is None else d.shape[0],
    )
