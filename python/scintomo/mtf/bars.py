"""Line-pair (bar) targets: square-wave contrast per group, Coltman's series to
the sine-wave MTF, logarithmic and monotone fits, limiting resolution.

Contrast of a group: the profile across the bars (averaged along them) is
folded at the group's period (refined around the nominal frequency), which
samples the waveform densely even when the period is not a whole number of
pixels; the square-wave contrast is ``max - min`` of the folded profile,
normalised to the widest group's (the papers' definition), and also reported
as Michelson contrast ``(max - min) / (max + min)``.

Coltman (J. Opt. Soc. Am. 44, 468, 1954):
``MTF(f) = pi/4 * sum_n odd mu(n) (-1)^((n-1)/2) / n * C(n f)``, with ``C`` at
``n f`` interpolated from the monotone fit (log-linear extrapolation past the
last group, 0 once below 1%). It assumes long bar trains; 3- to 5-bar groups
bias the contrast (the ends of the train see fewer neighbours) so the
corrected values are indicative for such cards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _validate
from ..exceptions import NumericalError, ParameterError, ShapeError
from ._detect import MIN_GROUP_PERIODS, BarGroup

__all__ = ["BarGroup", "BarMTF", "bar_mtf", "coltman", "detect_bar_groups", "group_contrast"]

#: bars tilted more than this from the rows or columns are smeared by the
#: profile's average along them (a 90 px bar 5 deg off shifts by 8 px): such a
#: group is flagged and excluded rather than measured along the wrong axis
MAX_TILT_DEG = 5.0
#: a group's square-wave contrast may exceed the widest group's by noise alone
#: up to this; beyond it the group is flagged and excluded (a CTF above 1 is not
#: a resolution figure: the widest region or this one is not a clean bar group)
CTF_TOLERANCE = 0.02
_MAX_LOG_FREQUENCY = 700.0  # exp() of more overflows float64

COLTMAN_NOTE = (
    "sine-wave MTF from the square-wave contrast by Coltman's series (1954); it assumes "
    "long bar trains: 3- to 5-bar groups bias it"
)


def _mobius(n: int) -> int:
    m, p, res = n, 2, 1
    while p * p <= m:
        if m % p == 0:
            m //= p
            if m % p == 0:
                return 0
            res = -res
        p += 1
    return -res if m > 1 else res


#: (n, coefficient) of C(n f) in Coltman's series, n odd up to 63
COLTMAN_TERMS = tuple(
    (n, _mobius(n) * (-1) ** ((n - 1) // 2) / n) for n in range(1, 64, 2) if _mobius(n) != 0
)


def coltman(ctf_func, f):
    """Sine MTF at frequencies ``f`` from a square-wave contrast function."""
    f = np.asarray(f, dtype=np.float64)
    return (np.pi / 4) * sum(c * ctf_func(n * f) for n, c in COLTMAN_TERMS)


def _profile(region: np.ndarray) -> tuple[np.ndarray, str]:
    """Profile across the bars (averaged along them) and the bars' direction."""
    pc = region.mean(axis=0)  # across columns: vertical bars
    pr = region.mean(axis=1)
    if np.var(np.diff(pc)) >= np.var(np.diff(pr)):
        return pc, "vertical"
    return pr, "horizontal"


