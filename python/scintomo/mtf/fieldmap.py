"""MTF across the field: the slanted-edge MTF of every tile of a large image
(an edge chart, a grid of slanted squares, stripes), as a 2-D map of MTF50.

Film thickness and the objective's field curvature change the resolution over
the image; one edge in the centre hides that. Each tile is measured with
:func:`scintomo.mtf.edge_mtf` (no bootstrap); tiles where it finds no single
straight edge (flat, two edges, a corner, a bar) raise there and are left
out of the map (NaN) with the reason kept, never filled in. So are tiles
whose edge comes closer than ``margin_px`` to a tile side it should not cross
(an edge at a tile's border, or one leaving through the sides): the edge must
run from one side of the tile to the opposite one with room for its ESF; and
tiles that the measured ESF, laid along the fitted edge, does not reproduce
to within the noise (a corner of a slanted square, a second edge, a spot):
edge_mtf alone measures those without complaint and far off.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .. import _validate
from .._progress import progress
from ..exceptions import NumericalError, ParameterError, ScintomoError, ShapeError

__all__ = ["MTFMap", "mtf_map"]

# a tile's edge model may leave at most 1.5 x the noise plus 2% of the edge's
# contrast rms (clean edges leave ~1.0 x the noise)
_RESIDUAL_NOISE = 1.5
_RESIDUAL_CONTRAST = 0.02


@dataclass(frozen=True)
class MTFMap:
    """MTF50 of each tile.

    ``mtf50``, ``mtf20`` : (P, Q) cycles/px (NaN where the tile held no
    measurable edge); ``angle_deg`` : (P, Q) the edge's tilt; ``rows``,
    ``cols`` : (P,), (Q,) tile centres, pixels; ``edge_rows``,
    ``edge_cols`` : (P, Q) where each tile's edge crosses its middle (the
    position the MTF belongs to), pixels in the image;
    ``tile`` : (height, width) px; ``skipped`` : {(i, j): reason} for the NaN
    tiles; ``warnings`` : {(i, j): message} for measured tiles whose
    measurement warned (low contrast, an unfavourable angle ...);
    ``pixel_size_um`` enables lp/mm.
    """

    mtf50: np.ndarray
    mtf20: np.ndarray
    angle_deg: np.ndarray
    edge_rows: np.ndarray
    edge_cols: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    tile: tuple
    skipped: dict
    warnings: dict
    pixel_size_um: float | None

    @property
    def mtf50_lp_per_mm(self):
        return None if self.pixel_size_um is None else self.mtf50 * 1e3 / self.pixel_size_um

    @property
    def n_measured(self) -> int:
        return int(np.isfinite(self.mtf50).sum())

    def to_dict(self) -> dict:
        """The map as plain Python values (NaN as None; keys of ``skipped``
        and ``warnings`` as "i,j")."""

        def grid(a):
            return [[None if not math.isfinite(v) else float(v) for v in row] for row in a]

        d = {
            "method": "slanted-edge MTF (scintomo.mtf.edge_mtf) per tile",
            "tile": list(self.tile),
            "rows_px": self.rows.tolist(),
            "cols_px": self.cols.tolist(),
            "mtf50": grid(self.mtf50),
            "mtf20": grid(self.mtf20),
            "angle_deg": grid(self.angle_deg),
            "edge_rows_px": grid(self.edge_rows),
            "edge_cols_px": grid(self.edge_cols),
            "skipped": {f"{i},{j}": r for (i, j), r in self.skipped.items()},
            "warnings": {f"{i},{j}": r for (i, j), r in self.warnings.items()},
            "pixel_size_um": self.pixel_size_um,
        }
        if self.pixel_size_um is not None:
            d["mtf50_lp_per_mm"] = grid(self.mtf50_lp_per_mm)
        return d

    def plot(self, image=None, ax=None):
        """The MTF50 map as an image over the field (tiles at their places,
        skipped tiles blank, each tile's value written in it; lp/mm with a
        pixel size), optionally over ``image``. Returns the figure."""
        import matplotlib

        if ax is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(7, 6))
        else:
            fig = ax.figure
        lpmm = self.pixel_size_um is not None
        vals = self.mtf50_lp_per_mm if lpmm else self.mtf50
        unit = "lp/mm" if lpmm else "cycles/px"
        th, tw = self.tile
        if image is not None:
            ax.imshow(np.asarray(image), cmap="gray")
        dr = float(np.diff(self.rows).mean()) if self.rows.size > 1 else th
        dc = float(np.diff(self.cols).mean()) if self.cols.size > 1 else tw
        extent = (
            self.cols[0] - dc / 2,
            self.cols[-1] + dc / 2,
            self.rows[-1] + dr / 2,
            self.rows[0] - dr / 2,
        )
        im = ax.imshow(
            np.ma.masked_invalid(vals),
            extent=extent,
            cmap="viridis",
            alpha=0.6 if image is not None else 1.0,
            interpolation="nearest",
        )
        fig.colorbar(im, ax=ax, label=f"MTF50 ({unit})")
        for i, r in enumerate(self.rows):
            for j, c in enumerate(self.cols):
                v = vals[i, j]
                txt = "-" if not math.isfinite(v) else f"{v:.3g}"
                ax.text(c, r, txt, ha="center", va="center", fontsize=6, color="k",
                        bbox={"fc": "w", "ec": "none", "alpha": 0.6, "pad": 1})  # fmt: skip
        if image is not None:  # the whole image, not only the tiles' span
            h, w = np.shape(image)[:2]
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
        ax.set(
            title=f"MTF50 over the field ({self.n_measured} of {self.mtf50.size} tiles)",
            xlabel="column (px)",
            ylabel="row (px)",
        )
        fig.tight_layout()
        return fig


def mtf_map(
    image,
    *,
    tile=128,
    step=None,
    pixel_size=None,
    fit_order: int = 1,
    margin_px: float = 16.0,
    progress_bar: bool | None = None,
    n_threads=None,
) -> MTFMap:
    """Slanted-edge MTF50 of every tile of an image, as a map over the field.

    Parameters
    ----------
    image : (H, W) ndarray
        An image with straight slanted edges (a grid of slanted squares, an
        edge chart, tilted stripes), each tile holding one edge. Not modified.
    tile : int or (int, int), pixels
        Tile height and width (each >= 32).
    step : int or (int, int), pixels, optional
        Distance between tile origins (default: the tile size, no overlap).
    pixel_size : float (micrometres) or str, optional
        Enables lp/mm.
    fit_order : 1 or 2
        Edge fit per tile (see :func:`edge_mtf`).
    margin_px : float, pixels
        Least distance from the edge to the tile sides along it (tiles with
        less are skipped).
    progress_bar : bool, optional
        None: only on an interactive terminal.
    n_threads : int, optional
        Threads for each tile's measurement (None: all cores).

    Returns
    -------
    MTFMap
    """
    from .edge import edge_mtf, edge_profile

    img = _validate.as_array(image, "image")
    if img.ndim != 2:
        raise ShapeError(f"image must be 2-D, got shape {img.shape}")
    _validate.check_finite(img, "image")
    th, tw = _pair(tile, "tile")
    if th < 32 or tw < 32:
        raise ParameterError(f"tile must be at least 32 x 32 pixels, got {(th, tw)}")
    sh, sw = (th, tw) if step is None else _pair(step, "step")
    h, w = img.shape
    if h < th or w < tw:
        raise ShapeError(f"image {img.shape} is smaller than one tile {(th, tw)}")
    px_um = _validate.length_um(pixel_size)
    r0s = np.arange(0, h - th + 1, sh)
    c0s = np.arange(0, w - tw + 1, sw)
    shape = (r0s.size, c0s.size)
    m50 = np.full(shape, np.nan)
    m20 = np.full(shape, np.nan)
    ang = np.full(shape, np.nan)
    er = np.full(shape, np.nan)
    ec = np.full(shape, np.nan)
    margin = _validate.positive(margin_px, "margin_px", allow_zero=True)
    skipped: dict = {}
    warned: dict = {}
    cells = [(i, j) for i in range(shape[0]) for j in range(shape[1])]
    for i, j in progress(cells, desc="MTF map", unit="tile", enabled=progress_bar):
        r0, c0 = int(r0s[i]), int(c0s[j])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                roi = (r0, r0 + th, c0, c0 + tw)
                prof = edge_profile(
                    img, roi=roi, fit_order=fit_order, warn=False, n_threads=n_threads
                )
                pos = _edge_position(prof, th, tw, margin)
                _check_one_edge(img[r0 : r0 + th, c0 : c0 + tw], prof)
                m = edge_mtf(img, roi=roi, fit_order=fit_order, n_bootstrap=0, n_threads=n_threads)
            except ScintomoError as e:  # no single straight edge in this tile
                skipped[(i, j)] = str(e)
                continue
        if caught:
            warned[(i, j)] = "; ".join(str(c.message) for c in caught)
        m50[i, j], m20[i, j], ang[i, j] = m.mtf50, m.mtf20, m.angle_deg
        er[i, j], ec[i, j] = r0 + pos[0], c0 + pos[1]
    return MTFMap(
        mtf50=m50,
        mtf20=m20,
        angle_deg=ang,
        edge_rows=er,
        edge_cols=ec,
        rows=r0s + (th - 1) / 2,
        cols=c0s + (tw - 1) / 2,
        tile=(th, tw),
        skipped=skipped,
        warnings=warned,
        pixel_size_um=px_um,
    )


def _edge_position(prof, th, tw, margin) -> tuple[float, float]:
    """(row, col) in the tile where its edge crosses the middle; raises
    NumericalError when the edge comes within ``margin`` of the sides it
    should not cross."""
    n_along, n_across = (tw, th) if prof.transposed else (th, tw)
    t = np.arange(n_along, dtype=np.float64)
    across = np.polyval(prof.fit, t)
    lo, hi = float(across.min()), float(across.max())
    if lo < margin or hi > n_across - 1 - margin:
        raise NumericalError(
            f"the edge lies {lo:.0f} to {hi:.0f} px across a tile {n_across} px wide: "
            f"it does not cross the tile with {margin:g} px to spare on each side"
        )
    mid = (n_along - 1) / 2
    a = float(np.polyval(prof.fit, mid))
    return (a, mid) if prof.transposed else (mid, a)


def _check_one_edge(tile, prof) -> None:
    """Raise NumericalError unless the tile is one straight edge between two
    flat regions: the ESF placed along the fitted edge must reproduce every
    pixel of the tile to within the noise (a corner, a second edge or a spot
    leaves a residual). Noise from the MAD of differences along the edge,
    which a second edge or a corner does not inflate."""
    o = np.asarray(tile, dtype=np.float64)
    o = o.T if prof.transposed else o
    r, c = np.indices(o.shape)
    model = np.interp(c - np.polyval(prof.fit, r), prof.x_px, prof.esf * prof.polarity)
    rms = float(np.sqrt(np.mean((o - model) ** 2)))
    noise = float(np.median(np.abs(np.diff(o, axis=0)))) / 0.6745 / math.sqrt(2)
    allowed = _RESIDUAL_NOISE * noise + _RESIDUAL_CONTRAST * abs(prof.contrast)
    if not rms <= allowed:
        raise NumericalError(
            f"the tile is not one straight edge between flat regions: the edge model leaves "
            f"{rms:.3g} rms against {allowed:.3g} allowed by the noise ({noise:.3g}); a corner, "
            "a second edge or other structure is in the tile"
        )


def _pair(v, name):
    try:
        a, b = (v, v) if np.ndim(v) == 0 else v
        a, b = int(a), int(b)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{name} must be an integer or a pair of integers, got {v!r}"
        ) from None
    if a < 1 or b < 1:
        raise ParameterError(f"{name} must be positive, got {v!r}")
    return a, b
