"""Resolution targets rendered through a model PSF: slanted edges and bar groups.

Both include the pixel aperture (each pixel integrates the blurred image over
its area) and optional Poisson and read noise, so their MTF is known:
``psf.mtf(f) * sinc(f cos a) * sinc(f sin a)`` along the normal of an edge
tilted by ``a``; ``psf.mtf(f) * sinc(f)`` across vertical bars.
"""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import ParameterError
from .psf_models import GaussianPSF, PSFModel

__all__ = ["slanted_edge", "bar_target", "add_noise"]


def add_noise(image, *, photons=None, read_noise=0.0, seed=None):
    """Poisson noise (``photons`` counts per unit of signal; None: none) plus
    Gaussian read noise of standard deviation ``read_noise`` (signal units)."""
    rng = np.random.default_rng(seed)
    out = np.asarray(image, dtype=np.float64)
    if photons is not None:
        if not photons > 0:
            raise ParameterError(f"photons must be > 0, got {photons}")
        out = rng.poisson(np.clip(out, 0, None) * photons) / photons
    if read_noise:
        if read_noise < 0:
            raise ParameterError(f"read_noise must be >= 0, got {read_noise}")
        out = out + rng.normal(0.0, read_noise, out.shape)
    return out.astype(np.float32)


def _pixel_esf_table(psf: PSFModel, angle: float, supersample: int, r: float):
    """Pixel-averaged ESF as a function of the pixel centre's signed distance:
    the mean of ``psf.esf`` over ``supersample**2`` sub-pixel points (exactly
    the supersampled rendering), tabulated every 1/256 px and interpolated."""
    u = (np.arange(supersample) + 0.5) / supersample - 0.5
    off = (u[:, None] * math.cos(angle) + u[None, :] * math.sin(angle)).ravel()
    d = np.arange(-r, r + 1 / 256, 1 / 256)
    vals = np.empty_like(d)
    step = max(1, 2_000_000 // off.size)
    for i in range(0, d.size, step):
        vals[i : i + step] = psf.esf(d[i : i + step, None] + off[None, :]).mean(axis=1)
    return d, vals


def slanted_edge(
    shape=(128, 128),
    angle_deg: float = 5.0,
    psf: PSFModel | None = None,
    *,
    low: float = 0.1,
    contrast: float = 0.8,
    snr: float | None = None,
    photons: float | None = None,
    read_noise: float = 0.0,
    offset_px: float = 0.0,
    seed=None,
    supersample: int = 16,
) -> np.ndarray:
    """A near-vertical edge tilted by ``angle_deg`` from the columns, dark
    (``low``) on the left, bright (``low + contrast``) on the right, blurred by
    ``psf`` (default Gaussian sigma = 1 px) and integrated over each pixel
    (``supersample`` x ``supersample`` points). Angles in (45, 90] give a
    near-horizontal edge (rows and columns swapped).

    Noise: ``snr`` sets read noise ``contrast / snr`` (ISO-style SNR);
    ``photons`` adds Poisson noise (counts per unit signal); ``read_noise`` in
    signal units. Returns float32 (H, W).
    """
    psf = GaussianPSF(1.0) if psf is None else psf
    h, w = (int(s) for s in shape)
    if h < 2 or w < 2:
        raise ParameterError(f"shape must be at least 2 x 2, got {shape}")
    if supersample < 1:
        raise ParameterError(f"supersample must be >= 1, got {supersample}")
    a = math.radians(float(angle_deg))
    # normal (cos a, -sin a) in (x = column, y = row) coordinates: edge line through
    # the image centre with direction (sin a, cos a)
    yc, xc = (h - 1) / 2, (w - 1) / 2
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    d = (x - xc) * math.cos(a) - (y - yc) * math.sin(a) - offset_px
    r = min(float(np.abs(d).max()) + 2, psf.extent() + 2)
    dd, vals = _pixel_esf_table(psf, a, supersample, r)
    e = np.interp(d, dd, vals, left=vals[0], right=vals[-1])
    img = low + contrast * e
    if snr is not None:
        if not snr > 0:
            raise ParameterError(f"snr must be > 0, got {snr}")
        read_noise = math.hypot(read_noise, contrast / snr)
    if photons is not None or read_noise:
        return add_noise(img, photons=photons, read_noise=read_noise, seed=seed)
    return img.astype(np.float32)


def bar_target(
    frequencies,
    psf: PSFModel | None = None,
    *,
    n_bars: int = 20,
    bar_length_px: int = 48,
    gap_px: int = 24,
    low: float = 0.1,
    contrast: float = 0.8,
    supersample: int = 8,
    snr: float | None = None,
    photons: float | None = None,
    read_noise: float = 0.0,
    seed=None,
    margin_px: int = 32,
):
    """Groups of vertical bars (square waves across columns), one group per
    frequency (cycles/px), stacked top to bottom; blurred by ``psf`` (its MTF
    multiplied in Fourier on a ``supersample``-times finer grid) and integrated
    over pixels.

    Returns ``(image, groups)`` where ``groups`` is a list of
    ``((r0, r1, c0, c1), frequency_cycles_per_px)``: the region of each group.
    """
    psf = GaussianPSF(1.0) if psf is None else psf
    freqs = [float(f) for f in np.atleast_1d(frequencies)]
    if not freqs or any(not 0 < f < 0.5 for f in freqs):
        raise ParameterError(f"frequencies must be in (0, 0.5) cycles/px, got {freqs}")
    widths = [int(math.ceil(n_bars / f)) for f in freqs]  # n_bars periods per group
    wmax = max(widths)
    w = wmax + 2 * margin_px
    h = len(freqs) * (bar_length_px + gap_px) + 2 * margin_px - gap_px
    s = int(supersample)
    hs, ws = h * s, w * s
    xs = (np.arange(ws) + 0.5) / s  # column coordinate in px
    hi = np.zeros((hs, ws), dtype=np.float32)
    groups = []
    for i, (f, gw) in enumerate(zip(freqs, widths, strict=True)):
        r0 = margin_px + i * (bar_length_px + gap_px)
        c0 = margin_px + (wmax - gw) // 2
        x0 = c0
        length = (n_bars - 0.5) / f  # n_bars bright bars, the last one included

        def cum(t, f=f, length=length):
            # integral of the square wave (bright on [0, 1/(2f)) each period) from x0
            t = np.clip(t, 0.0, length)
            return np.floor(t * f) / (2 * f) + np.minimum((t * f) % 1.0, 0.5) / f

        # exact coverage of each sub-sample cell (no 1/s quantisation of the bar edges)
        wave = (cum(xs - x0 + 0.5 / s) - cum(xs - x0 - 0.5 / s)) * s
        hi[r0 * s : (r0 + bar_length_px) * s] = wave.astype(np.float32)
        groups.append(((r0, r0 + bar_length_px, c0, c0 + gw), f))
    fy = np.fft.fftfreq(hs, d=1 / s)
    fx = np.fft.rfftfreq(ws, d=1 / s)
    mt = psf.mtf(np.hypot(fy[:, None], fx[None, :])).astype(np.float32)
    blurred = np.fft.irfft2(np.fft.rfft2(hi) * mt, s=(hs, ws))
    pix = blurred.reshape(h, s, w, s).mean(axis=(1, 3))
    img = low + contrast * pix
    if snr is not None:
        read_noise = math.hypot(read_noise, contrast / snr)
    if photons is not None or read_noise:
        img = add_noise(img, photons=photons, read_noise=read_noise, seed=seed)
    return img.astype(np.float32), groups
