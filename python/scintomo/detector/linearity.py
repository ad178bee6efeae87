"""Dose-rate linearity: signal vs dose rate (or air kerma), detection limit,
and the noise decomposition sigma^2 = a K^2 + b K + c (structure / fixed
pattern, quantum, electronic noise; as in IEC 62220-1-1 style noise analyses)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import ParameterError, ShapeError
from ._common import new_axes, result_dict

__all__ = ["Linearity", "linearity"]


@dataclass(frozen=True)
class Linearity:
    """Straight-line fit signal = slope * K + intercept and its figures.

    ``detection_limit`` = 3 sigma_dark / slope, in the unit of K.
    ``noise_coefficients`` = (a, b, c) of sigma^2 = a K^2 + b K + c, each >= 0
    (non-negative least squares), or None without noise data.
    """

    dose_rates: np.ndarray
    signals: np.ndarray
    slope: float
    intercept: float
    r_squared: float
    dark_sigma: float | None
    detection_limit: float | None
    noise: np.ndarray | None
    noise_coefficients: tuple | None

    def to_dict(self) -> dict:
        return result_dict(self)

    def plot(self, axes=None):
        n = 2 if self.noise is not None else 1
        axes = new_axes(axes, ncols=n)
        ax = axes[0] if n == 2 else axes
        k = self.dose_rates
        ax.plot(k, self.signals, "o", label="measured")
        kk = np.linspace(0, k.max(), 100)
        ax.plot(
            kk, self.slope * kk + self.intercept, "-", label=f"fit, R$^2$ = {self.r_squared:.4f}"
        )
        ax.set_xlabel("dose rate")
        ax.set_ylabel("signal")
        ax.legend()
        if n == 2:
            a, b, c = self.noise_coefficients
            axes[1].plot(k, self.noise**2, "o")
            axes[1].plot(kk, a * kk**2 + b * kk + c, "-")
            axes[1].set_xlabel("dose rate")
            axes[1].set_ylabel("variance")
        return axes


def linearity(dose_rates, signals, *, dark=None, noise=None) -> Linearity:
    """Fit signal vs dose rate.

    Parameters
    ----------
    dose_rates : (N,) array_like
        Dose rate (or air kerma) of each measurement, any unit (e.g. uGy/s).
    signals : (N,) array_like
        Mean signal at each dose rate.
    dark : float or array_like, optional
        sigma of the dark signal (a number), or dark readings whose standard
        deviation (ddof = 1) is sigma_dark.
    noise : (N,) array_like, optional
        Standard deviation of the signal at each dose rate, for the noise
        decomposition (needs N >= 3).
    """
    k = np.asarray(dose_rates, dtype=float)
    s = np.asarray(signals, dtype=float)
    if k.ndim != 1 or k.shape != s.shape or k.size < 2:
        raise ShapeError("dose_rates and signals must be 1-D arrays of the same length >= 2")
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(s))):
        raise ParameterError("dose_rates and signals must be finite")
    if np.ptp(k) == 0:
        raise ParameterError("all dose rates are equal: no slope can be fitted")
    slope, intercept = np.polyfit(k, s, 1)
    ss_res = float(np.sum((s - (slope * k + intercept)) ** 2))
    ss_tot = float(np.sum((s - s.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    sd = None
    if dark is not None:
        d = np.asarray(dark, dtype=float)
        sd = float(d) if d.ndim == 0 else float(np.std(d, ddof=1))
        if not np.isfinite(sd) or sd < 0:
            raise ParameterError(f"dark sigma must be finite and >= 0, got {sd}")
    lod = None if sd is None or slope == 0 else 3.0 * sd / abs(slope)
    coefs = nz = None
    if noise is not None:
        from scipy.optimize import nnls

        nz = np.asarray(noise, dtype=float)
        if nz.shape != k.shape or k.size < 3:
            raise ShapeError("noise must have one value per dose rate, with at least 3 dose rates")
        m = np.column_stack([k**2, k, np.ones_like(k)])
        # scale columns so that NNLS is well conditioned
        scale = np.maximum(np.abs(m).max(axis=0), 1e-300)
        x, _ = nnls(m / scale, nz**2)
        coefs = tuple(float(v) for v in x / scale)
    return Linearity(k, s, float(slope), float(intercept), float(r2), sd, lod, nz, coefs)
