"""Fourier ring / shell correlation: resolution measured in the reconstruction.

FRC(r) = Re sum_{|k| in ring r} F1(k) F2*(k) / sqrt(sum |F1|^2 sum |F2|^2)
(Saxton & Baumeister 1982; van Heel 1987), between two reconstructions from
independent halves of the data (here the even and the odd projection angles).
For a signal S and independent noises of power N in each half, E[FRC] =
SNR / (1 + SNR) with SNR = S / N per half.

Thresholds (van Heel & Schatz 2005, J. Struct. Biol. 151, 250, eq. 17):
the 1/2-bit curve T(r) = (0.2071 + 1.9102 / sqrt(n_r)) / (1.2071 + 0.9102 /
sqrt(n_r)), n_r the number of Fourier pixels (voxels) in the ring (shell). It
is stated for the half-data sets: where the halves' FRC meets it, the *full*
data set (both halves) carries 1/2 bit of information per pixel (SNR of the
full data sqrt(2) - 1). The fixed 1/7 threshold (Rosenthal & Henderson 2003,
J. Mol. Biol. 333, 721) is the halves' FRC = 0.143 at which the full data's
correlation with the truth, C_ref = sqrt(2 FRC / (1 + FRC)), is 0.5.

Half-data to full-data convention used here: the crossings are those of the
*halves'* curve with these two thresholds, which already refer the resolution
to the whole data set (the convention of both papers); no extra factor is
applied to the frequencies. ``full_data_correlation`` is the halves' curve
corrected to the full data by the Spearman-Brown relation 2 FRC / (1 + FRC)
(Rosenthal & Henderson 2003, eq. 6 with C_ref^2), for plotting beside it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np

from .._validate import as_float32, check_finite, check_nonempty, length_um, positive
from ..exceptions import ParameterError, ScintomoWarning, ShapeError

__all__ = ["FRC", "fourier_ring_correlation", "frc", "half_bit_threshold"]

ONE_SEVENTH = 1.0 / 7.0


def half_bit_threshold(n_pixels) -> np.ndarray:
    """The 1/2-bit threshold of van Heel & Schatz 2005 (eq. 17) for rings
    (shells) of ``n_pixels`` Fourier pixels (voxels)."""
    s = np.sqrt(np.maximum(np.asarray(n_pixels, dtype=np.float64), 1.0))
    return (0.2071 + 1.9102 / s) / (1.2071 + 0.9102 / s)


def _arr(a):
    return None if a is None else np.asarray(a).tolist()


def _nan_none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


@dataclass(frozen=True)
class FRC:
    """Fourier ring (2-D) or shell (3-D) correlation of two half data sets.

    ``frequencies``: ring centres, cycles/px (radial; 0.5 = Nyquist along an
    axis); ``values``: the halves' correlation; ``n_pixels``: Fourier pixels
    per ring; ``half_bit``: the 1/2-bit threshold per ring; ``frequency_half_bit``
    and ``frequency_one_seventh``: first crossings (cycles/px, linear
    interpolation; NaN when the curve never meets the threshold below
    Nyquist, i.e. the resolution is at least the Nyquist limit).
    ``pixel_size_um`` enables lp/mm and the resolution in nm (half the period,
    1e6 / (2 f[lp/mm]), the papers' convention; the period itself is twice it).
    ``dimension``: 2 (rings) or 3 (shells). ``angular_limit`` (cycles/px, from
    :func:`frc` only, else NaN): the frequency up to which each half's angles
    sample the object's spectrum (Crowther: n / (2 pi R) for n angles over a
    half turn and an object of radius R px); above it the halves' view
    aliasing (streaks, anticorrelated between even and odd angles) drives
    the curve, so a crossing there is no resolution. See the module doc for
    the half-data to full-data convention.
    """

    frequencies: np.ndarray
    values: np.ndarray
    n_pixels: np.ndarray
    half_bit: np.ndarray
    frequency_half_bit: float
    frequency_one_seventh: float
    pixel_size_um: float | None
    dimension: int
    angular_limit: float = float("nan")

    @property
    def full_data_correlation(self) -> np.ndarray:
        """Spearman-Brown corrected curve 2 FRC / (1 + FRC) (full data set)."""
        v = np.clip(self.values, -0.999999, None)
        return 2 * v / (1 + v)

    def _lpmm(self, f):
        return None if self.pixel_size_um is None else f * 1e3 / self.pixel_size_um

    @property
    def frequencies_lp_per_mm(self):
        return self._lpmm(self.frequencies)

    def _nm(self, f):
        if self.pixel_size_um is None or not f > 0:
            return None
        return self.pixel_size_um * 1e3 / (2 * f)

    @property
    def resolution_nm_half_bit(self):
        """Half the period at the 1/2-bit crossing, nm (None without a pixel
        size or a crossing)."""
        return self._nm(self.frequency_half_bit)

    @property
    def resolution_nm_one_seventh(self):
        """Half the period at the 1/7 crossing, nm."""
        return self._nm(self.frequency_one_seventh)

    def to_dict(self) -> dict:
        """The curve and figures as plain Python values (NaN as None)."""
        d = {
            "method": f"Fourier {'shell' if self.dimension == 3 else 'ring'} correlation of two "
            "independent halves; thresholds 1/2-bit (van Heel & Schatz 2005) and 1/7 "
            "(Rosenthal & Henderson 2003), applied to the halves' curve",
            "frequencies_cycles_per_px": _arr(self.frequencies),
            "frequencies_lp_per_mm": _arr(self.frequencies_lp_per_mm),
            "values": _arr(self.values),
            "full_data_correlation": _arr(self.full_data_correlation),
            "n_pixels": _arr(self.n_pixels),
            "half_bit": _arr(self.half_bit),
            "frequency_half_bit": _nan_none(self.frequency_half_bit),
            "frequency_one_seventh": _nan_none(self.frequency_one_seventh),
            "pixel_size_um": self.pixel_size_um,
            "dimension": self.dimension,
            "angular_limit_cycles_per_px": _nan_none(self.angular_limit),
        }
        for name in ("half_bit", "one_seventh"):
            f = getattr(self, f"frequency_{name}")
            d[f"frequency_{name}_lp_per_mm"] = _nan_none(self._lpmm(f))
            d[f"resolution_nm_{name}"] = _nan_none(getattr(self, f"resolution_nm_{name}"))
        return d

    def plot(self, ax=None):
        """The curve, the full-data curve, both thresholds and the crossings;
        returns the figure."""
        import matplotlib

        own = ax is None
        if ax is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 4))
        else:
            fig = ax.figure
        scale, unit = (
            (1e3 / self.pixel_size_um, "lp/mm") if self.pixel_size_um else (1.0, "cycles/px")
        )
        f = self.frequencies * scale
        ax.plot(f, self.values, label="FRC (halves)")
        ax.plot(f, self.full_data_correlation, lw=0.8, ls=":", label="2 FRC/(1+FRC) (full)")
        ax.plot(f, self.half_bit, "--", lw=0.8, label="1/2 bit")
        ax.axhline(ONE_SEVENTH, color="0.5", ls="-.", lw=0.8, label="1/7")
        if np.isfinite(self.angular_limit):
            ax.axvline(self.angular_limit * scale, color="r", ls=":", lw=0.8,
                       label="angular sampling limit of a half")  # fmt: skip
        for fv, lv, name in (
            (self.frequency_half_bit, None, "1/2 bit"),
            (self.frequency_one_seventh, ONE_SEVENTH, "1/7"),
        ):
            if np.isfinite(fv):
                y = lv if lv is not None else float(np.interp(fv, self.frequencies, self.half_bit))
                txt = f"{name}: {fv * scale:.4g} {unit}"
                nm = self._nm(fv)
                if nm is not None:
                    txt += f" ({nm:.0f} nm)"
                ax.plot([fv * scale], [y], "o", ms=4)
                ax.annotate(txt, (fv * scale, y), fontsize=7)
        ax.set(
            xlabel=unit,
            ylabel="correlation",
            ylim=(-0.1, 1.05),
            xlim=(0, 0.5 * scale),
            title="Fourier shell correlation"
            if self.dimension == 3
            else "Fourier ring correlation",
        )
        ax.legend(fontsize=7)
        if own:  # a caller's axes: its figure's layout is the caller's
            fig.tight_layout()
        return fig


def _first_crossing(f, v, t) -> float:
    """First frequency (after the first ring) where v falls below t, linear."""
    d = np.asarray(v, dtype=np.float64) - np.asarray(t, dtype=np.float64)
    for i in range(1, d.size):
        if d[i] < 0 <= d[i - 1]:
            return float(f[i - 1] + (f[i] - f[i - 1]) * d[i - 1] / (d[i - 1] - d[i]))
    return float("nan")


def _window(shape) -> np.ndarray:
    w = np.ones(shape)
    for ax, n in enumerate(shape):
        s = [1] * len(shape)
        s[ax] = n
        w = w * np.hanning(n).reshape(s)
    return w


def fourier_ring_correlation(
    a, b, *, pixel_size=None, ring_width: float = 1.0, window: str | None = None
) -> FRC:
    """Fourier ring (2-D) or shell (3-D) correlation of two images.

    Parameters
    ----------
    a, b : (M, N) or (L, M, N) ndarray
        Two reconstructions (or images) of the same object from independent
        data, on the same grid. Not modified.
    pixel_size : float (micrometres) or str (e.g. ``"0.65um"``), optional
        Enables lp/mm and the resolution in nm.
    ring_width : float
        Ring (shell) width in Fourier pixels of the largest side (1: the
        usual one-pixel rings).
    window : {None, "hann"}
        Apodise both images before the transform (``"hann"``: separable Hann
        window), against the correlation a sharp image border or mask edge
        shared by both halves would add at every frequency.

    Returns
    -------
    FRC
        Rings (shells) from 0 to 0.5 cycles/px (Nyquist along an axis); see
        :class:`FRC`. A 3-D stack of fewer than 8 slices gives the rings of
        its slices summed (``dimension`` 2).
    """

    x = as_float32(a, "a")
    y = as_float32(b, "b")
    if x.shape != y.shape:
        raise ShapeError(f"a and b must have the same shape, got {x.shape} and {y.shape}")
    if x.ndim not in (2, 3):
        raise ShapeError(f"a and b must be 2-D slices or 3-D volumes, got shape {x.shape}")
    # a volume thinner than 8 slices has no useful shells along its first
    # axis: its slices' rings are summed instead (dimension 2)
    shells = x.ndim == 3 and x.shape[0] >= 8
    plane = x.shape if shells else x.shape[-2:]
    if min(x.shape[-2:]) < 8:
        raise ShapeError(f"a and b must be at least 8 x 8 pixels, got {x.shape}")
    check_nonempty(x, "a")
    check_finite(x, "a")
    check_finite(y, "b")
    if window not in (None, "hann"):
        raise ParameterError(f"window must be None or 'hann', got {window!r}")
    width = positive(ring_width, "ring_width")
    px_um = length_um(pixel_size)
    # float32 transforms (complex64), float64 ring sums
    # (bincount's weights): ~1e-6 of the correlation, half the memory and time
    fft_axes = tuple(range(-len(plane), 0))
    # the means (f = 0) carry no resolution; removing them keeps the window's
    # leakage of a large offset out of the first rings
    x32 = (x - x.mean(axis=fft_axes, keepdims=True, dtype=np.float64)).astype(np.float32)
    y32 = (y - y.mean(axis=fft_axes, keepdims=True, dtype=np.float64)).astype(np.float32)
    if window == "hann":
        w = _window(plane).astype(np.float32)
        x32 *= w
        y32 *= w
    from scipy import fft as sfft  # threaded, float32 kept

    fx = sfft.rfftn(x32, axes=fft_axes, workers=-1)
    fy = sfft.rfftn(y32, axes=fft_axes, workers=-1)
    del x32, y32
    # radial frequency, cycles/px, of each rfftn sample; the half-spectrum's
    # samples with a conjugate twin count twice (weights) so sums equal the
    # full spectrum's
    axes = [np.fft.fftfreq(n) for n in plane[:-1]] + [np.fft.rfftfreq(plane[-1])]
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    dk = width / max(plane)
    n_rings = int(np.floor(0.5 / dk)) + 1
    # samples beyond the last ring (the corners) go to one extra bin, dropped
    idx = np.minimum(np.rint(np.sqrt(sum(g**2 for g in grids)) / dk), n_rings).astype(np.intp)
    wgt = np.full(fx.shape[-1], 2.0)
    wgt[0] = 1.0
    if x.shape[-1] % 2 == 0:
        wgt[-1] = 1.0
    # per plane of the stack (thin volumes): the same ring index for each
    idx_full = np.broadcast_to(idx, fx.shape).ravel()
    w_full = np.broadcast_to(wgt, fx.shape).ravel()
    nb = n_rings + 1
    cross = np.bincount(idx_full, weights=w_full * (fx * np.conj(fy)).real.ravel(), minlength=nb)
    px = np.bincount(idx_full, weights=w_full * (fx.real**2 + fx.imag**2).ravel(), minlength=nb)
    py = np.bincount(idx_full, weights=w_full * (fy.real**2 + fy.imag**2).ravel(), minlength=nb)
    count = np.bincount(idx_full, weights=w_full, minlength=nb)
    cross, px, py, count = cross[:n_rings], px[:n_rings], py[:n_rings], count[:n_rings]
    with np.errstate(invalid="ignore", divide="ignore"):
        values = cross / np.sqrt(px * py)
    freqs = np.arange(n_rings) * dk
    # ring 0 holds only f = 0 (removed above): drop it
    freqs, values, count = freqs[1:], values[1:], count[1:]
    hb = half_bit_threshold(count)
    values = np.where(np.isfinite(values), values, 0.0)
    return FRC(
        frequencies=freqs,
        values=values,
        n_pixels=count,
        half_bit=hb,
        frequency_half_bit=_first_crossing(freqs, values, hb),
        frequency_one_seventh=_first_crossing(freqs, values, np.full_like(values, ONE_SEVENTH)),
        pixel_size_um=px_um,
        dimension=len(plane),
    )


def frc(
    projections,
    theta,
    *,
    center=None,
    pixel_size=None,
    window: str | None = None,
    ring_width: float = 1.0,
    **recon_kwargs,
) -> FRC:
    """Resolution of a reconstruction by Fourier ring (shell) correlation of
    the reconstructions from the even and the odd projection angles.

    Parameters
    ----------
    projections : (A, R, N) or (A, N) ndarray
        -log(transmission) projections, as for :func:`scintomo.recon.reconstruct`
        (A >= 4). Not modified.
    theta : (A,) array_like, radians
        Angles; each half keeps its own (every other) angles, so each half
        still spans the scan's range.
    center : float or (R,) array_like, pixels, optional
        Rotation axis, the same for both halves.
    pixel_size : float (micrometres) or str, optional
        For lp/mm and nm.
    window : {None, "hann"}
        Apodisation of both half reconstructions (see
        :func:`fourier_ring_correlation`). None (default) for an object inside
        the field of view (the reconstruction's circular mask shares no
        structure between the halves); "hann" when the object is cut by the
        field's edge (local tomography). The window weights the field's
        centre, so the curve then describes the centre more than the edge.
    **recon_kwargs
        Passed to :func:`scintomo.recon.reconstruct` for both halves
        (``algorithm``, ``filter``, ``mask``, ...).

    Returns
    -------
    FRC
        Rings for fewer than 8 rows (summed over the rows' slices), shells
        for 8 rows or more (a volume of R x N x N voxels).

    Notes
    -----
    Each half has half the angles, so its noise is ~2x the full
    reconstruction's (power); the thresholds refer the crossing to the full
    data (see the module doc). Above ``angular_limit`` each half's angles no
    longer sample the object's spectrum: the halves' streaks (view aliasing)
    are anticorrelated between even and odd angles and pull the curve down
    (even below zero). A ``ScintomoWarning`` says so when a crossing lies
    above that limit.
    """
    from ._recon import reconstruct

    p = np.asarray(projections)
    th = np.asarray(theta, dtype=np.float64).ravel()
    if p.ndim not in (2, 3):
        raise ShapeError(
            f"projections must be (angle, row, column) or (angle, column), got {p.shape}"
        )
    if th.size != p.shape[0]:
        raise ShapeError(f"theta has {th.size} angles for {p.shape[0]} projections")
    if p.shape[0] < 4:
        raise ShapeError(f"FRC needs at least 4 projections (2 per half), got {p.shape[0]}")
    order = np.argsort(th, kind="stable")
    even, odd = order[0::2], order[1::2]
    halves = [
        np.asarray(reconstruct(p[i], th[i], center=center, **recon_kwargs)) for i in (even, odd)
    ]
    a, b = halves
    r = fourier_ring_correlation(a, b, pixel_size=pixel_size, window=window, ring_width=ring_width)
    limit = _angular_limit(p, th, even, odd, center)
    r = replace(r, angular_limit=limit)
    worst = np.nanmax([r.frequency_half_bit, r.frequency_one_seventh, -1.0])
    if worst > limit:
        warnings.warn(
            f"the FRC crosses its thresholds at {worst:.3g} cycles/px, above {limit:.3g} "
            "cycles/px where each half's angles stop sampling the object (Crowther: n_half / "
            "(2 pi R)); there the halves' view aliasing, anticorrelated between even and odd "
            "angles, pulls the curve down, so read the crossing as a lower bound of the "
            "resolved frequency, not the resolution. More angles per half lift the limit",
            ScintomoWarning,
            stacklevel=2,
        )
    return r


def _angular_limit(p, th, even, odd, center) -> float:
    """Crowther's limit n / (2 pi R), cycles/px, for the half with fewer
    distinct angles; the object's radius R from the columns whose |mean
    projection| exceeds 5% of the largest, measured from the rotation axis."""
    n_det = p.shape[-1]
    # the signed mean: noise averages out over the angles and rows
    prof = np.asarray(p, dtype=np.float64)
    prof = np.abs(prof.mean(axis=tuple(range(prof.ndim - 1))))
    cols = np.nonzero(prof > 0.05 * prof.max())[0] if prof.max() > 0 else np.array([0, n_det - 1])
    c = (n_det - 1) / 2 if center is None else float(np.mean(center))
    radius = max(abs(cols.min() - c), abs(cols.max() - c)) + 0.5
    # Crowther's mean spacing pi / n, n the half's distinct angles over a
    # half turn (a 360-degree scan's opposite views count once)
    n_half = min(np.unique(np.round(np.mod(th[idx], np.pi), 9)).size for idx in (even, odd))
    gap = np.pi / max(n_half, 1)
    return 1.0 / (2 * max(radius, 1.0) * gap)
