"""Detective quantum efficiency, IEC 62220-1-1:2015:

    DQE(f) = MTF(f)^2 / (q NNPS(f)),   q = K_a SNR_in^2   [photons / mm^2]

with K_a the air kerma (uGy) and SNR_in^2 the squared signal-to-noise ratio
per unit air kerma of the standard's beam quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import choice, positive
from ..exceptions import ParameterError
from ._common import new_axes, result_dict
from .nps import NPS

__all__ = ["DQE", "SNR_IN_SQUARED", "dqe"]

#: SNR_in^2 per air kerma, 1 / (mm^2 uGy), IEC 62220-1-1:2015 Table 2 (the
#: 2003 edition gave 30 174 for RQA5). Only RQA5 is listed here because it is
#: the value this project has checked; for other beam qualities pass
#: ``snr_in_squared`` from the edition of the standard you follow.
SNR_IN_SQUARED = {"RQA5": 29653.0}


@dataclass(frozen=True)
class DQE:
    """DQE on the NPS frequencies.

    Attributes
    ----------
    frequencies : (K,) ndarray
        lp/mm.
    values : (K,) ndarray
        DQE (dimensionless).
    mtf, nnps : (K,) ndarray
        The MTF interpolated onto ``frequencies`` and the NNPS (mm^2) used.
    fluence : float
        Photons per mm^2 (q).
    direction : str
    """

    frequencies: np.ndarray
    values: np.ndarray
    mtf: np.ndarray
    nnps: np.ndarray
    fluence: float
    direction: str
    source_of_fluence: str

    def at(self, f_lp_mm: float) -> float:
        """DQE interpolated at ``f_lp_mm`` lp/mm."""
        return float(np.interp(f_lp_mm, self.frequencies, self.values))

    def to_dict(self) -> dict:
        return result_dict(self)

    def plot(self, ax=None):
        ax = new_axes(ax)
        ax.plot(self.frequencies, self.values, label="DQE")
        ax.plot(self.frequencies, self.mtf, "--", label="MTF")
        ax.set_xlabel("spatial frequency (lp/mm)")
        ax.set_ylabel("DQE, MTF")
        ax.set_ylim(0, max(1.05, float(np.nanmax(self.values)) * 1.05))
        ax.set_title(f"DQE ({self.direction}), q = {self.fluence:.4g} /mm$^2$")
        ax.legend()
        return ax


def _mtf_on(mtf, f_lp_mm: np.ndarray, pixel_size_um: float, mtf_unit: str) -> np.ndarray:
    """MTF values at ``f_lp_mm``; NaN outside the MTF's frequency range."""
    if callable(mtf) and not hasattr(mtf, "frequencies"):
        return np.asarray(mtf(f_lp_mm), dtype=float) * np.ones_like(f_lp_mm)
    if hasattr(mtf, "frequencies") and hasattr(mtf, "values"):
        freq = np.asarray(mtf.frequencies, dtype=float)
        vals = np.asarray(mtf.values, dtype=float)
        unit = getattr(mtf, "unit", None) or mtf_unit
        unit = "lp/mm" if "mm" in str(unit) else "cycles/pixel"
    else:
        try:
            freq, vals = (np.asarray(a, dtype=float) for a in mtf)
        except (TypeError, ValueError):
            raise ParameterError(
                "mtf must have .frequencies and .values, be a (frequencies, values) pair "
                "or a callable of lp/mm"
            ) from None
        unit = mtf_unit
    if freq.ndim != 1 or freq.shape != vals.shape or freq.size < 2:
        raise ParameterError(
            "MTF frequencies and values must be 1-D arrays of the same length >= 2"
        )
    if unit == "cycles/pixel":
        freq = freq * 1e3 / pixel_size_um
    order = np.argsort(freq)
    return np.interp(f_lp_mm, freq[order], vals[order], left=np.nan, right=np.nan)


def dqe(
    nps: NPS,
    mtf,
    *,
    fluence: float | None = None,
    air_kerma: float | None = None,
    beam_quality: str = "RQA5",
    snr_in_squared: float | None = None,
    mtf_unit: str = "cycles/pixel",
    direction: str = "horizontal",
) -> DQE:
    """DQE(f) = MTF(f)^2 / (q NNPS(f)).

    Parameters
    ----------
    nps : NPS
        From :func:`scintomo.detector.nps` (gives the pixel size).
    mtf : MTF-like, (frequencies, values) pair, or callable
        An object with ``.frequencies`` and ``.values`` (e.g. the result of
        ``scintomo.mtf.edge_mtf``; its ``unit`` attribute, if any, says
        whether the frequencies are lp/mm, else ``mtf_unit`` does), a pair of
        arrays in ``mtf_unit``, or a function of frequency in lp/mm. It is
        interpolated linearly onto the NPS frequencies; frequencies beyond its
        range are dropped from the result.
    fluence : float, optional
        Photon fluence q, photons / mm^2. Give this or ``air_kerma``.
    air_kerma : float, optional
        Air kerma at the detector surface, uGy; q = air_kerma * SNR_in^2.
    beam_quality : str
        Key of :data:`SNR_IN_SQUARED` (IEC 62220-1-1:2015 Table 2).
    snr_in_squared : float, optional
        SNR_in^2 per air kerma, 1/(mm^2 uGy), overriding ``beam_quality``.
    mtf_unit : {'cycles/pixel', 'lp/mm'}
        Unit of plain-array MTF frequencies.
    direction : {'horizontal', 'vertical', 'mean'}
        Which NNPS cut to use (the MTF's direction).

    Returns
    -------
    DQE
    """
    choice(mtf_unit, "mtf_unit", ("cycles/pixel", "lp/mm"))
    choice(direction, "direction", ("horizontal", "vertical", "mean"))
    if (fluence is None) == (air_kerma is None):
        raise ParameterError("give exactly one of fluence (photons/mm^2) or air_kerma (uGy)")
    if fluence is not None:
        q = positive(fluence, "fluence")
        source = "given"
    else:
        if snr_in_squared is None:
            if beam_quality not in SNR_IN_SQUARED:
                raise ParameterError(
                    f"no SNR_in^2 stored for beam quality {beam_quality!r}; pass snr_in_squared "
                    "(IEC 62220-1-1 Table 2 of your edition)"
                )
            snr2 = SNR_IN_SQUARED[beam_quality]
            source = (
                f"air kerma {air_kerma} uGy x SNR_in^2 {snr2} (IEC 62220-1-1:2015, {beam_quality})"
            )
        else:
            snr2 = positive(snr_in_squared, "snr_in_squared")
            source = f"air kerma {air_kerma} uGy x SNR_in^2 {snr2} (given)"
        q = positive(air_kerma, "air_kerma") * snr2
    nnps = {"horizontal": nps.horizontal, "vertical": nps.vertical, "mean": nps.values}[direction]
    m = _mtf_on(mtf, nps.frequencies, nps.pixel_size, mtf_unit)
    keep = np.isfinite(m)
    if not keep.any():
        raise ParameterError("the MTF's frequency range does not overlap the NPS frequencies")
    f, m, n = nps.frequencies[keep], m[keep], nnps[keep]
    if np.any(n <= 0):
        raise ParameterError("NNPS has non-positive values; the DQE is undefined there")
    return DQE(
        frequencies=f,
        values=m**2 / (q * n),
        mtf=m,
        nnps=n,
        fluence=q,
        direction=direction,
        source_of_fluence=source,
    )
