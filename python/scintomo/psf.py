"""The scintillator's point spread function: modelled, measured, saved.

A thin film's PSF has a sharp core (the objective's NA and the defocus
through the film thickness) and a long halo (scattered light, substrate
luminescence; Koch et al., J. Opt. Soc. Am. A 15, 1940, 1998). The model
here is radially symmetric, with unit 2-D integral:

    PSF(r) = (1 - w) G(r; sigma) + w T(r)
    G(r) = exp(-r^2 / (2 sigma^2)) / (2 pi sigma^2)
    T(r) = exp(-r / b) / (2 pi b^2)                     tail='exponential'
    T(r) = (1 + r^2 / g^2)^(-3/2) / (2 pi g^2)          tail='lorentzian'

whose line spread functions (projections) are a Gaussian,
|x| K1(|x| / b) / (pi b^2) and the Lorentzian g / (pi (g^2 + x^2)); the MTFs
are exp(-2 pi^2 sigma^2 f^2), (1 + (2 pi b f)^2)^(-3/2) and exp(-2 pi g f).

- :func:`model` renders the model on a pixel grid (pixel-integrated).
- :func:`from_point` takes a pinhole image.
- :func:`from_edge` takes a slanted-edge image: edge-spread function from
  the MTF module (:func:`scintomo.mtf.edge_profile`, ISO 12233 projection
  in 1/4-pixel bins), a fit of the model (convolved with the pixel
  aperture) with uncertainties, and the non-parametric radial profile by an
  inverse Abel transform of the line-spread function.
- :meth:`PSF.save` / :func:`load`: .npy with a JSON sidecar, or HDF5.

All lengths are micrometres (``*_um``) unless named ``*_px``; the arrays are
float32, odd-sized, centred, summing to 1.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ._validate import as_float32, check_memory, check_nonempty, choice, positive
from .exceptions import FileFormatError, NumericalError, ParameterError, ShapeError

__all__ = [
    "PSF",
    "PSFFit",
    "from_edge",
    "from_point",
    "line_spread",
    "load",
    "model",
    "radial_profile",
]

TAILS = ("exponential", "lorentzian")


@dataclass(frozen=True)
class PSFFit:
    """Fitted (or given) parameters of the core + tail model, in micrometres.

    ``*_err`` are one-standard-deviation uncertainties from the fit's
    covariance (NaN for a model given by hand). ``radius_um`` and
    ``profile`` hold the non-parametric radial PSF (per um^2) from the
    inverse Abel transform of the measured LSF, when there is one.
    """

    tail: str
    sigma_um: float
    tail_um: float
    tail_weight: float
    sigma_err_um: float = float("nan")
    tail_err_um: float = float("nan")
    tail_weight_err: float = float("nan")
    residual_rms: float = float("nan")
    radius_um: tuple[float, ...] = field(default=(), repr=False)
    profile: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class PSF:
    """A PSF on a pixel grid.

    Attributes
    ----------
    array : (k, k) ndarray of float32
        Odd-sized, centred at (k // 2, k // 2), sums to 1.
    pixel_size_um : float
        Pixel size of the grid, micrometres.
    fit : PSFFit or None
        Model parameters, if the PSF comes from a model or a fit.
    """

    array: np.ndarray
    pixel_size_um: float
    fit: PSFFit | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.array.shape

    def to_dict(self) -> dict:
        return {
            "shape": list(self.array.shape),
            "pixel_size_um": self.pixel_size_um,
            "fit": None if self.fit is None else self.fit.to_dict(),
        }

    def mtf(self, frequencies_cy_per_px) -> np.ndarray:
        """MTF along the x axis at ``frequencies_cy_per_px`` (of this array)."""
        lsf = self.array.sum(axis=0, dtype=np.float64)
        x = np.arange(lsf.size) - lsf.size // 2
        f = np.asarray(frequencies_cy_per_px, dtype=np.float64)
        return np.abs(np.exp(-2j * np.pi * f[..., None] * x) @ lsf)

    def plot(self, ax=None):
        """Radial cut (log scale) of the array, and the model if any."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        c = self.array.shape[0] // 2
        r = np.arange(self.array.shape[1] - c) * self.pixel_size_um
        ax.semilogy(
            r, np.clip(self.array[c, c:], 1e-12, None), "o", ms=3, label="PSF (row through centre)"
        )
        if self.fit is not None and self.fit.profile:
            pa = self.pixel_size_um**2
            ax.semilogy(
                self.fit.radius_um,
                np.clip(np.array(self.fit.profile) * pa, 1e-12, None),
                label="inverse Abel of the LSF",
            )
        ax.set_xlabel("radius (um)")
        ax.set_ylabel("fraction per pixel")
        ax.legend()
        return ax

    def save(self, path) -> Path:
        """Write to ``path``: ``.npy`` (+ ``.json`` sidecar) or ``.h5``/``.hdf5``."""
        return save(self, path)


def _params(sigma_um, tail, tail_um, tail_weight):
    sigma_um = positive(sigma_um, "sigma_um")
    choice(tail, "tail", TAILS)
    w = float(tail_weight)
    if not 0 <= w <= 1:
        raise ParameterError(f"tail_weight must be in [0, 1], got {tail_weight}")
    if w > 0:
        if tail_um is None:
            raise ParameterError("tail_um is needed when tail_weight > 0")
        tail_um = positive(tail_um, "tail_um")
    else:
        tail_um = float(tail_um) if tail_um is not None else 1.0
    return sigma_um, tail, tail_um, w


def radial_profile(r_um, *, sigma_um, tail="exponential", tail_um=None, tail_weight=0.0):
    """The model PSF at radius ``r_um`` (per um^2; 2-D integral 1)."""
    s, tail, t, w = _params(sigma_um, tail, tail_um, tail_weight)
    r = np.asarray(r_um, dtype=np.float64)
    core = np.exp(-(r**2) / (2 * s * s)) / (2 * np.pi * s * s)
    if tail == "exponential":
        halo = np.exp(-r / t) / (2 * np.pi * t * t)
    else:
        halo = (1 + (r / t) ** 2) ** -1.5 / (2 * np.pi * t * t)
    return (1 - w) * core + w * halo


def line_spread(x_um, *, sigma_um, tail="exponential", tail_um=None, tail_weight=0.0):
    """The model's line spread function at ``x_um`` (per um; integral 1)."""
    from scipy.special import k1

    s, tail, t, w = _params(sigma_um, tail, tail_um, tail_weight)
    x = np.abs(np.asarray(x_um, dtype=np.float64))
    core = np.exp(-(x**2) / (2 * s * s)) / (np.sqrt(2 * np.pi) * s)
    if tail == "exponential":
        u = x / t
        with np.errstate(invalid="ignore", over="ignore"):
            halo = np.where(u > 1e-8, u * k1(np.maximum(u, 1e-300)), 1.0) / (np.pi * t)
        halo = np.nan_to_num(halo)
    else:
        halo = t / (np.pi * (t * t + x * x))
    return (1 - w) * core + w * halo


#: Half-size (px) of the largest default model grid (255 px).
MAX_DEFAULT_HALF = 127


def _default_size_px(s, tail, t, w, px) -> int:
    r = 4 * s
    if w > 0:
        r = max(r, (10 * t) if tail == "exponential" else 30 * t)
    half = min(r / px, MAX_DEFAULT_HALF)
    return 2 * int(np.ceil(half)) + 1


def model(
    *,
    sigma_um: float,
    tail: str = "exponential",
    tail_um: float | None = None,
    tail_weight: float = 0.0,
    pixel_size_um: float = 1.0,
    size: int | None = None,
    oversample: int = 7,
) -> PSF:
    """Render the core + tail model on a pixel grid.

    Parameters
    ----------
    sigma_um : float
        Standard deviation of the Gaussian core, micrometres.
    tail : {'exponential', 'lorentzian'}
    tail_um : float
        Tail length: b of exp(-r / b), or the half-width g of the Lorentzian.
    tail_weight : float
        Fraction w of the light in the tail, 0..1.
    pixel_size_um : float
        Pixel size, micrometres.
    size : int, optional
        Odd array size (default: covers 4 sigma and 10 b or 30 g, at most
        255). The truncated part of the tail is dropped and the array
        renormalised to unit sum. Without ``size``, a core wider than the
        default grid (3 sigma > 127 px) is refused (ParameterError) rather
        than cropped to a flat box.
    oversample : int
        Sub-samples per pixel and axis (pixel-integrated values).
    """
    s, tail, t, w = _params(sigma_um, tail, tail_um, tail_weight)
    px = positive(pixel_size_um, "pixel_size_um")
    if size is None:
        if 3 * s / px > MAX_DEFAULT_HALF:
            # The default grid (<= 255 px) would hold a flat crop of the core:
            # a box, not this model.
            raise ParameterError(
                f"sigma_um = {sigma_um!r} is {s / px:.3g} px at pixel_size_um = {px:g}: the "
                f"Gaussian core does not fit the default {2 * MAX_DEFAULT_HALF + 1} px grid "
                f"(3 sigma must be <= {MAX_DEFAULT_HALF} px); give a larger pixel size or an "
                "explicit size"
            )
        size = _default_size_px(s, tail, t, w, px)
    try:
        ok = float(size).is_integer() and size >= 1 and size % 2 == 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ParameterError(f"size must be an odd positive integer, got {size!r}")
    size = int(size)
    check_memory(8.0 * size * size * (1 + int(oversample) ** 2), f"size = {size}")
    o = int(oversample)
    if o < 1:
        raise ParameterError("oversample must be >= 1")
    c = size // 2
    sub = (np.arange(size * o) + 0.5) / o - 0.5 - c  # sub-sample centres, pixels
    # separable in x and y only for the core; evaluate on the full sub-grid
    xx = sub[None, :] * px
    arr = np.empty((size, size))
    with np.errstate(all="ignore"):  # under/overflow is refused just below
        for i in range(size):
            yy = sub[i * o : (i + 1) * o, None] * px
            v = radial_profile(np.hypot(xx, yy), sigma_um=s, tail=tail, tail_um=t, tail_weight=w)
            arr[i] = v.reshape(o, size, o).mean(axis=(0, 2))
        total = arr.sum()
    if not (np.isfinite(total) and total > 0 and np.all(np.isfinite(arr))):
        # a core or tail so narrow or wide that the density under- or
        # overflows float64 (e.g. sigma_um = 1e-200 or 1e200)
        raise ParameterError(
            f"sigma_um = {sigma_um!r} / tail_um = {tail_um!r} give no finite PSF on a "
            f"{size} px grid of {px:g} um pixels"
        )
    arr /= total
    return PSF(arr.astype(np.float32), px, PSFFit(tail, s, t, w))


def _centred_crop(a: np.ndarray, cy: float, cx: float, size: int) -> np.ndarray:
    from scipy import ndimage

    c = size // 2
    h, w = a.shape
    # shift so that (cy, cx) falls on integer (ic, jc), then crop
    ic, jc = int(round(cy)), int(round(cx))
    if ic - c < 0 or jc - c < 0 or ic + c >= h or jc + c >= w:
        raise ShapeError(
            f"a {size} x {size} PSF around ({cy:.1f}, {cx:.1f}) does not fit the {h} x {w} image"
        )
    sh = ndimage.shift(a, (ic - cy, jc - cx), order=3, mode="nearest")
    return sh[ic - c : ic + c + 1, jc - c : jc + c + 1]


def from_point(
    image, *, pixel_size_um: float = 1.0, size: int | None = None, background=None
) -> PSF:
    """PSF from the image of a point source (pinhole, small particle).

    The background (default: median of the image's outer 10% border) is
    subtracted, the centroid of the peak region (pixels above half of the
    maximum and their surroundings) is moved to the centre by cubic
    interpolation, negative values are set to 0 and the result is
    normalised to unit sum.

    Parameters
    ----------
    image : (H, W) array_like
    pixel_size_um : float
    size : int, optional
        Odd output size (default: the largest odd square that fits around
        the peak, at most 127).
    background : float, optional
    """
    a = np.asarray(as_float32(image, "image"), dtype=np.float64)
    if a.ndim != 2:
        raise ShapeError(f"image must be 2-D, got shape {a.shape}")
    check_nonempty(a, "image")
    if not np.all(np.isfinite(a)):
        raise ParameterError("image contains NaN or inf")
    px = positive(pixel_size_um, "pixel_size_um")
    h, w = a.shape
    if background is None:
        bh, bw = max(1, h // 10), max(1, w // 10)
        border = np.concatenate(
            [a[:bh].ravel(), a[-bh:].ravel(), a[:, :bw].ravel(), a[:, -bw:].ravel()]
        )
        background = float(np.median(border))
    a = a - float(background)
    peak = np.unravel_index(np.argmax(a), a.shape)
    if not a[peak] > 0:
        raise NumericalError("no peak above the background")
    # centroid weighted by a Gaussian window centred on the current estimate:
    # for a symmetric PSF the true centre is the fixed point (a window fixed
    # on the peak pixel would be lopsided and pull towards it)
    r = 6
    y0, y1 = max(0, peak[0] - r), min(h, peak[0] + r + 1)
    x0, x1 = max(0, peak[1] - r), min(w, peak[1] + r + 1)
    win = np.clip(a[y0:y1, x0:x1], 0, None)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    cy, cx = float(peak[0]), float(peak[1])
    for _ in range(20):
        g = win * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.0**2))
        cy, cx = float((g * yy).sum() / g.sum()), float((g * xx).sum() / g.sum())
    if size is None:
        half = int(min(cy, cx, h - 1 - cy, w - 1 - cx)) - 1
        size = 2 * max(0, min(half, 63)) + 1
    if int(size) != size or size < 1 or size % 2 == 0:
        raise ParameterError(f"size must be an odd positive integer, got {size!r}")
    crop = np.clip(_centred_crop(a, cy, cx, int(size)), 0, None)
    s = crop.sum()
    if not s > 0:
        raise NumericalError("the PSF is zero after background subtraction")
    return PSF((crop / s).astype(np.float32), px, None)


