"""Resolution analysis speed (issue 3).

1. Slanted-edge MTF of a 512 x 512 ROI: ``scintomo.mtf.edge_mtf`` (one Rust call
   for the geometry: ISO centroids, windowed centroids, matched-filter
   refinement to convergence, projection; numpy for the LSF/DFT) against a
   plain numpy implementation of the ISO steps written below (ISO 12233
   centroids, line fit, two matched-filter refinements, 4x projection, LSF,
   window, DFT, filter correction; it does fewer refinement steps than
   edge_mtf). Targets: < 10 ms and >= 10x numpy; the target figure is the
   analysis without the bootstrap band (``n_bootstrap=0``); the default (50
   resamples over rows, projected in Rust) is timed beside it.
2. Bar analysis of a 2048 x 2048 image with 16 groups: ``bar_mtf`` against the
   same steps written plainly (profile, fold, contrast, Coltman). bar_mtf is
   numpy orchestration (no Rust kernel): the profile mean dominates.
"""

from __future__ import annotations

import math

import numpy as np

from conftest import median_time, report
from scintomo.mtf import bar_mtf, edge_mtf
from scintomo.mtf.bars import coltman
from scintomo.simulate import GaussianPSF, add_noise, slanted_edge


def numpy_edge_mtf(img):
    """Plain numpy version of the same slanted-edge method (MTF50, cycles/px)."""
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape
    d = np.diff(img, axis=1)
    d *= np.sign(d.sum())
    xs = np.arange(w - 1) + 0.5
    c0 = (d * xs).sum(1) / d.sum(1)
    half = np.maximum(c0 - 0.5, w - 2 - (c0 - 0.5))[:, None]
    x = np.arange(w - 1)[None, :] - (c0 - 0.5)[:, None]
    win = np.where(np.abs(x) <= half, 0.54 + 0.46 * np.cos(np.pi * x / half), 0.0) * d
    cents = (win * xs).sum(1) / win.sum(1)
    rows = np.arange(h)
    fit = np.polyfit(rows, cents, 1)
    slope = fit[0]
    n = round(math.floor(h * abs(slope)) / abs(slope))
    rows = rows[:n]

    def project(fit):
        off = np.arange(w)[None, :] - np.polyval(fit, rows)[:, None]
        lo = math.floor(off.min())
        idx = ((off - lo) * 4).astype(int).ravel()
        cnt = np.bincount(idx)
        s = np.bincount(idx, img[:n].ravel())
        p = np.bincount(idx, off.ravel() - lo)
        g = cnt > 0
        centres = lo + (np.arange(cnt.size) + 0.5) / 4
        return centres, np.interp(centres, lo + p[g] / cnt[g], s[g] / cnt[g]), cnt

    centres, esf, cnt = project(fit)
    for _ in range(2):
        grad = np.gradient(esf, centres)
        sm = np.abs(np.convolve(grad, np.ones(9) / 9, mode="same"))
        sig = np.nonzero(sm > 0.02 * sm.max())[0]
        a0, a1 = max(sig[0] - 8, 0), min(sig[-1] + 9, esf.size)
        x = np.arange(w)[None, :] - np.polyval(fit, rows)[:, None]
        inside = (x >= centres[a0]) & (x <= centres[a1 - 1])
        res = (img[:n] - np.interp(x, centres[a0:a1], esf[a0:a1])) * inside
        dm = np.interp(x, centres[a0:a1], grad[a0:a1]) * inside
        shift = -(res * dm).sum(1) / (dm * dm).sum(1)
        fit = np.polyfit(rows, np.polyval(fit, rows) + shift, 1)
        centres, esf, cnt = project(fit)
    full = cnt >= 0.5 * np.median(cnt[cnt > 0])
    i0, i1 = np.argmax(full), cnt.size - np.argmax(full[::-1])
    esf = esf[i0:i1]
    lsf = np.zeros_like(esf)
    lsf[1:-1] = (esf[2:] - esf[:-2]) * 2
    peak = int(np.argmax(lsf))
    hw = 6 * 4  # the window edge_mtf picks here (2 x the 10-90 rise)
    k = np.abs(np.arange(lsf.size) - peak) / hw
    tw = np.where(k < 0.5, 1.0, np.where(k < 1, 0.5 * (1 + np.cos(np.pi * (k - 0.5) / 0.5)), 0))
    lw = lsf * tw
    spec = np.abs(np.fft.rfft(lw, 8192)) / lw.sum()
    fh = np.fft.rfftfreq(8192, 0.25)
    m = spec / np.maximum(np.sinc(2 * fh * 0.25) * np.sinc(fh * 0.25), 0.1)
    f = fh / math.cos(math.atan(slope))
    i = int(np.nonzero(m < 0.5)[0][0])
    return f[i - 1] + (m[i - 1] - 0.5) * (f[i] - f[i - 1]) / (m[i - 1] - m[i])


def test_edge_mtf_512():
    im = add_noise(slanted_edge((512, 512), 5.0, GaussianPSF(1.0)), read_noise=0.02, seed=0)
    ours = edge_mtf(im, n_bootstrap=0).mtf50
    ref = numpy_edge_mtf(im)
    assert abs(ours / ref - 1) < 0.01, (ours, ref)
    rows = [
        ("numpy (same method, plain)", median_time(lambda: numpy_edge_mtf(im), repeat=7)),
        ("scintomo edge_mtf(n_bootstrap=0)", median_time(lambda: edge_mtf(im, n_bootstrap=0), repeat=15)),
        ("scintomo edge_mtf(n_bootstrap=0, n_threads=1)", median_time(lambda: edge_mtf(im, n_bootstrap=0, n_threads=1), repeat=15)),
        ("scintomo edge_mtf() default, 50-resample band", median_time(lambda: edge_mtf(im), repeat=7)),
    ]  # fmt: skip
    report("slanted-edge MTF, 512 x 512 ROI", rows, baseline="numpy (same method, plain)")


def _bars_2048():
    h = w = 2048
    freqs = np.geomspace(0.02, 0.4, 16)
    img = np.full((h, w), 0.1, np.float32)
    x = np.arange(w)
    groups = []
    for i, f in enumerate(freqs):
        r0 = i * 128 + 8
        img[r0 : r0 + 112] += 0.8 * ((x * f) % 1.0 < 0.5)[None, :]
        groups.append(((r0, r0 + 112, 16, w - 16), float(f)))
    return add_noise(img, read_noise=0.01, seed=0), groups


def numpy_bars(img, groups):
    out = []
    for (r0, r1, c0, c1), f in groups:
        p = img[r0:r1, c0:c1].astype(np.float64).mean(axis=0)
        ph = ((np.arange(p.size) * f) % 1 * 48).astype(int)
        med = [np.median(p[ph == k]) for k in range(48) if np.any(ph == k)]
        out.append(max(med) - min(med))
    c = np.array(out) / out[0]
    fr = np.array([g[1] for g in groups])
    return coltman(lambda q: np.interp(q, fr, c, right=0.0), fr)


def test_bars_2048():
    img, groups = _bars_2048()
    rows = [
        ("numpy (same steps, plain)", median_time(lambda: numpy_bars(img, groups), repeat=5)),
        ("scintomo bar_mtf", median_time(lambda: bar_mtf(img, groups=groups), repeat=5)),
        ("scintomo bar_mtf(refine_frequency=False)", median_time(lambda: bar_mtf(img, groups=groups, refine_frequency=False), repeat=5)),
    ]  # fmt: skip
    report("bar analysis, 2048 x 2048, 16 groups", rows, baseline="numpy (same steps, plain)")
