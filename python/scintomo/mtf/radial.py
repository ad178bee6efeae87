"""MTF of a reconstructed slice from the edge of a cylinder (or a disc image),
the radial edge method of ASTM E1695-20 (CT performance), section 8.

Steps: the disc's centre and radius fitted to sub-pixel (50% crossings of the
edge along rays from a first centroid estimate, least-squares circle, three
rounds); every pixel in an annulus around the edge binned by its distance to
the circle into 1/4-px bins (the radial ESF; the whole circumference averages
the noise and samples the edge at every sub-pixel phase); LSF by a central
difference; a Tukey window centred on the LSF peak; |DFT| normalised at f = 0
and divided by the responses of the central difference and the 1/4-px bins
(as :mod:`.edge` does). The pixel aperture stays in (it is part of the
system's MTF, as for the slanted edge); for a disc it is the azimuthal mean of
sinc(f cos a) sinc(f sin a), not the 1-D sinc of a near-vertical edge.

The edge's curvature shifts and slightly skews the radial ESF; for a radius R
and a PSF of sigma the error of the MTF is of order sigma^2 / R^2 (R >= 10
sigma keeps it below 0.01).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .. import _validate
from ..exceptions import NumericalError, ParameterError, ShapeError
from .result import LpPerMm

__all__ = ["RadialMTF", "radial_edge_mtf"]

OVERSAMPLING = 4
_ROUNDS = 3
# rms distance of the edge's 50% points to the fitted circle, beyond what the
# noise explains, above which the edge is not taken for a circle (a 2%
# ellipse of radius 50 px: 0.36 px)
_MAX_RMS_PX = 0.2


def _arr(a):
    return None if a is None else np.asarray(a).tolist()


def _nan_none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


@dataclass(frozen=True)
class RadialMTF(LpPerMm):
    """MTF from the radial edge of a disc (ASTM E1695).

    ``frequencies`` cycles/px (radial, up to 1), ``values`` the MTF;
    ``mtf50``/``mtf20``/``mtf10`` cycles/px (NaN when not reached);
    ``center`` (row, column) and ``radius_px`` of the fitted circle, pixels;
    ``esf_r_px`` bin centres (distance to the circle, px, positive outwards),
    ``esf`` (gray values), ``lsf`` (gray value / px); ``half_width_px`` the
    annulus half-width used; ``contrast`` inside minus outside level;
    ``pixel_size_um`` enables lp/mm and nm (half the period at MTF20).
    """

    frequencies: np.ndarray
    values: np.ndarray
    mtf50: float
    mtf20: float
    mtf10: float
    center: tuple
    radius_px: float
    esf_r_px: np.ndarray
    esf: np.ndarray
    lsf: np.ndarray
    half_width_px: float
    contrast: float
    pixel_size_um: float | None

    def to_dict(self) -> dict:
        """The figures as plain Python values (NaN as None)."""
        d = {
            "method": "radial edge of a disc, ASTM E1695-20 section 8 (1/4-px radial bins)",
            "frequencies_cycles_per_px": _arr(self.frequencies),
            "frequencies_lp_per_mm": _arr(self.frequencies_lp_per_mm),
            "values": _arr(self.values),
            "esf_r_px": _arr(self.esf_r_px),
            "esf": _arr(self.esf),
            "lsf": _arr(self.lsf),
            "center": [float(c) for c in self.center],
        }
        for k in ("mtf50", "mtf20", "mtf10", "radius_px", "half_width_px", "contrast"):
            d[k] = _nan_none(float(getattr(self, k)))
        d["pixel_size_um"] = self.pixel_size_um
        if self.pixel_size_um is not None:
            d["mtf50_lp_per_mm"] = _nan_none(self.mtf50_lp_per_mm)
            d["mtf20_lp_per_mm"] = _nan_none(self.mtf20_lp_per_mm)
            d["resolution_nm_at_mtf20"] = self.resolution_nm_at_mtf20
        return d

    def plot(self, fig=None):
        """Radial ESF, LSF and MTF; returns the figure."""
        import matplotlib

        own = fig is None
        if fig is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(12, 3.8))
        a1, a2, a3 = fig.subplots(1, 3)
        a1.plot(self.esf_r_px, self.esf, lw=1)
        a1.set(title=f"radial ESF (R = {self.radius_px:.2f} px)", xlabel="r - R (px)",
               ylabel="gray value")  # fmt: skip
        a2.plot(self.esf_r_px, self.lsf, lw=1)
        a2.set(title="LSF", xlabel="r - R (px)", ylabel="gray value / px")
        scale, unit = (
            (1e3 / self.pixel_size_um, "lp/mm") if self.pixel_size_um else (1.0, "cycles/px")
        )
        f = self.frequencies * scale
        a3.plot(f, self.values, label="MTF")
        for lv, fv in ((0.5, self.mtf50), (0.2, self.mtf20), (0.1, self.mtf10)):
            if np.isfinite(fv):
                a3.plot([fv * scale], [lv], "o", ms=4)
                a3.annotate(f"MTF{int(lv * 100)} {fv * scale:.4g} {unit}", (fv * scale, lv),
                            fontsize=7)  # fmt: skip
        a3.axvline(0.5 * scale, color="0.5", ls="--", lw=0.5, label="Nyquist")
        a3.set(title="MTF (radial edge)", xlabel=unit, ylabel="MTF", xlim=(0, scale),
               ylim=(0, 1.1))  # fmt: skip
        a3.legend(fontsize=7)
        if own:  # a caller's figure (or subfigure): its layout is the caller's
            fig.tight_layout()
        return fig


def _crossing(f, m, level) -> float:
    below = np.nonzero(m < level)[0]
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    return float(f[i - 1] + (f[i] - f[i - 1]) * (m[i - 1] - level) / (m[i - 1] - m[i]))


def _first_guess(img) -> tuple[float, float, float]:
    """Centre (row, col) and radius from the largest blob not touching the
    border, thresholded half-way between the 2nd and 98th percentiles."""
    lo, hi = np.percentile(img, [2, 98])
    if not hi > lo:
        raise NumericalError("the image is flat: no disc edge to measure")
    mask = img > (lo + hi) / 2
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    if border.mean() > 0.5:  # a dark disc on a bright background
        mask = ~mask
    labels, n = ndimage.label(mask)
    if n == 0:
        raise NumericalError("no disc found in the image")
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    blob = labels == (int(np.argmax(sizes)) + 1)
    r, c = ndimage.center_of_mass(blob)
    return float(r), float(c), math.sqrt(float(blob.sum()) / math.pi)


def _radial_profile_radius(img, cr, cc) -> float:
    rr, cc_ = np.indices(img.shape)
    d = np.hypot(rr - cr, cc_ - cc).ravel()
    idx = np.rint(d).astype(int)
    prof = np.bincount(idx, weights=img.ravel()) / np.maximum(np.bincount(idx), 1)
    rmax = int(min(cr, cc, img.shape[0] - 1 - cr, img.shape[1] - 1 - cc))
    prof = prof[: max(rmax, 3)]
    g = np.abs(np.diff(ndimage.gaussian_filter1d(prof, 1.0)))
    return float(np.argmax(g[1:]) + 1.5)


def _fit_circle(img, cr, cc, radius, reach) -> tuple[float, float, float, float, float]:
    """One round: 50% crossings along rays, then a least-squares (Kasa)
    circle; returns (row, col, radius, rms distance of the crossings to it,
    the mean profile's steepest slope in gray value / px)."""
    n_rays = max(64, int(2 * math.pi * radius))
    ang = np.arange(n_rays) * (2 * math.pi / n_rays)
    t = np.arange(-reach, reach + 1e-9, 0.1)
    rad = radius + t
    rows = cr - np.sin(ang)[:, None] * rad[None, :]
    cols = cc + np.cos(ang)[:, None] * rad[None, :]
    prof = ndimage.map_coordinates(img, [rows, cols], order=1, mode="nearest")
    k = max(3, int(0.2 * t.size))
    inner = prof[:, :k].mean(axis=1, keepdims=True)
    outer = prof[:, -k:].mean(axis=1, keepdims=True)
    step = inner - outer
    typical = float(np.median(np.abs(step)))
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (prof - outer) / step  # 1 inside, 0 outside
    pts_r, pts_c = [], []
    for i in range(n_rays):
        ui = u[i]
        if not abs(step[i, 0]) > 0.5 * typical or not np.all(np.isfinite(ui)):
            continue  # no edge of the disc's contrast on this ray
        j = np.nonzero((ui[:-1] >= 0.5) & (ui[1:] < 0.5))[0]
        if j.size != 1:  # no clean single crossing (noise, another object): skip the ray
            continue
        j = j[0]
        tt = t[j] + (t[j + 1] - t[j]) * (ui[j] - 0.5) / (ui[j] - ui[j + 1])
        pts_r.append(cr - math.sin(ang[i]) * (radius + tt))
        pts_c.append(cc + math.cos(ang[i]) * (radius + tt))
    if len(pts_r) < max(16, n_rays // 4):
        raise NumericalError(
            f"the disc's edge was found on only {len(pts_r)} of {n_rays} rays; give center= "
            "and radius= or a slice holding one disc (cylinder) with a clear edge"
        )
    y = np.asarray(pts_r)
    x = np.asarray(pts_c)
    a = np.column_stack([x, y, np.ones_like(x)])
    try:
        sol, *_ = np.linalg.lstsq(a, x**2 + y**2, rcond=None)
    except np.linalg.LinAlgError:
        raise NumericalError("no circle fits the edge points of the disc") from None
    xc, yc = sol[0] / 2, sol[1] / 2
    r2 = sol[2] + xc**2 + yc**2
    if not r2 > 0:
        raise NumericalError("no circle fits the edge points of the disc")
    r = math.sqrt(r2)
    rms = float(np.sqrt(np.mean((np.hypot(x - xc, y - yc) - r) ** 2)))
    slope = float(np.max(np.abs(np.gradient(prof.mean(axis=0), t))))
    return float(yc), float(xc), float(r), rms, slope


def radial_edge_mtf(
    image,
    *,
    center=None,
    radius=None,
    pixel_size=None,
    half_width_px: float | None = None,
    n_fft: int = 8192,
) -> RadialMTF:
    """MTF from the edge of a disc: a reconstructed slice of a cylinder (or a
    sphere's central slice), ASTM E1695-20's radial edge method.

    Parameters
    ----------
    image : (M, N) ndarray
        The slice, with one disc (brighter or darker than its surroundings)
        whose whole edge lies inside the image. Not modified.
    center : (row, column) pixels, optional
        Starting point for the centre fit (default: centroid of the largest
        blob). The centre is always refined to sub-pixel.
    radius : float, pixels, optional
        Starting radius (default: from the blob's area, or from the radial
        profile when ``center`` is given).
    pixel_size : float (micrometres) or str, optional
        Enables lp/mm and nm.
    half_width_px : float, optional
        Annulus half-width around the edge used for the ESF, pixels (default
        min(16, 0.8 R, the room to the image border)).
    n_fft : int
        Zero-padded FFT length (1/4-px bins).

    Returns
    -------
    RadialMTF
    """

    img = _validate.as_float32(image, "image")
    if img.ndim != 2:
        raise ShapeError(f"image must be a 2-D slice, got shape {img.shape}")
    if min(img.shape) < 16:
        raise ShapeError(f"image must be at least 16 x 16 pixels, got {img.shape}")
    _validate.check_finite(img, "image")
    px_um = _validate.length_um(pixel_size)
    if n_fft < 256:
        raise ParameterError(f"n_fft must be >= 256, got {n_fft}")
    img = img.astype(np.float64)
    if center is None:
        cr, cc, r0 = _first_guess(img)
    else:
        try:
            cr, cc = (float(v) for v in center)
        except (TypeError, ValueError):
            raise ParameterError(f"center must be (row, column), got {center!r}") from None
        if not (0 <= cr < img.shape[0] and 0 <= cc < img.shape[1]):
            raise ParameterError(f"center {center!r} lies outside the image {img.shape}")
        r0 = _radial_profile_radius(img, cr, cc)
    if radius is not None:
        r0 = _validate.positive(radius, "radius")
    if r0 < 4:
        raise NumericalError(f"the disc's radius ({r0:.1f} px) is too small (< 4 px)")
    reach = min(8.0, 0.5 * r0)
    for _ in range(_ROUNDS):
        cr, cc, r0, rms, slope = _fit_circle(img, cr, cc, r0, reach)
        reach = min(reach, max(4.0, 0.3 * r0))
    # each 50% point scatters by ~ noise / slope (pixel noise from the MAD of
    # neighbour differences); more than that plus _MAX_RMS_PX: not a circle
    noise = float(np.median(np.abs(np.diff(img, axis=1)))) / 0.6745 / math.sqrt(2)
    allowed = _MAX_RMS_PX + 3 * noise / max(slope, 1e-300)
    if rms > allowed:
        raise NumericalError(
            f"the edge is not a circle: its points lie {rms:.2f} px rms from the fitted circle "
            f"(noise allows {allowed:.2f} px); the radial method needs the slice of a cylinder "
            "(or a sphere's central slice) imaged round. For an ellipse or a polygon use "
            "edge_mtf on a straight part"
        )
    room = min(cr, cc, img.shape[0] - 1 - cr, img.shape[1] - 1 - cc) - r0
    if half_width_px is None:
        half = min(16.0, 0.8 * r0, room - 1.0)
    else:
        half = _validate.positive(half_width_px, "half_width_px")
        if half > room:
            raise ParameterError(
                f"half_width_px {half} reaches past the image border ({room:.1f} px of room)"
            )
    if half < 3:
        raise NumericalError(
            f"the disc's edge is {room:.1f} px from the image border: the radial ESF needs "
            ">= 3 px each side (a smaller disc or a larger image)"
        )
    # radial ESF: every pixel of the annulus in 1/4-px bins of its distance
    dx = 1.0 / OVERSAMPLING
    rr, ccol = np.indices(img.shape)
    d = np.hypot(rr - cr, ccol - cc) - r0
    sel = np.abs(d) <= half
    nb = int(round(2 * half / dx))
    b = np.clip(np.floor((d[sel] + half) / dx).astype(int), 0, nb - 1)
    cnt = np.bincount(b, minlength=nb)
    sums = np.bincount(b, weights=img[sel], minlength=nb)
    x = -half + (np.arange(nb) + 0.5) * dx
    have = cnt > 0
    if have.sum() < 0.9 * nb:
        raise NumericalError("too few pixels per radial bin: the disc is too small")
    esf = np.interp(x, x[have], sums[have] / cnt[have])
    contrast = float(np.mean(esf[: OVERSAMPLING * 2]) - np.mean(esf[-OVERSAMPLING * 2 :]))
    lsf = np.zeros_like(esf)
    lsf[1:-1] = (esf[:-2] - esf[2:]) / (2 * dx)  # positive for a bright disc
    if contrast < 0:
        lsf = -lsf
    peak = int(np.argmax(ndimage.uniform_filter1d(lsf, OVERSAMPLING)))
    # Tukey window (flat over the central half) centred on the LSF peak,
    # reaching the nearer end of the annulus
    w_half = min(peak, nb - 1 - peak) * dx
    if w_half < 2:
        raise NumericalError("the edge's LSF peak lies at the end of the annulus")
    u = np.abs(x - x[peak]) / w_half
    win = np.where(u <= 0.5, 1.0, np.where(u < 1, 0.5 * (1 + np.cos(np.pi * (u - 0.5) / 0.5)), 0))
    spec = np.abs(np.fft.rfft(lsf * win, n=max(n_fft, nb)))
    freqs = np.fft.rfftfreq(max(n_fft, nb), d=dx)
    if not spec[0] > 0:
        raise NumericalError("the disc's edge has no contrast")
    m = spec / spec[0]
    # central difference over 2 dx and the dx-wide bins (ISO 12233 / edge.py)
    keep = freqs <= 1.0
    f = freqs[keep]
    m = m[keep] / (np.sinc(2 * f * dx) * np.sinc(f * dx))
    return RadialMTF(
        frequencies=f,
        values=m,
        mtf50=_crossing(f, m, 0.5),
        mtf20=_crossing(f, m, 0.2),
        mtf10=_crossing(f, m, 0.1),
        center=(cr, cc),
        radius_px=r0,
        esf_r_px=x,
        esf=esf,
        lsf=lsf,
        half_width_px=half,
        contrast=contrast,
        pixel_size_um=px_um,
    )
