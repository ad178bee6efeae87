"""Automatic detection of line-pair (bar) groups by local spectral analysis.

Method (one pass per bar orientation and per window scale ``L``):

1. Strips of ``A`` lines along the bars are averaged (``A = clip(L / 2, 8, 32)``,
   step ``A / 2``) and cut into windows of ``L`` samples across the bars (step
   ``L / 4``): one short profile per window.
2. Each profile minus its Hann-weighted mean, times a Hann window, gives a power
   spectrum. A bar group shows a narrow dominant peak: the peak bin (sub-bin
   Gaussian interpolation) gives the local frequency, the three bins around it
   hold most of the AC power (``concentration``), and their power is far above
   what noise of the image's level would give. A single edge or a smooth
   gradient has a broad spectrum piled at the lowest bins and is rejected
   (the peak must hold >= 2.5 periods in the window).
3. Accepted windows are grown into regions (8-neighbours, frequency within 5%
   of the region's seed window: no chaining across groups of nearby
   frequency); the regions of all scales and both orientations are merged
   when they overlap with the same frequency, conflicting ones keep the
   strongest.
4. Each region is refined to the bar extent: across the bars from the
   one-period lock-in envelope of the profile (half maximum), along the bars
   from the per-line amplitude at the group's frequency (half maximum), and
   the frequency is re-estimated from the zero-padded spectrum of the refined
   profile.

The window statistics (step 1-2, the heavy part) and the region growing run
in Rust (``_core.mtf_bar_window_stats``, ``_core.mtf_bar_regions``, see
:func:`rust_stats`); refinement is numpy;
:func:`window_stats_numpy` (vectorised numpy) and :func:`regions_python` (a
plain flood fill) are the references for tests and benchmarks
(``detect(img)`` without ``stats_fn``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: window lengths across the bars (px)
SCALES = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
MIN_PERIODS = 2.5  # in a window, for a peak to count
MAX_PERIODS = 6.5
MIN_CONCENTRATION = 0.6
MIN_SNR = 30.0  # peak power over the expected noise power of the three peak bins
FREQ_TOL = 0.05
MIN_GROUP_PERIODS = 3.0  # in a refined group (3-bar cards: 2.5, pass min_periods)
MAX_FREQUENCY = 0.48  # cycles/px: above, the peak is Nyquist folding, not bars


@dataclass(frozen=True)
class BarGroup:
    """A detected bar group: ``region`` (r0, r1, c0, c1), half-open pixel
    bounds of the bars; ``frequency`` in cycles/px; ``orientation`` of the bars
    (``"vertical"``: bars along the columns, profile across columns)."""

    region: tuple
    frequency: float
    orientation: str
    score: float


def scale_params(L: int) -> tuple[int, int, int]:
    """(strip height A, strip step, window step) for window length ``L``."""
    a = int(min(max(L // 2, 8), 16))
    return a, a // 2, max(L // 4, 2)


def _hann(L: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(L) + 0.5) / L)


def window_stats_numpy(img, L: int, a: int, step_a: int, step_l: int):
    """Per-window (frequency in cycles/px, concentration, peak power per sample)
    of the strip-averaged, Hann-windowed profiles along the last axis of ``img``;
    arrays of shape (n_strips, n_windows). Vectorised numpy reference."""
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape
    ns, nw = (h - a) // step_a + 1, (w - L) // step_l + 1
    if ns < 1 or nw < 1:
        z = np.zeros((max(ns, 0), max(nw, 0)))
        return z, z, z
    cs = np.concatenate([np.zeros((1, w)), np.cumsum(img, axis=0)])
    starts = np.arange(ns) * step_a
    strips = (cs[starts + a] - cs[starts]) / a  # (ns, w)
    win = np.lib.stride_tricks.sliding_window_view(strips, L, axis=1)[:, ::step_l][:, :nw]
    hw = _hann(L)
    m = (win * hw).sum(-1, keepdims=True) / hw.sum()
    p = np.abs(np.fft.rfft((win - m) * hw, axis=-1)) ** 2  # (ns, nw, L/2+1)
    return _peak_stats(p, L, hw)


def _peak_stats(p, L, hw):
    kmax = L // 2 - 1
    total = p[..., 1:].sum(-1)
    # the strongest AC bin: a step or a gradient peaks at bin 1 (then rejected
    # by the periods-in-window test), a bar group at its frequency
    k = np.maximum(np.argmax(p[..., 1 : kmax + 1], axis=-1) + 1, 2)
    pk = np.take_along_axis(p, k[..., None], -1)[..., 0]
    pm = np.take_along_axis(p, (k - 1)[..., None], -1)[..., 0]
    pp = np.take_along_axis(p, (k + 1)[..., None], -1)[..., 0]
    band = pm + pk + pp
    with np.errstate(divide="ignore", invalid="ignore"):
        lm, l0, lp = np.log(pm), np.log(pk), np.log(pp)
        den = lm - 2 * l0 + lp
        d = np.where(den < 0, 0.5 * (lm - lp) / den, 0.0)
        d = np.nan_to_num(np.clip(d, -0.5, 0.5))
        conc = np.where(total > 0, band / total, 0.0)
    freq = (k + d) / L
    power = band / (3 * (hw**2).sum())
    return freq, conc, power


def noise_sigma(img) -> float:
    """Robust per-pixel noise (MAD of neighbour differences, the smaller of the
    two axes: one of them runs along the bars)."""
    img = np.asarray(img)
    s = []
    k = max(2, int(math.sqrt(img.size / 2.5e5)))  # every k-th line: ~0.5 M differences
    sub = [np.asarray(img[::k, :], dtype=np.float64), np.asarray(img[:, ::k], dtype=np.float64)]
    for d in (np.diff(sub[0], axis=1), np.diff(sub[1], axis=0)):
        d = d.ravel()
        if d.size:
            s.append(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))
    sig = float(min(s)) if s else 0.0
    # floor: quantisation-level ripple of noise-free images is not a bar group
    lo, hi = np.percentile(
        img[:: max(img.shape[0] // 256, 1), :: max(img.shape[1] // 256, 1)], (1, 99)
    )
    return max(sig, 1e-3 * float(hi - lo))


def regions_python(ok, freq, score, tol):
    """Region growing on the (strip, window) grid (reference of
    ``_core.mtf_bar_regions``): seeds by decreasing score (ties: grid order),
    8-neighbours whose frequency is within ``tol`` of the seed's. Returns the
    label of each cell (-1: not ok)."""
    ns, nw = ok.shape
    label = np.full(ok.shape, -1, dtype=np.int64)
    order = np.argsort(-np.where(ok, score, -np.inf), axis=None, kind="stable")
    lab = 0
    for flat in order:
        i0, j0 = divmod(int(flat), nw)
        if not ok[i0, j0]:
            break
        if label[i0, j0] >= 0:
            continue
        f0 = freq[i0, j0]
        stack = [(i0, j0)]
        label[i0, j0] = lab
        while stack:
            i, j = stack.pop()
            for u in range(max(i - 1, 0), min(i + 2, ns)):
                for v in range(max(j - 1, 0), min(j + 2, nw)):
                    if ok[u, v] and label[u, v] < 0 and abs(freq[u, v] - f0) <= tol * f0:
                        label[u, v] = lab
                        stack.append((u, v))
        lab += 1
    return label


def _components(label, min_size=3):
    """(i, j) index arrays of the labelled regions with >= ``min_size`` cells."""
    i, j = np.nonzero(label >= 0)
    lab = label[i, j]
    order = np.argsort(lab, kind="stable")
    i, j, lab = i[order], j[order], lab[order]
    cuts = np.flatnonzero(np.diff(lab)) + 1
    return [
        np.stack([a, b], axis=1)
        for a, b in zip(np.split(i, cuts), np.split(j, cuts), strict=True)
        if a.size >= min_size
    ]


def _numpy_stats(img, transpose, L, a, sa, sl):
    return window_stats_numpy(img.T if transpose else img, L, a, sa, sl)


def rust_stats(n_threads=None):
    """``stats_fn`` running the Rust kernel ``_core.mtf_bar_window_stats``."""
    from .. import _core

    def fn(img, transpose, L, a, sa, sl):
        return _core.mtf_bar_window_stats(
            img, L, a, sa, sl, transpose=transpose, n_threads=n_threads
        )

    fn.regions = _core.mtf_bar_regions
    return fn


def _candidates(stats_fn, img, sigma):
    """Candidate regions (orientation, (r0, r1, c0, c1), freq, score) of all
    scales and both orientations; ``stats_fn(img, transpose, L, a, step_a,
    step_l)`` gives the window statistics."""
    out = []
    for orient, transpose in (("vertical", False), ("horizontal", True)):
        vh, vw = img.shape[::-1] if transpose else img.shape
        for L in SCALES:
            a, sa, sl = scale_params(L)
            if L > vw or a > vh:
                continue
            freq, conc, power = stats_fn(img, transpose, L, a, sa, sl)
            periods = freq * L
            noise = max(sigma, 1e-12) ** 2 / a
            ok = (
                (conc >= MIN_CONCENTRATION)
                & (periods >= MIN_PERIODS)
                & (periods <= MAX_PERIODS)
                & (power >= MIN_SNR * noise)
            )
            if not ok.any():
                continue
            grow = getattr(stats_fn, "regions", regions_python)
            for comp in _components(grow(ok, freq, conc, FREQ_TOL)):
                i, j = comp[:, 0], comp[:, 1]
                # view coordinates: rows = along the bars, cols = across
                r0, r1 = int(i.min() * sa), int(i.max() * sa + a)
                c0, c1 = int(j.min() * sl), int(j.max() * sl + L)
                v = np.sort(freq[i, j])
                f = float(0.5 * (v[(v.size - 1) // 2] + v[v.size // 2]))  # median
                score = float(conc[i, j].sum() * a * sl)
                box = (r0, r1, c0, c1) if orient == "vertical" else (c0, c1, r0, r1)
                out.append((orient, box, f, score))
    return out


def _area(b):
    return max(b[1] - b[0], 0) * max(b[3] - b[2], 0)


def _inter(a, b):
    return _area((max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])))


def _near(a, b, margin):
    """Whether boxes a and b overlap once grown by ``margin`` px."""
    return (
        a[0] - margin < b[1]
        and b[0] - margin < a[1]
        and a[2] - margin < b[3]
        and b[2] - margin < a[3]
    )


def _merge(cands):
    """Unite candidates of the same orientation and frequency (within 8%) that
    overlap or nearly touch (fragments of one group seen by short windows),
    strongest first, until nothing changes; others are kept for refinement."""
    kept = [list(c) for c in sorted(cands, key=lambda c: -c[3])]
    changed = True
    while changed:
        changed = False
        out: list[list] = []
        for orient, box, f, score in kept:
            margin = 0.5 / f + 2
            for k in out:
                if orient == k[0] and abs(f - k[2]) <= 0.08 * k[2] and _near(box, k[1], margin):
                    k[1] = (
                        min(k[1][0], box[0]),
                        max(k[1][1], box[1]),
                        min(k[1][2], box[2]),
                        max(k[1][3], box[3]),
                    )
                    k[3] += score
                    changed = True
                    break
            else:
                out.append([orient, box, f, score])
        kept = out
    return kept


def _run_around(v, thr, centre):
    """Contiguous run of ``v > thr`` containing ``centre`` (half-open bounds)."""
    i0 = i1 = int(centre)
    while i0 > 0 and v[i0 - 1] > thr:
        i0 -= 1
    while i1 < v.size - 1 and v[i1 + 1] > thr:
        i1 += 1
    return i0, i1 + 1


def _box_sum(values, lo, hi):
    """Sums of ``values`` over the fractional intervals [lo, hi) (clipped),
    from linearly interpolated cumulative sums (real or complex)."""
    n = values.size
    c = np.concatenate([[0], np.cumsum(values)])
    t = np.arange(n + 1)
    lo, hi = np.clip(lo, 0, n), np.clip(hi, 0, n)

    def at(q):
        if np.iscomplexobj(c):
            return np.interp(q, t, c.real) + 1j * np.interp(q, t, c.imag)
        return np.interp(q, t, c)

    return at(hi) - at(lo), hi - lo


def _lockin_envelope(p, f):
    """|(1/span) sum over m periods of (p - local mean) exp(-2 pi i f x)|,
    centred on each sample (fractional boxcar); m = 1 unless a period is
    shorter than 6 px (then the box spans >= 6 px: fine bars sampled by few
    pixels beat with the pixel grid)."""
    x = np.arange(p.size)
    ph = np.exp(-2j * np.pi * f * x)
    m = max(1, math.ceil(6 * f))
    lo, hi = x + 0.5 - 0.5 * m / f, x + 0.5 + 0.5 * m / f
    sz, _ = _box_sum(p * ph, lo, hi)
    sp, span = _box_sum(p, lo, hi)
    sph, _ = _box_sum(ph, lo, hi)
    mean = sp / np.maximum(span, 1e-9)
    return np.abs(sz - mean * sph) * f / m


def _peak_frequency(p, f, rel=0.15):
    """Spectral peak of profile ``p`` within +-rel of ``f`` (zero padded, Hann,
    parabolic interpolation of the log power)."""
    n = p.size
    hw = _hann(n)
    q = (p - (p * hw).sum() / hw.sum()) * hw
    nfft = 1 << max(12, int(math.ceil(math.log2(n))) + 4)
    sp = np.abs(np.fft.rfft(q, nfft)) ** 2
    fr = np.arange(sp.size) / nfft
    m = np.nonzero((fr >= (1 - rel) * f) & (fr <= (1 + rel) * f))[0]
    if m.size == 0:
        return f
    k = int(m[np.argmax(sp[m])])
    if 0 < k < sp.size - 1 and min(sp[k - 1], sp[k], sp[k + 1]) > 0:
        lm, l0, lp = np.log(sp[k - 1 : k + 2])
        den = lm - 2 * l0 + lp
        d = 0.5 * (lm - lp) / den if den < 0 else 0.0
        return (k + float(np.clip(d, -0.5, 0.5))) / nfft
    return k / nfft


def _robust_run(v, lo, hi):
    """Half-maximum run of ``v`` around the middle of ``v[lo:hi]``; the
    reference level is the 75th percentile there (the ends of a bar train and
    steps of the background overshoot the envelope)."""
    lo = min(max(lo, 0), v.size - 1)
    hi = min(max(hi, lo + 1), v.size)
    ref = float(np.percentile(v[lo:hi], 75))
    if not ref > 0:
        return None
    thr = 0.5 * ref
    above = np.nonzero(v[lo:hi] > thr)[0]
    if above.size == 0:
        return None
    centre = lo + int(above[np.argmin(np.abs(above - (hi - lo) / 2))])
    return _run_around(v, thr, centre)


def _bar_edges(p, n0, n1, f):
    """Snap the run [n0, n1) of profile ``p`` to the outer edges of its bars.

    The bar edges are the crossings of the mid level (between the 10th and
    90th percentiles of the run, searched half a period beyond it); a bar train
    at ``f`` has crossings every half period. The longest chain of crossings
    spaced by half a period (+-25%, at least +-0.6 px) is kept: it ends at the
    first and last bars' outer edges, and stops where a neighbouring group of
    another frequency (or a wide gap) begins. Returns half-open bounds, or the
    run unchanged when fewer than 4 crossings chain up or the chain spans less
    than 60% of the run."""
    half = 0.5 / f
    lo, hi = max(int(n0 - half), 0), min(int(math.ceil(n1 + half)), p.size)
    seg = p[lo:hi]
    q10, q90 = np.percentile(p[n0:n1], (10, 90))
    d = seg - 0.5 * (q10 + q90)
    s = np.nonzero(np.signbit(d[:-1]) != np.signbit(d[1:]))[0]
    if s.size < 4:
        return n0, n1
    x = lo + s + d[s] / (d[s] - d[s + 1])  # linear interpolation, pixel-centre coordinates
    ok = np.abs(np.diff(x) - half) <= max(0.25 * half, 0.6)
    best, run_start = (0, 0), 0
    for k, good in enumerate(np.append(ok, False)):
        if not good:
            if k - run_start > best[1] - best[0]:
                best = (run_start, k)
            run_start = k + 1
    a, b = best  # crossings a..b (b - a intervals)
    # too few, or a chain much shorter than the run: the crossings are not reliable
    # (bars of 2-4 px sampled without blur alias into uneven crossings)
    if b - a < 3 or (x[b] - x[a]) < 0.6 * (n1 - n0):
        return n0, n1
    # an edge at pixel-centre coordinate x: the bars begin with pixel round(x + 0.5)
    return int(round(x[a] + 0.5)), int(round(x[b] + 0.5))


def refine(img, orient, box, f, *, iterations: int = 3):
    """Bar extent (r0, r1, c0, c1) and frequency (cycles/px) of a candidate
    region, or None when no modulation is left at ``f``."""
    view = img if orient == "vertical" else img.T
    r0, r1, c0, c1 = box if orient == "vertical" else (box[2], box[3], box[0], box[1])
    vh, vw = view.shape
    # the windows' frequency is coarse (short windows): first estimate on the box
    f = _peak_frequency(np.asarray(view[r0:r1, c0:c1], dtype=np.float64).mean(axis=0), f)
    for _ in range(iterations):
        # along the bars (rows of the view): amplitude at f of each line
        g0, g1 = max(r0 - 8, 0), min(r1 + 8, vh)
        seg = np.asarray(view[g0:g1, c0:c1], dtype=np.float64)
        seg = seg - seg.mean(axis=1, keepdims=True)
        ph = 2 * np.pi * f * np.arange(c0, c1)
        amp = np.hypot(seg @ np.cos(ph), seg @ np.sin(ph))
        if amp.size >= 3:
            amp = np.convolve(amp, np.ones(3) / 3, mode="same")
        run = _robust_run(amp, r0 - g0, r1 - g0)
        if run is None or run[1] - run[0] < 2:
            return None
        r0, r1 = g0 + run[0], g0 + run[1]
        # across the bars (columns of the view): lock-in envelope of the profile,
        # the search range grown while the run touches its ends
        pad = int(2 / f) + 2
        for _grow in range(8):
            e0, e1 = max(c0 - pad, 0), min(c1 + pad, vw)
            p = np.asarray(view[r0:r1, e0:e1], dtype=np.float64).mean(axis=0)
            env = _lockin_envelope(p, f)
            run = _robust_run(env, c0 - e0, c1 - e0)
            if run is None:
                return None
            n0, n1 = e0 + run[0], e0 + run[1]
            n0, n1 = (e0 + v for v in _bar_edges(p, run[0], run[1], f))
            touching = (run[0] == 0 and e0 > 0) or (run[1] == env.size and e1 < vw)
            c0, c1 = n0, n1
            if not touching:
                break
            pad *= 2
        if (c1 - c0) * f < 1.5:
            return None
        f = _peak_frequency(view[r0:r1, c0:c1].astype(np.float64).mean(axis=0), f)
    out = (r0, r1, c0, c1) if orient == "vertical" else (c0, c1, r0, r1)
    return tuple(int(v) for v in out), float(f)


def _score(img, orient, box, f):
    """(concentration, score) of a refined group: the fraction of the AC power of
    its profile in the spectral main lobe at f, and that times the area."""
    view = img if orient == "vertical" else img.T
    r0, r1, c0, c1 = box if orient == "vertical" else (box[2], box[3], box[0], box[1])
    p = np.asarray(view[r0:r1, c0:c1], dtype=np.float64).mean(axis=0)
    hw = _hann(p.size)
    q = (p - (p * hw).sum() / hw.sum()) * hw
    nfft = 1 << (int(math.ceil(math.log2(p.size))) + 2)
    sp = np.abs(np.fft.rfft(q, nfft)) ** 2
    fr = np.arange(sp.size) / nfft
    tot = sp[1:].sum()
    # main lobe of the Hann window (+-2 / n), at least +-10% of f
    conc = sp[np.abs(fr - f) <= max(0.1 * f, 2.0 / p.size)].sum() / tot if tot > 0 else 0.0
    return float(conc), float(conc * (r1 - r0) * (c1 - c0))


def detect(img, stats_fn=None, *, min_periods: float = MIN_GROUP_PERIODS) -> list[BarGroup]:
    """Bar groups found in ``img`` (float array, 2-D), sorted by frequency."""
    img = np.asarray(img)
    if stats_fn is None:  # the numpy reference: one float64 copy for all scales
        img = img.astype(np.float64)
        stats_fn = _numpy_stats
    sigma = noise_sigma(img)
    groups = []
    # highest frequency first: a candidate mostly covered by groups already found
    # (of higher frequency, which win overlaps, see _resolve) is not refined
    cands = sorted(_merge(_candidates(stats_fn, img, sigma)), key=lambda c: (-c[2], -c[3]))
    for orient, box, f, _ in cands:
        if sum(_inter(box, g.region) for g in groups) >= 0.5 * _area(box):
            continue
        r = refine(img, orient, box, f)
        if r is None:
            continue
        conc, score = _score(img, orient, r[0], r[1])
        across = (r[0][3] - r[0][2]) if orient == "vertical" else (r[0][1] - r[0][0])
        if conc < MIN_CONCENTRATION or r[1] > MAX_FREQUENCY or across * r[1] < min_periods:
            continue
        groups.append(BarGroup(r[0], r[1], orient, score))
    return _resolve(groups)


def _resolve(groups):
    """Overlapping detections: the same group seen twice (frequencies within
    8%) keeps the stronger; otherwise the higher frequency wins (a stack of
    bar groups is itself periodic at a lower frequency, but a bar group holds
    no finer structure)."""
    final: list[BarGroup] = []
    for g in sorted(groups, key=lambda g: -g.frequency):
        clash = [
            k
            for k in final
            if _inter(g.region, k.region) > 0.05 * min(_area(g.region), _area(k.region))
        ]
        if not clash:
            final.append(g)
        elif all(abs(g.frequency - k.frequency) <= 0.08 * k.frequency for k in clash):
            if all(g.score > k.score for k in clash):
                final = [k for k in final if k not in clash] + [g]
    return sorted(final, key=lambda g: g.frequency)
