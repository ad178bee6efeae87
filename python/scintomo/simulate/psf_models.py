"""Isotropic point-spread functions with analytic MTFs (the resolution oracle).

Every model has ``mtf(f)`` (``f`` in cycles/pixel, radial frequency) and
``esf(x)`` (edge-spread function, ``x`` in pixels, signed distance to the edge).
The ESF is obtained numerically from the MTF once, on a fine grid, and
interpolated:

    ESF(x) = 1/2 + (1/pi) * integral_0^inf MTF(f) sin(2 pi f x) / f df

(trapezoid rule in ``f``, exact for MTF = 1, evaluated for all ``x`` with one
FFT). :class:`GaussianPSF` and :class:`LorentzianPSF` also have closed forms
(``esf_exact``), used by default because they are exact; the numerical route is
checked against them in the tests.

Formulas (REFERENCES.md): Gaussian exp(-2 pi^2 s^2 f^2); isotropic 2-D
exponential exp(-r/b): (1 + (2 pi b f)^2)^(-3/2); Lorentzian-type
exp(-2 pi g f); a mixture of PSFs has the same mixture of MTFs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import ParameterError

__all__ = [
    "PSFModel",
    "GaussianPSF",
    "ExponentialPSF",
    "LorentzianPSF",
    "MixturePSF",
]


def _numerical_esf_table(mtf, *, period_px: float = 4096.0, tol: float = 1e-8):
    """(x grid, ESF) from the MTF by the sine integral, one FFT.

    ``period_px``: the ESF is computed as a periodic function of this period
    (df = 1 / period); only |x| < period/4 is kept.
    """
    df = 1.0 / period_px
    # f_max where the MTF is below tol (at most 512 cycles/px)
    fmax = 64.0  # x spacing 1 / fmax
    while fmax < 512 and abs(float(mtf(np.array([fmax]))[0])) > tol:
        fmax *= 2
    n = 1 << int(math.ceil(math.log2(fmax / df)))
    n = min(n, 1 << 23)
    k = np.arange(n // 2 + 1)
    f = k * df
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.asarray(mtf(f), dtype=np.float64) / np.where(f > 0, f, 1.0)
    g *= df
    g[-1] *= 0.5
    # sum_k g_k sin(2 pi k j / n) = -Im(rfft-style sum); use irfft of -i*g
    spec = np.zeros(n // 2 + 1, dtype=np.complex128)
    spec[1:] = -1j * g[1:]  # f = 0 handled below
    # irfft(spec) * n = sum over +-k of spec_k e^{2 pi i k j / n} = 2 sum_k g_k sin(2 pi k j / n)
    s = np.fft.irfft(spec, n) * n * 0.5
    dx = 1.0 / (n * df)
    j = np.arange(n)
    x = np.where(j < n // 2, j, j - n) * dx
    # f = 0 term with trapezoid weight 1/2: lim MTF(f) sin(2 pi f x)/f = 2 pi x MTF(0)
    s += 0.5 * df * 2 * np.pi * x * float(mtf(np.array([0.0]))[0])
    esf = 0.5 + s / np.pi
    order = np.argsort(x)
    x, esf = x[order], esf[order]
    keep = np.abs(x) < period_px / 4
    return x[keep], esf[keep]


@dataclass(frozen=True)
class PSFModel:
    """Base class: subclasses define ``mtf``; ``esf`` interpolates a numerical
    table built from it on first use."""

    _table: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def mtf(self, f):  # pragma: no cover - abstract
        raise NotImplementedError

    def esf_numerical(self, x):
        """ESF from the MTF by the sine integral (numerical, any model)."""
        if "esf" not in self._table:
            self._table["esf"] = _numerical_esf_table(self.mtf)
        xs, es = self._table["esf"]
        x = np.asarray(x, dtype=np.float64)
        return np.interp(x, xs, es, left=0.0, right=1.0)

    def esf(self, x):
        """Edge-spread function at signed distance ``x`` (pixels); 0 -> 1."""
        return self.esf_numerical(x)

    def lsf(self, x, *, h: float = 1e-3):
        """Line-spread function (derivative of the ESF), 1/pixel."""
        x = np.asarray(x, dtype=np.float64)
        return (self.esf(x + h) - self.esf(x - h)) / (2 * h)

    def extent(self, tol: float = 1e-7) -> float:
        """Distance (px) beyond which the ESF is within ``tol`` of 0 or 1."""
        r = 1.0
        while r < 1000 and (
            1 - self.esf(np.array([r]))[0] > tol or self.esf(np.array([-r]))[0] > tol
        ):
            r *= 1.5
        return r


@dataclass(frozen=True)
class GaussianPSF(PSFModel):
    """Gaussian PSF of standard deviation ``sigma`` (pixels)."""

    sigma: float = 1.0

    def __post_init__(self):
        if not self.sigma > 0:
            raise ParameterError(f"sigma must be > 0 px, got {self.sigma}")

    def mtf(self, f):
        f = np.asarray(f, dtype=np.float64)
        return np.exp(-2 * np.pi**2 * self.sigma**2 * f**2)

    def esf_exact(self, x):
        from scipy.special import ndtr

        return ndtr(np.asarray(x, dtype=np.float64) / self.sigma)

    def esf(self, x):
        return self.esf_exact(x)


@dataclass(frozen=True)
class ExponentialPSF(PSFModel):
    """Isotropic 2-D exponential PSF exp(-r/b), ``b`` in pixels (scintillator halo)."""

    b: float = 1.0

    def __post_init__(self):
        if not self.b > 0:
            raise ParameterError(f"b must be > 0 px, got {self.b}")

    def mtf(self, f):
        f = np.asarray(f, dtype=np.float64)
        return (1 + (2 * np.pi * self.b * f) ** 2) ** -1.5


@dataclass(frozen=True)
class LorentzianPSF(PSFModel):
    """Lorentzian-type PSF whose LSF is a Cauchy profile of half-width ``g`` (px):
    MTF exp(-2 pi g f)."""

    g: float = 1.0

    def __post_init__(self):
        if not self.g > 0:
            raise ParameterError(f"g must be > 0 px, got {self.g}")

    def mtf(self, f):
        f = np.asarray(f, dtype=np.float64)
        return np.exp(-2 * np.pi * self.g * np.abs(f))

    def esf_exact(self, x):
        return 0.5 + np.arctan(np.asarray(x, dtype=np.float64) / self.g) / np.pi

    def esf(self, x):
        return self.esf_exact(x)


@dataclass(frozen=True)
class MixturePSF(PSFModel):
    """Scintillator mix ``w * Gaussian(sigma) + (1 - w) * Exponential(b)``."""

    w: float = 0.8
    sigma: float = 1.0
    b: float = 10.0

    def __post_init__(self):
        if not 0 <= self.w <= 1:
            raise ParameterError(f"w must be in [0, 1], got {self.w}")
        GaussianPSF(self.sigma)
        ExponentialPSF(self.b)

    def mtf(self, f):
        return self.w * GaussianPSF(self.sigma).mtf(f) + (1 - self.w) * ExponentialPSF(self.b).mtf(
            f
        )

    def esf(self, x):
        if "parts" not in self._table:
            self._table["parts"] = (GaussianPSF(self.sigma), ExponentialPSF(self.b))
        gauss, expo = self._table["parts"]
        return self.w * gauss.esf(x) + (1 - self.w) * expo.esf(x)