# --- slanted edge ------------------------------------------------------------------------------


def _esf_model(x_px, x0, lo, hi, sigma, t, w, tail, fine=0.05):
    """ESF of the model (pixel units) including the 1-pixel aperture.

    The LSF is integrated on [-span, span] only; the mass it has outside
    (large for a Lorentzian tail: its ESF approaches the plateaus as
    g / (pi x)) is put back as the symmetric LSF's constant lower tail,
    not by rescaling the integral to 1, which would bend the model's ESF
    onto the plateaus inside the field and bias the tail's width and weight.
    """
    span = np.max(np.abs(x_px - x0)) + 2
    g = np.arange(-span, span + fine, fine)
    lsf = line_spread(g, sigma_um=sigma, tail=tail, tail_um=t, tail_weight=w)
    inside = float(np.sum(lsf) * fine)
    # pixel aperture: average over one pixel
    n = int(round(1 / fine))
    ker = np.ones(n) / n
    lsf = np.convolve(lsf, ker, mode="same")
    cdf = 0.5 * max(1.0 - inside, 0.0) + (np.cumsum(lsf) - 0.5 * lsf) * fine
    return lo + (hi - lo) * np.interp(x_px - x0, g, cdf)


def _inverse_abel(x: np.ndarray, lsf: np.ndarray):
    """f(r) = -(1/pi) int_r^inf L'(x) / sqrt(x^2 - r^2) dx on a uniform grid x >= 0."""
    dx = x[1] - x[0]
    dl = np.gradient(lsf, dx)
    r = x
    f = np.zeros_like(r)
    for i, ri in enumerate(r):
        xm = x[i:] + dx / 2  # midpoints avoid the singularity at x = r
        dm = np.interp(xm, x, dl)
        f[i] = -np.sum(dm / np.sqrt(xm**2 - ri**2)) * dx / np.pi
    return r, f


