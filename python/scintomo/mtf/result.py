"""Result objects of the MTF measurements."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MTF"]

ESF_SLOPE_NOTE = (
    "esf_slope is the peak gradient of the ESF in gray value per pixel (the papers' "
    "figure); it scales with the edge contrast and the detector gain, so compare it "
    "only between images of the same contrast"
)


def _arr(a):
    return None if a is None else np.asarray(a).tolist()


class LpPerMm:
    """lp/mm and nm views of an MTF result's cycles/px figures, for any result
    with ``frequencies``, ``mtf50``, ``mtf20``, ``mtf10`` (cycles/px) and
    ``pixel_size_um`` (None: no lp/mm)."""

    def _lpmm(self, f):
        if self.pixel_size_um is None:
            return None
        return f * 1e3 / self.pixel_size_um

    @property
    def frequencies_lp_per_mm(self):
        return self._lpmm(self.frequencies)

    @property
    def mtf50_lp_per_mm(self):
        return self._lpmm(self.mtf50)

    @property
    def mtf20_lp_per_mm(self):
        return self._lpmm(self.mtf20)

    @property
    def mtf10_lp_per_mm(self):
        return self._lpmm(self.mtf10)

    @property
    def resolution_nm_at_mtf20(self):
        """Half the period at MTF20 (papers' convention), nm."""
        f = self.mtf20_lp_per_mm
        return None if f is None or not f > 0 else 1e6 / (2 * f)


@dataclass(frozen=True)
class MTF(LpPerMm):
    """Slanted-edge MTF.

    Frequencies are in cycles/pixel along the edge normal; with ``pixel_size_um``
    the ``*_lp_per_mm`` properties give line pairs per mm. ``band`` is the 95%
    bootstrap band over rows (lo, hi arrays) and ``mtf50_ci`` the 95% interval of
    MTF50. ``low_frequency_drop``: mean over 0.01-0.05 cycles/px of the MTF a
    +-16 px ESF truncation would give minus this MTF (> 0: a long-tailed PSF
    that the truncation hides). ``esf_slope``: see :data:`ESF_SLOPE_NOTE`.
    ``esf_method``: "adaptive window", or with the exponential tail model
    (long-tailed PSFs; distance along the normal beyond which it replaces the ESF).
    """

    frequencies: np.ndarray
    values: np.ndarray
    mtf50: float
    mtf20: float
    mtf10: float
    value_at_nyquist: float
    lsf_fwhm_px: float
    edge_rise_10_90_px: float
    esf_slope: float
    angle_deg: float
    band: tuple | None
    mtf50_ci: tuple
    pixel_size_um: float | None
    esf_x_px: np.ndarray
    esf: np.ndarray
    lsf: np.ndarray
    half_width_px: float
    low_frequency_drop: float
    contrast: float
    transposed: bool
    esf_slope_note: str = ESF_SLOPE_NOTE
    esf_method: str = "adaptive window"

    def to_dict(self) -> dict:
        """The figures as plain Python values. ``frequencies`` are in
        ``frequency_unit``: lp/mm with a pixel size (as bar reports), else
        cycles/px; ``frequencies_cycles_per_px`` always. ``mtf50``/``mtf20``/
        ``mtf10`` stay in cycles/px, with ``*_lp_per_mm`` beside them when the
        pixel size is known. NaN figures are None (valid JSON)."""
        lpmm = self.pixel_size_um is not None
        d = {
            "method": "slanted edge, ISO 12233:2017 e-SFR, adaptive ESF extent",
            "frequency_unit": "lp/mm" if lpmm else "cycles/px",
            "frequencies": _arr(self.frequencies_lp_per_mm if lpmm else self.frequencies),
            "frequencies_cycles_per_px": _arr(self.frequencies),
            "values": _arr(self.values),
            "band_lo": _arr(self.band[0]) if self.band else None,
            "band_hi": _arr(self.band[1]) if self.band else None,
            "esf_x_px": _arr(self.esf_x_px),
            "esf": _arr(self.esf),
            "lsf": _arr(self.lsf),
            "esf_slope_note": self.esf_slope_note,
        }
        for k in (
            "mtf50",
            "mtf20",
            "mtf10",
            "value_at_nyquist",
            "lsf_fwhm_px",
            "edge_rise_10_90_px",
            "esf_slope",
            "angle_deg",
            "pixel_size_um",
            "half_width_px",
            "low_frequency_drop",
            "contrast",
            "transposed",
            "esf_method",
        ):
            v = getattr(self, k)
            d[k] = None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        d["mtf50_ci"] = [None if math.isnan(v) else v for v in self.mtf50_ci]
        if self.pixel_size_um is not None:
            d["mtf50_lp_per_mm"] = self.mtf50_lp_per_mm
            d["mtf20_lp_per_mm"] = self.mtf20_lp_per_mm
            d["mtf10_lp_per_mm"] = self.mtf10_lp_per_mm
            d["resolution_nm_at_mtf20"] = self.resolution_nm_at_mtf20
        return d

    def plot(self, fig=None):
        """ESF, LSF and MTF (with the band and marked thresholds); returns the figure."""
        import matplotlib

        if fig is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(12, 3.8))
        a1, a2, a3 = fig.subplots(1, 3)
        a1.plot(self.esf_x_px, self.esf, lw=1)
        a1.set(title="ESF", xlabel="distance to edge (px)", ylabel="gray value")
        a2.plot(self.esf_x_px, self.lsf, lw=1)
        a2.set(
            title=f"LSF (FWHM {self.lsf_fwhm_px:.2f} px)",
            xlabel="distance to edge (px)",
            ylabel="gray value / px",
        )
        # lp/mm with a pixel size (as the bar reports), else cycles/px
        scale, unit, fmt = (
            (1e3 / self.pixel_size_um, "lp/mm", ".4g")
            if self.pixel_size_um is not None
            else (1.0, "cycles/px", ".3f")
        )
        f = np.asarray(self.frequencies) * scale
        a3.plot(f, self.values, label="MTF")
        if self.band is not None:
            a3.fill_between(f, self.band[0], self.band[1], alpha=0.3, label="95%")
        for lv, fv in ((0.5, self.mtf50), (0.2, self.mtf20), (0.1, self.mtf10)):
            if np.isfinite(fv):
                a3.axhline(lv, color="0.7", lw=0.5)
                a3.plot([fv * scale], [lv], "o", ms=4)
                a3.annotate(f"MTF{int(lv * 100)} {fv * scale:{fmt}} {unit}", (fv * scale, lv),
                            fontsize=7)  # fmt: skip
        a3.axvline(0.5 * scale, color="0.5", ls="--", lw=0.5, label="Nyquist")
        top = max(1.1, float(np.nanmax(self.values)) * 1.05) if np.size(self.values) else 1.1
        a3.set(
            title=f"MTF (edge {self.angle_deg:.2f} deg)",
            xlabel=unit,
            ylabel="MTF",
            xlim=(0, scale),
            ylim=(0, top),
        )
        a3.legend(fontsize=7)
        fig.tight_layout()
        return fig