def group_contrast(profile, frequency, *, refine: bool = True, n_bins: int | None = None):
    """(max, min, refined frequency) of the folded profile of one bar group
    (``frequency`` in cycles/px)."""
    p = np.asarray(profile, dtype=np.float64)
    if p.size < 4:
        raise ShapeError("a bar group's profile needs at least 4 pixels")
    f = float(frequency)
    if refine:
        # peak of the zero-padded spectrum within +-7% of the nominal frequency
        nfft = 1 << max(15, int(np.ceil(np.log2(p.size))) + 2)
        amp = np.abs(np.fft.rfft(p - p.mean(), nfft))
        fr = np.fft.rfftfreq(nfft)
        m = (fr >= 0.93 * f) & (fr <= 1.07 * f)
        if m.any():
            f = float(fr[m][int(np.argmax(amp[m]))])
    x = np.arange(p.size)
    # long trains: drop the first and last period (end bars lack a neighbour)
    if p.size * f >= 6:
        keep = (x >= 1 / f) & (x < p.size - 1 / f)
        x, p = x[keep], p[keep]
    phase = (x * f) % 1.0
    if n_bins is None:
        n_bins = int(np.clip(p.size // 3, 4, 48))
    idx = np.minimum((phase * n_bins).astype(int), n_bins - 1)
    # per-bin median (robust to the few samples the train's ends disturb),
    # vectorised: values sorted within bins, middle one(s) of each bin
    order = np.lexsort((p, idx))
    sv = p[order]
    cnt = np.bincount(idx, minlength=n_bins)
    start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    ne = cnt > 0
    meds = 0.5 * (sv[start[ne] + (cnt[ne] - 1) // 2] + sv[start[ne] + cnt[ne] // 2])
    return float(meds.max()), float(meds.min()), f


def contrasts_numpy(image, rois, freqs, orientation, *, refine: bool = True):
    """numpy reference of ``_core.mtf_bar_contrasts``: per group (max, min,
    refined frequency, vertical?) with :func:`_profile` and
    :func:`group_contrast` (``orientation``: 0 auto, 1 vertical, 2 horizontal)."""
    out = []
    for (r0, r1, c0, c1), f, o in zip(rois, freqs, orientation, strict=True):
        region = np.asarray(image[r0:r1, c0:c1], dtype=np.float64)
        if o == 0:
            prof, name = _profile(region)
        else:
            name = "vertical" if o == 1 else "horizontal"
            prof = region.mean(axis=0 if o == 1 else 1)
        mx, mn, fr = group_contrast(prof, f, refine=refine)
        out.append((mx, mn, fr, name == "vertical"))
    return tuple(np.array(v) for v in zip(*out, strict=True))


def bar_tilt_deg(region) -> float:
    """Tilt of the bars in ``region`` from the nearest image axis, degrees.

    The dominant gradient direction of the structure tensor, 0.5 atan2(2 Jxy,
    Jxx - Jyy) (Bigun & Granlund 1987), folded to (-45, 45]: 0 for bars along
    the rows or columns, 45 for diagonal bars. It needs no frequency, and a thin
    region holds enough gradients for it."""
    r = np.asarray(region, dtype=np.float64)
    if min(r.shape) < 3:
        return 0.0
    gy, gx = np.gradient(r)
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    if jxx + jyy == 0:
        return 0.0
    ang = 0.5 * math.degrees(math.atan2(2 * jxy, jxx - jyy))
    return (ang + 45.0) % 90.0 - 45.0


def _monotone_decreasing(y):
    """Least-squares non-increasing fit (pool adjacent violators)."""
    y = [float(v) for v in y]
    blocks = [[v, 1] for v in y]
    i = 0
    while i < len(blocks) - 1:
        if blocks[i][0] < blocks[i + 1][0]:
            a, b = blocks[i], blocks[i + 1]
            n = a[1] + b[1]
            blocks[i] = [(a[0] * a[1] + b[0] * b[1]) / n, n]
            del blocks[i + 1]
            i = max(i - 1, 0)
        else:
            i += 1
    out = []
    for v, n in blocks:
        out += [v] * n
    return np.array(out)


def _make_ctf_func(f, c):
    """Monotone interpolant of the contrast (PCHIP in f), log-linear extrapolation."""
    from scipy.interpolate import PchipInterpolator

    # groups of equal frequency (both orientations on a card): their mean contrast
    f, inv = np.unique(np.asarray(f, dtype=np.float64), return_inverse=True)
    c = np.bincount(inv, np.asarray(c, dtype=np.float64)) / np.bincount(inv)
    c = _monotone_decreasing(c)
    c = np.clip(c, 1e-6, None)
    if f.size == 1:
        return lambda q: np.where(np.asarray(q) <= f[0], c[0], 0.0)
    ip = PchipInterpolator(f, c, extrapolate=False)
    k = math.log(c[-1] / c[-2]) / (f[-1] - f[-2]) if c[-2] > 0 and f[-1] > f[-2] else -1.0
    k = min(k, 0.0)

    def func(q):
        q = np.asarray(q, dtype=np.float64)
        out = ip(np.clip(q, f[0], f[-1]))
        out = np.where(q < f[0], c[0], out)
        # evaluated beyond the last group only (q - f[-1] >= 0, k <= 0: no overflow)
        ext = c[-1] * np.exp(k * np.maximum(q - f[-1], 0.0))
        out = np.where(q > f[-1], np.where(ext > 0.01, ext, 0.0), out)
        return out

    return func


def _crossing(f, m, level):
    """Frequency where the non-increasing curve sampled at (f, m) falls to ``level``."""
    below = np.nonzero(m < level)[0]
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = int(below[0])
    return float(f[i - 1] + (m[i - 1] - level) * (f[i] - f[i - 1]) / (m[i - 1] - m[i]))


@dataclass(frozen=True)
class BarMTF:
    """Bar-target resolution.

    ``frequencies`` in lp/mm when a pixel size was given (else cycles/px, see
    ``frequency_unit``); ``ctf`` (max-min normalised to the widest group),
    ``michelson``, ``mtf`` (Coltman-corrected sine MTF, see ``note``);
    ``log_fit`` = (a, b) of ``modulation = a + b ln f`` on ``basis``;
    ``limit_frequency`` where the monotone fit of ``basis`` reaches
    ``threshold`` (``limit_frequency_log`` from the log fit);
    ``resolution_nm`` = 1e6 / (2 limit_frequency[lp/mm]); ``regions``: each
    group's (r0, r1, c0, c1) in pixels (given or detected), in the order of
    ``frequencies``; ``excluded``: groups found or given but not measured, each a
    dict with ``region``, ``frequency`` (in ``frequency_unit``) and ``reason``
    (bars tilted from the image axes, or a contrast above the widest group's).
    With ``n_bars`` (bars per group) given: ``mtf_finite``, each group's MTF
    from a model of ``n_bars`` bars blurred by a Gaussian (std
    ``sigma_finite_px``, pixels) fitted to its profile, normalised to the widest
    group (no infinite-train assumption; see ``scintomo.mtf._finite_bars``), and
    ``limit_frequency_finite`` where it reaches ``threshold`` (the model with
    the fitted std interpolated between the two groups around the crossing).
    ``ctf`` (the papers' max - min) and ``mtf`` (Coltman) stay beside it.
    """

    frequencies: np.ndarray
    frequencies_cycles_per_px: np.ndarray
    ctf: np.ndarray
    michelson: np.ndarray
    mtf: np.ndarray
    basis: str
    threshold: float
    log_fit: tuple
    limit_frequency: float
    limit_frequency_log: float
    resolution_nm: float | None
    frequency_unit: str
    pixel_size_um: float | None
    orientations: tuple
    note: str = COLTMAN_NOTE
    regions: tuple = ()
    excluded: tuple = ()
    n_bars: int | None = None
    mtf_finite: np.ndarray | None = None
    sigma_finite_px: np.ndarray | None = None
    limit_frequency_finite: float = float("nan")

    @property
    def limit_frequency_lp_per_mm(self):
        return self.limit_frequency if self.frequency_unit == "lp/mm" else None

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, np.ndarray):
                return [clean(x) for x in v.tolist()]
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, tuple):
                return [clean(x) for x in v]
            return v

        return {
            "method": "bar target: folded square-wave contrast, Coltman series",
            **{
                k: clean(getattr(self, k))
                for k in (
                    "frequencies",
                    "frequencies_cycles_per_px",
                    "ctf",
                    "michelson",
                    "mtf",
                    "basis",
                    "threshold",
                    "log_fit",
                    "limit_frequency",
                    "limit_frequency_log",
                    "resolution_nm",
                    "frequency_unit",
                    "pixel_size_um",
                    "orientations",
                    "note",
                    "regions",
                    "n_bars",
                    "mtf_finite",
                    "sigma_finite_px",
                    "limit_frequency_finite",
                )
            },
            "excluded": [
                {
                    "region": list(e["region"]),
                    "frequency": clean(float(e["frequency"])),
                    "reason": e["reason"],
                }  # fmt: skip
                for e in self.excluded
            ],
        }

    def plot(self, fig=None, *, image=None):
        """Contrast and MTF vs frequency with the fits and the threshold; with
        ``image``, the image beside them with each measured group's region drawn
        (green, labelled with its frequency) and each excluded one (red, dashed)
        so that a person can check what was measured. Returns the figure."""
        import matplotlib

        if fig is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(12, 5) if image is not None else (6, 4))
        if image is not None:
            ax_img, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
            self._draw_regions(ax_img, image)
        else:
            ax = fig.subplots()
        ax.plot(self.frequencies, self.ctf, "o", label="square-wave contrast (norm.)")
        ax.plot(self.frequencies, self.mtf, "s", label="Coltman sine MTF")
        ax.plot(self.frequencies, self.michelson, "x", label="Michelson")
        fq = np.linspace(self.frequencies.min(), self.frequencies.max() * 1.2, 200)
        a, b = self.log_fit
        ax.plot(fq, a + b * np.log(fq), "--", lw=0.8, label=f"log fit ({self.basis})")
        ax.axhline(self.threshold, color="0.6", lw=0.6)
        if math.isfinite(self.limit_frequency):
            ax.axvline(self.limit_frequency, color="C3", lw=0.8)
            txt = f"{self.limit_frequency:.3g} {self.frequency_unit}"
            if self.resolution_nm:
                txt += f" ({self.resolution_nm:.0f} nm)"
            ax.annotate(txt, (self.limit_frequency, self.threshold), fontsize=8)
        # every measured point inside the axes, whatever its value
        shown = np.concatenate([self.ctf, self.mtf, self.michelson])
        shown = shown[np.isfinite(shown)]
        top = max(1.1, 1.05 * float(shown.max())) if shown.size else 1.1
        ax.set(xlabel=f"frequency ({self.frequency_unit})", ylabel="modulation", ylim=(0, top))
        ax.legend(fontsize=7)
        fig.tight_layout()
        return fig

    def _draw_regions(self, ax, image):
        from matplotlib.patches import Rectangle

        img = np.asarray(image, dtype=np.float64)
        finite = img[np.isfinite(img)]
        lo, hi = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        groups = [(r, f, "C2", "-", f"{f:.3g}") for r, f in zip(self.regions, self.frequencies,
                                                             strict=True)]  # fmt: skip
        groups += [(e["region"], e["frequency"], "C3", "--", "excluded") for e in self.excluded]
        for (r0, r1, c0, c1), _f, colour, style, label in groups:
            ax.add_patch(
                Rectangle(
                    (c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, ec=colour, ls=style, lw=1.2
                )
            )
            ax.annotate(label, (c1, r0), color=colour, fontsize=7, va="bottom")
        boxes = np.array([g[0] for g in groups], dtype=float)
        if boxes.size:  # zoom on the groups, with a margin, so the regions can be checked
            r0, r1 = boxes[:, 0].min(), boxes[:, 1].max()
            c0, c1 = boxes[:, 2].min(), boxes[:, 3].max()
            m = max(20.0, 0.15 * max(r1 - r0, c1 - c0))
            ax.set_xlim(max(c0 - m, -0.5), min(c1 + m, img.shape[1] - 0.5))
            ax.set_ylim(min(r1 + m, img.shape[0] - 0.5), max(r0 - m, -0.5))
        ax.set_title(
            f"{len(self.regions)} bar groups measured ({self.frequency_unit})"
            + (f", {len(self.excluded)} excluded (red)" if self.excluded else ""),
            fontsize=9,
        )
        ax.set_axis_off()


def _pixel_size_um(pixel_size, magnification):

    if pixel_size is None:
        return None
    return _validate.length_um(pixel_size) / _validate.positive(magnification, "magnification")


def detect_bar_groups(
    image,
    *,
    frequencies=None,
    pixel_size=None,
    magnification: float = 1.0,
    min_periods: float = MIN_GROUP_PERIODS,
    n_threads=None,
    backend: str = "rust",
) -> list[BarGroup]:
    """Find the line-pair groups of a bar target by local spectral analysis.

    Windows of several lengths (8..256 px) slide over strips averaged along the
    bars, in both orientations; a window whose spectrum has a narrow dominant
    peak (>= 2.5 periods, most of the AC power, far above the image's noise)
    votes for a bar group at that frequency. Connected windows of one frequency
    form a candidate, refined to the bars' extent (bar edges) and frequency
    (zero-padded spectral peak). Single edges, gradients and noise have broad
    spectra and give nothing. See :mod:`scintomo.mtf._detect`.

    Parameters
    ----------
    image : (H, W) array
    frequencies : optional list of the groups' frequencies (lp/mm at the object
        when ``pixel_size`` is given, else cycles/px): keep, for each, the
        detected group of the nearest frequency (within 10%); a frequency with
        no group raises :class:`NumericalError`
    pixel_size, magnification : as in :func:`bar_mtf`
    min_periods : fewest periods across a group (default 3; 3-bar cards such as
        USAF 1951 have 2.5: pass 2.4)
    n_threads : threads of the Rust kernels (None: all cores)
    backend : ``"rust"`` (default) or ``"numpy"``: the window spectra in
        vectorised numpy (the reference of tests and benchmarks)

    Returns
    -------
    list of BarGroup
        ``region`` (r0, r1, c0, c1), half-open pixel bounds of the bars;
        ``frequency`` in cycles/px; ``orientation`` (``"vertical"``: bars along
        the columns); sorted by frequency (in the order of ``frequencies`` when
        given). Empty when nothing periodic is found (a flat or noise image).
    """
    from . import _detect

    arr = _validate.as_array(image, "image")
    if arr.ndim != 2:
        raise ShapeError(f"image must be 2-D, got shape {arr.shape}")
    _validate.check_nonempty(arr, "image")
    _validate.check_finite(arr, "image")
    if not min_periods > 0:
        raise ParameterError(f"min_periods must be > 0, got {min_periods}")
    px_um = _pixel_size_um(pixel_size, magnification)
    nt = _validate.n_threads_arg(n_threads)
    _validate.choice(backend, "backend", ("rust", "numpy"))
    stats = _detect.rust_stats(nt) if backend == "rust" else None
    found = _detect.detect(arr, stats, min_periods=min_periods)
    if frequencies is None:
        return found
    out = []
    for fq in frequencies:
        fq = _validate.positive(fq, "frequency")
        f_cpp = fq * px_um / 1e3 if px_um is not None else fq
        if f_cpp >= 0.5:
            raise ParameterError(
                f"frequency {fq:g} is {f_cpp:.4g} cycles/px: not below Nyquist (0.5)"
            )
        best = min(found, key=lambda g: abs(g.frequency / f_cpp - 1), default=None)
        if best is None or abs(best.frequency / f_cpp - 1) > 0.1:
            unit = "lp/mm" if px_um is not None else "cycles/px"
            raise NumericalError(
                f"no bar group found at {fq:g} {unit} ({f_cpp:.4g} cycles/px); detected: "
                + (
                    ", ".join(f"{g.frequency:.4g}" for g in found) + " cycles/px"
                    if found
                    else "none"
                )
            )
        out.append(best)
    return out


def bar_mtf(
    image,
    *,
    groups=None,
    pixel_size=None,
    magnification: float = 1.0,
    threshold: float = 0.2,
    basis: str = "mtf",
    refine_frequency: bool = True,
    min_periods: float = MIN_GROUP_PERIODS,
    n_threads=None,
    backend: str = "rust",
    n_bars: int | None = None,
) -> BarMTF:
    """Resolution from a line-pair (bar) target.

    Parameters
    ----------
    image : (H, W) array
    groups : where the bar groups are:

        - ``None`` or ``"auto"`` (default): detected (:func:`detect_bar_groups`);
          no group found raises :class:`NumericalError`;
        - a list of frequencies (lp/mm at the object with ``pixel_size``, else
          cycles/px): the detected group nearest each (within 10%);
        - a list of ``((r0, r1, c0, c1), frequency)``: each group's region (bars
          only, half-open rows/columns) and frequency (units as above).
    pixel_size : detector pixel size (um as a number or a string like ``"0.388mm"``)
    magnification : geometric/optical magnification (object pixel = pixel_size / M)
    threshold : modulation at which the limiting frequency is read (0.2: the papers)
    basis : ``"mtf"`` (Coltman sine MTF, default) or ``"ctf"`` (square-wave contrast)
    refine_frequency : refine each group's frequency (+-7%) on the data
    min_periods : detection only: fewest periods across a group (3; 2.4 for
        3-bar cards)
    n_threads : threads of the Rust kernels (None: all cores)
    backend : ``"rust"`` (default) or ``"numpy"`` (the same method in vectorised
        numpy: the reference of tests and benchmarks)
    n_bars : bars per group (3 or 5 on the papers' cards; None: not known).
        When given, each group's profile is also fitted with a model of that
        many bars blurred by a Gaussian (``mtf_finite``,
        ``limit_frequency_finite``): Coltman's series assumes infinite trains

    Returns
    -------
    BarMTF
    """
    from .. import _core

    arr = _validate.as_array(image, "image")
    if arr.ndim != 2:
        raise ShapeError(f"image must be 2-D, got shape {arr.shape}")
    _validate.check_nonempty(arr, "image")
    _validate.choice(basis, "basis", ("mtf", "ctf"))
    _validate.choice(backend, "backend", ("rust", "numpy"))
    if not 0 < threshold < 1:
        raise ParameterError(f"threshold must be in (0, 1), got {threshold}")
    if n_bars is not None and (
        isinstance(n_bars, bool) or not isinstance(n_bars, (int, np.integer)) or n_bars < 2
    ):
        raise ParameterError(f"n_bars must be an integer >= 2 or None, got {n_bars!r}")
    px_um = _pixel_size_um(pixel_size, magnification)
    nt = _validate.n_threads_arg(n_threads)
    auto = groups is None or (isinstance(groups, str) and groups == "auto")
    if isinstance(groups, str) and not auto:
        raise ParameterError(f"groups must be 'auto', None or a list, got {groups!r}")
    if not auto and len(groups) == 0:
        raise ParameterError("groups is empty: give regions, frequencies, or None (detect)")
    freq_list = not auto and all(isinstance(g, (int, float, np.number)) for g in groups)
    orient_codes = []
    if auto or freq_list:
        found = detect_bar_groups(
            arr,
            frequencies=None if auto else groups,
            pixel_size=pixel_size,
            magnification=magnification,
            min_periods=min_periods,
            n_threads=n_threads,
            backend=backend,
        )
        if not found:
            raise NumericalError(
                "no bar groups found in the image (no window with a narrow, dominant "
                "spectral peak above the noise); give groups=[((r0, r1, c0, c1), "
                "frequency), ...] by hand"
            )
        if auto:
            to_unit = (lambda f: f * 1e3 / px_um) if px_um is not None else (lambda f: f)
            groups = [(g.region, to_unit(g.frequency)) for g in found]
        else:
            groups = [(g.region, fq) for g, fq in zip(found, groups, strict=True)]
        orient_codes = [1 if g.orientation == "vertical" else 2 for g in found]
    else:
        # regions given: the kernel checks the pixels it reads for NaN/inf
        orient_codes = [0] * len(groups)
    rois, nominal, f_cpps = [], [], []
    for item in groups:
        try:
            roi, freq = item
            r0, r1, c0, c1 = (int(v) for v in roi)
        except (TypeError, ValueError) as e:
            raise ParameterError(
                f"each group must be ((r0, r1, c0, c1), frequency), got {item!r}"
            ) from e
        if not (0 <= r0 < r1 <= arr.shape[0] and 0 <= c0 < c1 <= arr.shape[1]):
            raise ParameterError(f"group region {roi} outside the image of shape {arr.shape}")
        freq = _validate.positive(freq, "group frequency")
        f_cpp = freq * px_um / 1e3 if px_um is not None else freq
        if not 0 < f_cpp < 0.5:
            raise ParameterError(
                f"group frequency {freq} is {f_cpp:.3g} cycles/px: not below Nyquist (0.5)"
            )
        rois.append((r0, r1, c0, c1))
        nominal.append(freq)
        f_cpps.append(f_cpp)
    unit = "lp/mm" if px_um is not None else "cycles/px"
    excluded: list[dict] = []
    # oblique bars: a profile along the rows or columns would smear them (flagged, excluded)
    tilts = [
        bar_tilt_deg(arr[max(0, r0 - 2) : r1 + 2, max(0, c0 - 2) : c1 + 2])
        for r0, r1, c0, c1 in rois
    ]
    keep = [i for i, t in enumerate(tilts) if not abs(t) > MAX_TILT_DEG]
    for i in sorted(set(range(len(rois))) - set(keep)):
        excluded.append(
            {
                "region": list(rois[i]),
                "frequency": float(nominal[i]),
                "reason": f"bars tilted {tilts[i]:.0f} deg from the image axes (more than "
                f"{MAX_TILT_DEG:g}): a profile along the rows or columns smears them",
            }
        )
    if not keep:
        raise NumericalError(
            f"no bar group measurable: the {len(rois)} candidate region(s) hold bars tilted "
            + ", ".join(f"{tilts[i]:.0f}" for i in range(len(rois)))
            + " deg from the image axes; bar groups are measured across bars that run "
            "along the rows or columns: rotate the image until they do (e.g. "
            "scipy.ndimage.rotate, order=3), then measure it"
        )
    rois, nominal, f_cpps = ([v[i] for i in keep] for v in (rois, nominal, f_cpps))
    orient_codes = [orient_codes[i] for i in keep]
    if backend == "numpy":
        _validate.check_finite(arr, "image")
        hi, lo, fpx, vert = contrasts_numpy(
            arr, rois, f_cpps, orient_codes, refine=refine_frequency
        )
    else:
        hi, lo, fpx, vert = _core.mtf_bar_contrasts(
            arr, rois, f_cpps, orient_codes, refine=refine_frequency, n_threads=nt
        )
    freqs = np.asarray(nominal) * fpx / np.asarray(f_cpps)
    orient = ["vertical" if v else "horizontal" for v in vert]
    freqs, fpx, hi, lo = map(np.asarray, (freqs, fpx, hi, lo))
    order = np.argsort(freqs)
    freqs, fpx, hi, lo = freqs[order], fpx[order], hi[order], lo[order]
    fnom = np.asarray(f_cpps, dtype=np.float64)[order]  # as given, cycles/px
    orient = tuple(orient[i] for i in order)
    regions = tuple(rois[i] for i in order)
    swing = hi - lo
    if swing[0] <= 0:
        raise NumericalError("the widest bar group shows no modulation")
    ctf = swing / swing[0]
    above = ctf > 1 + CTF_TOLERANCE
    if above.any():
        for i in np.nonzero(above)[0]:
            excluded.append(
                {
                    "region": list(regions[i]),
                    "frequency": float(freqs[i]),
                    "reason": f"square-wave contrast {ctf[i]:.2f} x the widest group's (at "
                    f"{freqs[0]:.4g} {unit}): this region or the widest one is not a clean "
                    "bar group",
                }
            )
        if (~above).sum() < 2:
            raise NumericalError(
                f"{int(above.sum())} of {above.size} bar groups show more contrast than the "
                f"widest one (at {freqs[0]:.4g} {unit}, region {regions[0]}): it is probably "
                "not a bar group; check the regions (or give them with --bars / groups=)"
            )
        ok = ~above
        freqs, fpx, hi, lo, swing, ctf = (v[ok] for v in (freqs, fpx, hi, lo, swing, ctf))
        fnom = fnom[ok]
        orient = tuple(o for o, k in zip(orient, ok, strict=True) if k)
        regions = tuple(r for r, k in zip(regions, ok, strict=True) if k)
    # within CTF_TOLERANCE of the widest group: equal to it within noise
    ctf = np.minimum(ctf, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mich = np.where(hi + lo != 0, swing / (hi + lo), np.nan)
    ctf_func = _make_ctf_func(fpx, ctf)
    mtf = coltman(ctf_func, fpx)
    mtf = mtf / mtf[0] if mtf[0] > 0 else mtf
    y = mtf if basis == "mtf" else ctf
    if freqs.size >= 2:
        b, a = np.polyfit(np.log(freqs), y, 1)
    else:
        a, b = float(y[0]), 0.0
    # exp of a huge exponent (a nearly flat fit) is no crossing, not an overflow
    log_lim = (threshold - a) / b if b < 0 else float("nan")
    lim_log = float(np.exp(log_lim)) if log_lim < _MAX_LOG_FREQUENCY else float("nan")
    ym = _monotone_decreasing(y)
    lim = _crossing(freqs, ym, threshold)
    res_nm = 1e6 / (2 * lim) if unit == "lp/mm" and math.isfinite(lim) and lim > 0 else None
    excluded.sort(key=lambda e: e["frequency"])
    finite = sig_f = None
    lim_finite = float("nan")
    if n_bars is not None:
        # the model fits its own frequency around the nominal one (the spectral
        # refinement is biased on 3-bar trains)
        finite, sig_f, lim_cpp = _finite_group_mtf(
            arr, regions, orient, fnom, int(n_bars), threshold
        )
        lim_finite = lim_cpp * (1e3 / px_um if px_um is not None else 1.0)
    return BarMTF(
        frequencies=freqs,
        frequencies_cycles_per_px=fpx,
        ctf=ctf,
        michelson=mich,
        mtf=mtf,
        basis=basis,
        threshold=float(threshold),
        log_fit=(float(a), float(b)),
        limit_frequency=lim,
        limit_frequency_log=lim_log,
        resolution_nm=res_nm,
        frequency_unit=unit,
        pixel_size_um=px_um,
        orientations=orient,
        regions=regions,
        excluded=tuple(excluded),
        n_bars=None if n_bars is None else int(n_bars),
        mtf_finite=finite,
        sigma_finite_px=sig_f,
        limit_frequency_finite=lim_finite,
    )


def _finite_group_mtf(arr, regions, orient, fpx, n_bars: int, threshold: float):
    """(per-group MTF normalised to the widest group, fitted Gaussian std px,
    threshold crossing cycles/px) from the N-bar model fits (widest group
    first: its amplitude is held for the others)."""
    from scipy.optimize import brentq

    from ._finite_bars import fit_group, gaussian_mtf

    sig = np.empty(len(regions))
    fr = np.empty(len(regions))
    amp = None
    for i, ((r0, r1, c0, c1), o, f) in enumerate(zip(regions, orient, fpx, strict=True)):
        region = np.asarray(arr[r0:r1, c0:c1], dtype=np.float64)
        prof = region.mean(axis=0 if o == "vertical" else 1)
        if not np.all(np.isfinite(prof)):
            raise NumericalError(f"bar group region {(r0, r1, c0, c1)} holds NaN or inf")
        a, sig[i], fr[i], _ = fit_group(prof, float(f), n_bars, amplitude=amp)
        if amp is None:
            amp = a

    def model(q, s):
        return gaussian_mtf(s, q) * float(np.sinc(q))

    norm = model(fr[0], sig[0])
    mtf = np.array([model(q, s) for q, s in zip(fr, sig, strict=True)]) / norm
    lim = float("nan")
    below = np.nonzero(mtf < threshold)[0]
    if below.size and below[0] > 0:
        i = int(below[0])

        def g(q):
            return model(q, float(np.interp(q, fr[i - 1 : i + 1], sig[i - 1 : i + 1]))) / norm

        lim = float(brentq(lambda q: g(q) - threshold, fr[i - 1], fr[i]))
    return mtf, sig, lim