def from_edge(
    image,
    *,
    pixel_size_um: float = 1.0,
    tail: str = "exponential",
    size: int | None = None,
    roi=None,
    warn: bool = True,
    n_threads: int | None = None,
) -> PSF:
    """PSF from a slanted-edge image (edge within about 2-10 degrees of the
    column or the row axis; a wide field so that the tails are seen).

    Parameters
    ----------
    image : (H, W) array_like
        Flat-field corrected image of an opaque edge.
    pixel_size_um : float
    tail : {'exponential', 'lorentzian'}
        Tail model to fit.
    size : int, optional
        Odd size of the returned array (default as :func:`model`).
    roi : (r0, r1, c0, c1), optional
        Rows and columns (half-open) holding the edge.
    warn : bool
        Let :func:`scintomo.mtf.edge_profile` warn about bad edge angles,
        low contrast or clipping.
    n_threads : int, optional

    Returns
    -------
    PSF
        ``array`` rendered from the fitted model; ``fit`` holds the fitted
        parameters (micrometres) with their uncertainties and the
        non-parametric radial profile (inverse Abel of the measured LSF).
    """
    from scipy.optimize import curve_fit

    choice(tail, "tail", TAILS)
    px = positive(pixel_size_um, "pixel_size_um")
    from .mtf import edge_profile

    a = np.asarray(as_float32(image, "image"), dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 16:
        raise ShapeError(f"image must be 2-D and at least 16 x 16, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ParameterError("image contains NaN or inf")
    # The MTF module's ESF (ISO 12233 projection, refined edge line, 1/4 px
    # bins along the rows; orientation handled there); its x is the offset
    # along the rows, cos(angle) times that is the distance to the edge.
    prof = edge_profile(a, roi=roi, warn=warn, n_threads=n_threads)
    x = np.asarray(prof.x_px, dtype=np.float64) * np.cos(prof.angle_rad)
    esf = np.asarray(prof.esf, dtype=np.float64)
    if esf[0] > esf[-1]:
        esf = esf[::-1]
        x = -x[::-1]
    lo0, hi0 = float(np.median(esf[:10])), float(np.median(esf[-10:]))
    if not hi0 - lo0 > 3 * prof.noise / np.sqrt(max(prof.rows_used, 1)):
        raise NumericalError(
            f"no edge: the two sides of the profile differ by {hi0 - lo0:.3g} gray values "
            f"(pixel noise {prof.noise:.3g})"
        )
    mid = lo0 + 0.5 * (hi0 - lo0)
    x00 = float(x[np.argmin(np.abs(esf - mid))])
    # widths: 10-90% distance as a scale
    q = (esf - lo0) / (hi0 - lo0)
    x10, x90 = x[np.argmax(q > 0.1)], x[np.argmax(q > 0.9)]
    sc = max(float(x90 - x10) / 2.56, 0.3)

    def f(xv, x0, lo, hi, s, t, w):
        return _esf_model(xv, x0, lo, hi, s, t, w, tail)

    best = None
    for t0 in (2 * sc, 5 * sc, 12 * sc):
        for w0 in (0.1, 0.3, 0.6):
            try:
                p, cov = curve_fit(
                    f,
                    x,
                    esf,
                    p0=[x00, lo0, hi0, sc * 0.7, t0, w0],
                    bounds=(
                        [x.min(), -np.inf, -np.inf, 0.05, 0.05, 0.0],
                        [x.max(), np.inf, np.inf, 50 * sc + 10, 1e3, 1.0],
                    ),
                    maxfev=4000,
                )
            except (RuntimeError, ValueError):
                continue
            res = float(np.sqrt(np.mean((f(x, *p) - esf) ** 2)))
            if best is None or res < best[2]:
                best = (p, cov, res)
    if best is None:
        raise NumericalError("the PSF model could not be fitted to the edge")
    p, cov, res = best
    err = (
        np.sqrt(np.clip(np.diag(cov), 0, None)) if np.all(np.isfinite(cov)) else np.full(6, np.nan)
    )
    x0, lo, hi, s, t, w = p

    # Non-parametric radial profile: LSF from the ESF (central difference),
    # symmetrised about the fitted centre, inverse Abel transform.
    e = (esf - lo) / (hi - lo)
    lsf = np.gradient(e, x)
    xr = np.arange(0, min(x.max() - x0, x0 - x.min()), 0.25)
    if xr.size < 8:
        raise NumericalError(
            f"the fitted edge centre ({x0:.3g} px) leaves under 2 px on one side of the "
            "profile: is there an edge in the image?"
        )
    ls = 0.5 * (np.interp(x0 + xr, x, lsf) + np.interp(x0 - xr, x, lsf))
    # the derivative of a noisy ESF is noisy: smooth over half a pixel
    from scipy.ndimage import gaussian_filter1d

    ls = gaussian_filter1d(ls, 2.0, mode="nearest")
    r_px, prof = _inverse_abel(xr, ls)
    fit = PSFFit(
        tail,
        float(s * px),
        float(t * px),
        float(w),
        float(err[3] * px),
        float(err[4] * px),
        float(err[5]),
        float(res / abs(hi - lo)),
        tuple((r_px * px).tolist()),
        tuple((prof / px**2).tolist()),
    )
    rendered = model(
        sigma_um=fit.sigma_um,
        tail=tail,
        tail_um=fit.tail_um,
        tail_weight=fit.tail_weight,
        pixel_size_um=px,
        size=size,
    )
    return PSF(rendered.array, px, fit)


# --- files -------------------------------------------------------------------------------------


def _meta(psf: PSF) -> dict:
    return {
        "format": "scintomo.psf/1",
        "pixel_size_um": psf.pixel_size_um,
        "fit": None if psf.fit is None else psf.fit.to_dict(),
    }


def save(psf: PSF, path) -> Path:
    """Write a PSF atomically: ``.npy`` plus ``<name>.json``, or ``.h5``/``.hdf5``."""
    from .io.atomic import atomic_path

    path = Path(path)
    suf = path.suffix.lower()
    meta = _meta(psf)
    if suf == ".npy":
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(psf.array, np.float32))
        side = path.with_suffix(".json")
        with atomic_path(side) as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
    elif suf in (".h5", ".hdf5", ".hdf"):
        import h5py

        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            ds = f.create_dataset("psf", data=np.asarray(psf.array, np.float32))
            ds.attrs["pixel_size_um"] = psf.pixel_size_um
            ds.attrs["meta"] = json.dumps(meta)
    else:
        raise ParameterError(f"PSF files are .npy (+ .json) or .h5/.hdf5, not {path.name!r}")
    return path


def load(path) -> PSF:
    """Read a PSF written by :func:`save` (or a bare .npy, pixel size 1 um)."""
    path = Path(path)
    suf = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(path)
    meta = None
    try:
        if suf == ".npy":
            arr = np.load(path, allow_pickle=False)
            side = path.with_suffix(".json")
            if side.exists():
                meta = json.loads(side.read_text())
        elif suf in (".h5", ".hdf5", ".hdf"):
            import h5py

            with h5py.File(path, "r") as f:
                if "psf" not in f:
                    raise FileFormatError(f"{path}: no 'psf' dataset")
                arr = f["psf"][()]
                meta = json.loads(f["psf"].attrs.get("meta", "null"))
        else:
            raise ParameterError(f"PSF files are .npy or .h5/.hdf5, not {path.name!r}")
    except (OSError, ValueError, json.JSONDecodeError) as e:
        if isinstance(e, (FileFormatError, ParameterError)):
            raise
        raise FileFormatError(f"{path}: cannot read a PSF ({e})") from None
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise FileFormatError(f"{path}: a PSF must be a finite 2-D array, got shape {arr.shape}")
    px = float(meta["pixel_size_um"]) if meta else 1.0
    fit = None
    if meta and meta.get("fit"):
        d = dict(meta["fit"])
        d["radius_um"] = tuple(d.get("radius_um", ()))
        d["profile"] = tuple(d.get("profile", ()))
        fit = PSFFit(**d)
    return PSF(arr, px, fit)
