"""Sharpness scores of trial slices, one per candidate rotation centre.

A wrong centre smears every point into an arc (a half-circle of radius the
error for a 180-degree scan): the slice gets more edges and, for an object
whose attenuation is positive, negative lobes beside them. Two scores, both
lower at the better centre and both taken on the slice smoothed by a Gaussian
of ``smooth_px`` (so pixel noise, which the back-projection spreads evenly
over the candidates, does not decide):

- ``total_variation``: sum |grad| / sum |slice| (scale-free TV; minimum-TV
  centring, e.g. Donath et al. 2006 use the related entropy);
- ``negativity``: -sum(min(slice, 0)) / sum |slice|, the negative mass a wrong
  centre creates (robust at low SNR; needs positive attenuation, so phase
  fringes weaken it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .._validate import as_float32, check_finite, choice, positive
from ..exceptions import ShapeError

__all__ = ["CenterScores", "score_centers"]

METRICS = ("total_variation", "negativity")


@dataclass(frozen=True)
class CenterScores:
    """Scores of trial slices; lower is better for both metrics.

    ``centers`` (pixels); ``total_variation`` and ``negativity`` (one per
    centre); ``metric`` the one that picks ``best_center`` / ``best_index``;
    ``at_edge`` True when the best is the first or the last candidate (the
    true centre may lie outside the searched range: widen it).
    """

    centers: np.ndarray
    total_variation: np.ndarray
    negativity: np.ndarray
    metric: str
    best_index: int
    best_center: float
    at_edge: bool

    def to_dict(self) -> dict:
        return {
            "method": "sharpness of each trial slice, Gaussian-smoothed: total variation / L1 "
            "and negative mass / L1 (lower is better)",
            "metric": self.metric,
            "centers_px": [float(c) for c in self.centers],
            "total_variation": [float(v) for v in self.total_variation],
            "negativity": [float(v) for v in self.negativity],
            "best_index": self.best_index,
            "best_center_px": self.best_center,
            "at_edge": self.at_edge,
        }


def _sharpness(x, sigma) -> tuple[float, float]:
    x = x.astype(np.float64)
    if sigma > 0:
        x = ndimage.gaussian_filter(x, sigma)
    norm = float(np.abs(x).sum())
    if not norm > 0:
        return math.inf, math.inf  # an empty slice is no candidate
    gy, gx = np.gradient(x)
    return float(np.hypot(gx, gy).sum()) / norm, float(-np.minimum(x, 0).sum()) / norm


def score_centers(
    slices, centers, *, metric: str = "negativity", smooth_px: float = 2.0
) -> CenterScores:
    """Score trial slices reconstructed with candidate centres.

    Parameters
    ----------
    slices : (K, N, N) ndarray or iterable of (N, N) ndarrays
        One slice per candidate centre (the same row), taken one at a time
        (a generator reading them back from disk keeps memory flat). Not
        modified.
    centers : (K,) array_like, pixels
        The candidate centres.
    metric : {"negativity", "total_variation"}
        Which score picks the best (both are returned). ``negativity`` holds
        at lower SNR on absorption data; ``total_variation`` for objects
        with negative values (phase contrast).
    smooth_px : float, pixels
        Gaussian sigma applied before scoring (0: none).

    Returns
    -------
    CenterScores
    """
    c = np.asarray(centers, dtype=np.float64).ravel()
    choice(metric, "metric", METRICS)
    sigma = positive(smooth_px, "smooth_px", allow_zero=True)
    if isinstance(slices, np.ndarray) and slices.ndim != 3:
        raise ShapeError(f"slices must be (candidate, y, x), got shape {slices.shape}")
    tv, neg = [], []
    for sl in slices:  # one at a time: a generator of slices read back from disk is fine
        x = as_float32(sl, "slices")
        if x.ndim != 2:
            raise ShapeError(f"each slice must be 2-D, got shape {x.shape}")
        check_finite(x, "slices")
        t, n = _sharpness(x, sigma)
        tv.append(t)
        neg.append(n)
    if len(tv) != c.size or c.size == 0:
        raise ShapeError(f"{c.size} centres for {len(tv)} slices")
    tv, neg = np.asarray(tv), np.asarray(neg)
    score = tv if metric == "total_variation" else neg
    best = int(np.argmin(score))
    return CenterScores(
        centers=c,
        total_variation=tv,
        negativity=neg,
        metric=metric,
        best_index=best,
        best_center=float(c[best]),
        at_edge=c.size > 1 and best in (0, c.size - 1),
    )
