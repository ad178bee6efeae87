"""Ring (stripe) removal on sinograms: Vo, Atwood and Drakopoulos, Optics
Express 26, 28396 (2018), algorithms 2 (filtering), 3 (sorting), 5 (large
stripes) and 6 (dead/unresponsive stripes), and their combination
``remove_all_stripe`` as TomoPy composes it (dead + large, then sorting);
plus Munch et al., Optics Express 17, 8567 (2009), the Fourier-wavelet
method, with PyWavelets (db5 by default, as TomoPy).

The sorting and the sliding medians run in Rust (``_core.sort_median``,
``_core.median_rows``, on ``n_threads``); the rest is numpy on whole
sinograms. ``fw`` runs the sinograms of a stack on ``n_threads`` Python
threads (PyWavelets and numpy's FFT release the GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.ndimage import binary_dilation, median_filter, uniform_filter1d

from .. import _core
from .._validate import as_sinogram_stack, check_result, choice, n_threads_arg, scale_down
from ..exceptions import ParameterError

METHODS = ("all", "sort", "filter", "large", "dead", "fw")


def _odd(size, name: str) -> int:
    s = int(size)
    if s < 1:
        raise ParameterError(f"{name} must be >= 1, got {size!r}")
    return s if s % 2 else s + 1


def _detect_stripe(fact: np.ndarray, snr: float) -> np.ndarray:
    """Vo 2018, algorithm 4: flag the values of ``fact`` that stand out of the
    straight line fitted to its sorted middle half by more than snr x noise."""
    n = fact.size
    srt = np.sort(fact)[::-1]
    x = np.arange(n, dtype=np.float64)
    nd = int(0.25 * n)
    if n - 2 * nd < 3:
        return np.zeros(n, dtype=bool)
    slope, icpt = np.polyfit(x[nd : n - nd], srt[nd : n - nd], 1)
    end = icpt + slope * x[-1]
    noise = max(abs(end - icpt), 1e-6)
    mask = np.zeros(n, dtype=bool)
    if abs(srt[0] - icpt) / noise >= snr:
        mask |= fact > icpt + noise * snr * 0.5
    if abs(srt[-1] - end) / noise >= snr:
        mask |= fact <= end - noise * snr * 0.5
    return mask


def _rs_sort(sino, size, nt):
    return _core.sort_median(sino, _odd(size, "sm_size"), n_threads=nt)[2]


def _rs_filter(sino, sigma, size, nt):
    """Algorithm 2: split each column's angular profile into low and high
    frequencies (Gaussian window, padded by reflection), median-smooth the
    low part along the detector, add the high part back."""
    na = sino.shape[0]
    pad = min(150, int(0.1 * na))
    p = np.pad(sino, ((pad, pad), (0, 0)), mode="reflect")
    k = np.fft.fftfreq(p.shape[0], 1.0 / p.shape[0])
    win = np.exp(-0.5 * (k / sigma) ** 2)[:, None]
    smooth = (
        np.fft.ifft(np.fft.fft(p, axis=0) * win, axis=0).real[pad : pad + na].astype(np.float32)
    )
    sharp = sino - smooth
    return _core.median_rows(np.ascontiguousarray(smooth), _odd(size, "size"), n_threads=nt) + sharp


def _rs_large(sino, snr, size, drop_ratio, nt):
    """Algorithm 5: normalise columns by the ratio of the sorted sinogram to
    its detector-smoothed version, then replace flagged columns by the
    sorted-smoothed values put back in order."""
    na = sino.shape[0]
    nd = int(0.5 * float(np.clip(drop_ratio, 0.0, 0.8)) * na)
    srt, smooth, back = _core.sort_median(sino, _odd(size, "la_size"), n_threads=nt)
    m1 = srt[nd : na - nd].mean(axis=0, dtype=np.float64)
    m2 = smooth[nd : na - nd].mean(axis=0, dtype=np.float64)
    # Columns of (near) zero signal, e.g. air in -log data, keep factor 1.
    ok = (np.abs(m2) > 0.02 * np.abs(m2).max()) & (m1 * m2 > 0)
    fact = np.divide(m1, m2, out=np.ones_like(m1), where=ok)
    mask = binary_dilation(_detect_stripe(fact, snr), iterations=1)
    out = (sino / fact[None, :]).astype(np.float32)
    if mask.any():
        # Flagged columns: the sorted-smoothed values, put back in their order.
        out[:, mask] = back[:, mask]
    return out


def _rs_dead(sino, snr, size, drop_ratio, nt):
    """Algorithm 6: columns whose angular fluctuation differs from their
    neighbours' (unresponsive or dead pixels) are interpolated from the
    nearest good columns; then the large-stripe pass."""
    na, nc = sino.shape
    smooth = uniform_filter1d(sino, 10, axis=0)
    diff = np.abs(sino - smooth).sum(axis=0, dtype=np.float64)
    bck = median_filter(diff, _odd(size, "la_size"), mode="reflect")
    bck[bck == 0] = diff.mean() if diff.mean() > 0 else 1.0
    mask = binary_dilation(_detect_stripe(diff / bck, snr), iterations=1)
    mask[:2] = False
    mask[-2:] = False
    out = sino
    if mask.any():
        out = sino.copy()
        good = np.flatnonzero(~mask)
        bad = np.flatnonzero(mask)
        j = np.clip(np.searchsorted(good, bad), 1, good.size - 1)
        lo, hi = good[j - 1], good[j]
        w = ((bad - lo) / (hi - lo)).astype(np.float32)
        out[:, bad] = sino[:, lo] * (1 - w) + sino[:, hi] * w
    return _rs_large(out, snr, size, drop_ratio, nt)


def _rs_fw(sino, level, sigma, wavelet):
    """Munch et al. 2009 with PyWavelets: at each level the detail band that
    holds vertical stripes (detail across the detector, approximation along
    the angles: pywt's cV) is damped near zero angular frequency by
    1 - exp(-k^2 / (2 sigma^2)), k in frequency bins of that band. The
    sinogram is extended by reflection along the angles (by a quarter of its
    length on each side, and to a multiple of 2^level) so the band's FFT
    sees no jump between the first and last angle; pywt's "symmetric"
    extension at the detector edges."""
    import pywt

    na, nc = sino.shape
    ext = na // 4
    ext_lo = ext + (-(na + 2 * ext)) % (1 << level)
    a = np.pad(sino.astype(np.float64), ((ext_lo, ext), (0, 0)), mode="reflect")
    shapes, details = [], []
    for _ in range(level):
        shapes.append(a.shape)
        a, (ch, cv, cd) = pywt.dwt2(a, wavelet, mode="symmetric")
        k = np.fft.fftfreq(cv.shape[0], 1.0 / cv.shape[0])[:, None]
        damp = -np.expm1(-(k**2) / (2.0 * sigma**2))
        cv = np.fft.irfft(
            np.fft.rfft(cv, axis=0) * damp[: cv.shape[0] // 2 + 1], cv.shape[0], axis=0
        )
        details.append((ch, cv, cd))
    for shape, (ch, cv, cd) in zip(reversed(shapes), reversed(details), strict=True):
        a = pywt.idwt2((a[: ch.shape[0], : ch.shape[1]], (ch, cv, cd)), wavelet, mode="symmetric")
        a = a[: shape[0], : shape[1]]
    return a[ext_lo : ext_lo + na, :nc].astype(np.float32)


def remove_stripes(
    projections,
    *,
    method: str = "all",
    snr: float = 3.0,
    la_size: int = 61,
    sm_size: int = 21,
    sigma: float = 3.0,
    drop_ratio: float = 0.1,
    level: int = 4,
    fw_sigma: float = 2.0,
    wavelet: str = "db5",
    n_threads: int | None = None,
) -> np.ndarray:
    """Remove stripes (ring artefacts) from sinograms.

    Parameters
    ----------
    projections : (A, R, N) or (A, N) ndarray
        -log projections (angle, row, column) or one sinogram. Not modified.
    method : {"all", "sort", "filter", "large", "dead", "fw"}
        ``all``: dead + large stripes, then sorting (TomoPy's
        ``remove_all_stripe``); ``sort``, ``filter``, ``large``, ``dead``: the
        single algorithms of Vo et al. 2018; ``fw``: Munch et al. 2009
        (Fourier-wavelet, PyWavelets).
    snr : float
        Detection threshold of large/dead stripes (ratio to the noise level).
    la_size, sm_size : int, pixels
        Median widths along the detector for large and small stripes.
    sigma : float, frequency bins
        Gaussian window of the filtering method along the angles.
    drop_ratio : float
        Fraction of extreme sorted values left out when detecting large stripes.
    level, fw_sigma : int, float
        Wavelet levels and damping width (angular frequency bins) for ``fw``
        (TomoPy's ``remove_stripe_fw`` ``level`` and ``sigma``).
    wavelet : str
        PyWavelets wavelet name for ``fw`` (TomoPy's ``wname``; default
        "db5", TomoPy's default). On a stripe-free test sinogram db5 at
        level 4 changes the data by 0.9 % of its maximum (RMS; the Haar
        wavelet used before: 4.2 %; TomoPy's remove_stripe_fw: 0.8 %);
        ``level=3``: 0.14 %, but more of a wide stripe is left.
    n_threads : int, optional
        Threads (None: all cores): inside the Rust kernels for the Vo
        methods, over the sinograms (detector rows) of a stack for ``fw``.

    Returns
    -------
    ndarray, float32, same shape as the input.
    """
    choice(method, "method", METHODS)
    nt = n_threads_arg(n_threads)
    arr, single = as_sinogram_stack(projections)
    if not (np.isfinite(snr) and snr > 0):
        raise ParameterError(f"snr must be > 0, got {snr!r}")
    if method == "fw":
        if not (1 <= int(level) <= 12 and fw_sigma > 0):
            raise ParameterError("fw needs 1 <= level <= 12 and fw_sigma > 0")
        import pywt

        if wavelet not in pywt.wavelist(kind="discrete"):
            raise ParameterError(f"wavelet {wavelet!r} is not a discrete PyWavelets wavelet")
    # Sorting, medians and the filters scale with the data: values near the
    # float32 maximum are scaled by a power of two (exact) so sums and FFTs
    # cannot overflow, and scaled back (or refused) at the end.
    arr, scale = scale_down(arr, 2.0**64)
    out = np.empty(arr.shape, np.float32)

    def one(r):
        s = np.ascontiguousarray(arr[:, r, :])
        if method == "all":
            s = _rs_sort(_rs_dead(s, snr, la_size, drop_ratio, nt), sm_size, nt)
        elif method == "sort":
            s = _rs_sort(s, sm_size, nt)
        elif method == "filter":
            s = _rs_filter(s, sigma, sm_size, nt)
        elif method == "large":
            s = _rs_large(s, snr, la_size, drop_ratio, nt)
        elif method == "dead":
            s = _rs_dead(s, snr, la_size, drop_ratio, nt)
        else:
            s = _rs_fw(s, int(level), float(fw_sigma), wavelet)
        out[:, r, :] = s

    workers = min(arr.shape[1], nt or os.cpu_count() or 1) if method == "fw" else 1
    if workers > 1:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(one, range(arr.shape[1])))
    else:
        for r in range(arr.shape[1]):
            one(r)
    check_result(out, "remove_stripes", scale=scale)
    return out[:, 0, :] if single else out
