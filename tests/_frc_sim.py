"""A scan through a known system MTF, and the FRC that MTF predicts (tests only).

Exact Shepp-Logan projections blurred by a Gaussian PSF of known sigma, with
white noise of known sigma: the predicted FRC of the even/odd half
reconstructions is SNR / (1 + SNR) with SNR = P_obj(rho) MTF(rho)^2 / NPS(rho).
P_obj is the ring power of the phantom rendered 4x finer (numpy), MTF the
Gaussian x the detector pixel's sinc, and NPS the filtered back-projection's
noise power pi sigma^2 rho / N_half (Riederer, Pelc & Chesler 1978; ramp
filter, per unit pixel area) times the circular mask's area fraction pi / 4.
Criterion: the frequency where this predicted curve meets 1/7 (SNR = 1/6).
Used by tests/test_recon_frc.py and tests/test_pipeline_report.py.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from scintomo.simulate import ellipse_projections, ellipses_image, shepp_logan_ellipses


def phantom(n_det: int, n_angles: int):
    """(theta, exact sinogram, ring frequencies cycles/px, ring power of the phantom)."""
    ell = shepp_logan_ellipses(n_det)
    theta = np.linspace(0, np.pi, n_angles, endpoint=False)
    sino = ellipse_projections(ell, theta, n_det)
    # ring power per unit pixel area of the continuous phantom: rendered 4x
    # finer, point-sampled, DFT scaled to coarse pixels
    fine = ellipses_image(
        np.column_stack([ell[:, 0], ell[:, 1:5] * 4, ell[:, 5]]), 4 * n_det, supersample=1
    ).astype(np.float64)
    spec = np.abs(np.fft.fft2(fine) / 16) ** 2 / n_det**2
    fr = np.fft.fftfreq(4 * n_det) * 4
    idx = np.rint(np.hypot(fr[:, None], fr[None, :]) * n_det).astype(int)
    m = idx <= n_det // 2
    power = np.bincount(idx[m], weights=spec[m]) / np.bincount(idx[m])
    return theta, sino, np.arange(power.size) / n_det, power


def predicted_crossing(freqs, power, psf_sigma, noise_sigma, n_angles):
    """Frequency (cycles/px) where the predicted half-data FRC meets 1/7."""
    mtf = np.exp(-2 * math.pi**2 * psf_sigma**2 * freqs**2) * np.sinc(freqs)
    signal = power * mtf**2
    noise = math.pi * noise_sigma**2 * freqs / (n_angles / 2) * (math.pi / 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = signal / (signal + noise) - 1 / 7
    i = int(np.argmax(d[1:] < 0)) + 1
    return freqs[i - 1] + (freqs[i] - freqs[i - 1]) * d[i - 1] / (d[i - 1] - d[i])


def blurred_noisy(sino, psf_sigma, noise_sigma, seed=0):
    """The sinogram(s) blurred along the detector by the Gaussian PSF, plus white noise."""
    rng = np.random.default_rng(seed)
    blurred = ndimage.gaussian_filter1d(sino, psf_sigma, axis=-1, mode="nearest")
    return (blurred + noise_sigma * rng.standard_normal(sino.shape)).astype(np.float32)
