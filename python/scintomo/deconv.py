"""Deconvolution of projections and projection stacks by a scintillator PSF.

Two methods, both in Rust with the PSF's transform computed once per stack,
projections processed in parallel (one FFT workspace per thread), float32
throughout and the GIL released:

- :func:`richardson_lucy`: by default with non-circulant boundaries
  (Bertero and Boccacci, A&A 437, 369, 2005), Biggs-Andrews acceleration
  (Appl. Opt. 36, 1766, 1997), optional total-variation regularisation (Dey
  et al., Microsc. Res. Tech. 69, 260, 2006), a mask of invalid pixels that
  are filled in rather than smeared, and a stopping rule by the discrepancy
  principle with Poisson plus read noise. ``boundary='zero'`` reproduces
  ``skimage.restoration.richardson_lucy(..., clip=False)``.
- :func:`wiener`: Wiener/Tikhonov with a Laplacian regulariser; by default
  the image is padded by reflection and the pad tapered (Tukey) so the edges
  do not ring, and the balance is estimated from the noise.
  ``boundary='periodic'`` reproduces ``skimage.restoration.wiener(...,
  clip=False)``.

:func:`flatfield_deconvolved` does a whole scan in the right order: subtract
the darks, deconvolve projections and flats, divide, clip, -log. The blur of
the scintillator acts on the light intensity reaching the camera, i.e. on
P - D and F - D; it does not act on their ratio or its logarithm, so
deconvolving after the division (or after -log) applies the inverse of an
operator the data never went through (at an absorbing edge the ratio of two
blurred intensities is not a blurred ratio).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from . import _core
from ._validate import (
    as_float32,
    check_nonempty,
    check_result,
    choice,
    n_threads_arg,
    positive,
    scale_down,
)
from .exceptions import ParameterError, ScintomoWarning, ShapeError

__all__ = [
    "RLReport",
    "deconvolve",
    "estimate_balance",
    "estimate_noise",
    "flatfield_deconvolved",
    "richardson_lucy",
    "wiener",
]


@dataclass(frozen=True)
class RLReport:
    """What Richardson-Lucy did to each image of a stack.

    Attributes
    ----------
    iterations : tuple of int
        Updates applied to each image.
    stopped : tuple of bool
        Whether the discrepancy rule stopped the image (else the iteration cap).
    discrepancy : tuple of tuple of float
        Per image, mean((y - Hx)^2 / (gain Hx + read_noise^2)) of each
        estimate whose blur was computed (empty without a noise model).
    tau : float
        The discrepancy target.
    """

    iterations: tuple[int, ...]
    stopped: tuple[bool, ...]
    discrepancy: tuple[tuple[float, ...], ...]
    tau: float

    def to_dict(self) -> dict:
        return asdict(self)

    def plot(self, ax=None):
        """Discrepancy against iteration for each image (matplotlib axes)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        for i, d in enumerate(self.discrepancy):
            if d:
                label = f"image {i}" if len(self.discrepancy) < 8 else None
                ax.semilogy(np.arange(len(d)), d, label=label)
        ax.axhline(self.tau, color="k", ls="--", lw=0.8, label="tau")
        ax.set_xlabel("iteration")
        ax.set_ylabel("discrepancy (chi^2 per pixel)")
        ax.legend()
        return ax


def _psf_array(psf, *, normalize: bool) -> np.ndarray:
    arr = getattr(psf, "array", psf)
    k = np.array(as_float32(arr, "psf"), dtype=np.float32, order="C", copy=True)
    if k.ndim != 2:
        raise ShapeError(f"psf must be 2-D, got shape {k.shape}")
    check_nonempty(k, "psf")
    if not np.all(np.isfinite(k)):
        raise ParameterError("psf contains NaN or inf")
    if normalize:
        s = float(k.sum(dtype=np.float64))
        if not s > 0:
            raise ParameterError(f"psf must have a positive sum, got {s}")
        k /= s
    return k


def _stack(image, name="image") -> tuple[np.ndarray, bool]:
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ShapeError(f"{name} must be (H, W) or (N, H, W), got shape {arr.shape}")
    arr = as_float32(arr, name)
    check_nonempty(arr, name)
    was_2d = arr.ndim == 2
    st = arr[np.newaxis] if was_2d else arr
    return np.ascontiguousarray(st), was_2d


def _out(out, shape, stack) -> np.ndarray:
    if out is None:
        return np.empty(shape, np.float32)
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ParameterError("out must be a C-contiguous float32 numpy array")
    if out.shape != shape:
        raise ShapeError(f"out has shape {out.shape}, expected {shape}")
    if np.shares_memory(out, stack):
        raise ParameterError("out must not overlap the input")
    return out


def richardson_lucy(
    image,
    psf,
    *,
    iterations: int | None = None,
    boundary: str = "padded",
    accelerate: bool | None = None,
    tv: float = 0.0,
    mask=None,
    noise: tuple[float, float] | None = None,
    tau: float = 1.0,
    out: np.ndarray | None = None,
    n_threads: int | None = None,
    return_report: bool = False,
):
    """Richardson-Lucy deconvolution of an image or a stack of projections.

    Parameters
    ----------
    image : (H, W) or (N, H, W) array_like
        Blurred intensities (counts after dark subtraction; not ratios or
        -log values, see the module notes). Negative values count as 0; an
        image without any positive value is refused (ParameterError).
    psf : (kh, kw) array_like or :class:`scintomo.psf.PSF`
        Point spread function on the image's pixel grid, centre at
        ((kh-1)//2, (kw-1)//2). Normalised to unit sum with
        ``boundary='padded'``; used as given with ``boundary='zero'``.
    iterations : int, optional
        Number of iterations (>= 1), or the cap when ``noise`` is given.
        Default 30, or 100 with ``noise``.
    boundary : {'padded', 'zero'}
        'padded': Bertero-Boccacci non-circulant model (the object extends
        beyond the image by the PSF size; the update is normalised by H^T
        of the valid-pixel mask), starting from the data's mean.
        'zero': scikit-image's model (zero padding, 'same' convolutions,
        constant 0.5 start), for comparison; no acceleration, TV or mask.
    accelerate : bool, optional
        Biggs-Andrews vector extrapolation (default: on for 'padded').
    tv : float
        Total-variation weight lambda (Dey et al. 2006), in [0, 0.5); 0.002
        to 0.01 is typical. Dimensionless (the TV gradient does not depend
        on the data's scale).
    mask : (H, W) or (N, H, W) array_like of bool, optional
        True where a pixel is valid. Invalid pixels (dead, hot, saturated)
        are ignored by the data term and filled in from their neighbours.
    noise : (gain, read_noise), optional
        Noise model for the stopping rule: a pixel with mean m (image units)
        has variance gain * m + read_noise**2 (gain: image units per
        detected photon; read_noise: image units). The iterations stop at
        the first estimate x with mean((y - Hx)^2 / var) <= tau
        (discrepancy principle).
    tau : float
        Discrepancy target (1.0: the noise level).
    out : ndarray of float32, optional
        Where to write the result (the input's shape, C-contiguous).
    n_threads : int, optional
        Threads (default: all cores).
    return_report : bool
        Also return an :class:`RLReport`.

    Returns
    -------
    ndarray of float32, the input's shape (and an RLReport if asked).
    """
    choice(boundary, "boundary", ("padded", "zero"))
    n_threads = n_threads_arg(n_threads)
    if accelerate is None:
        accelerate = boundary == "padded"
    if iterations is None:
        iterations = 100 if noise is not None else 30
    if (
        isinstance(iterations, bool)
        or not isinstance(iterations, (int, np.integer))
        or iterations < 1
    ):
        # 0 would return the start image as if it were a deconvolution
        raise ParameterError(f"iterations must be an integer >= 1, got {iterations!r}")
    tv = positive(tv, "tv", allow_zero=True)
    if tv >= 0.5:
        raise ParameterError(f"tv must be < 0.5, got {tv}")
    nz = None
    if noise is not None:
        try:
            gain, rn = (float(v) for v in noise)
        except (TypeError, ValueError):
            raise ParameterError("noise must be a pair (gain, read_noise)") from None
        positive(gain, "noise gain", allow_zero=True)
        positive(rn, "read_noise", allow_zero=True)
        if gain == 0 and rn == 0:
            raise ParameterError("noise: gain and read_noise cannot both be 0")
        nz = (gain, rn)
        positive(tau, "tau")
    if boundary == "zero" and (accelerate or tv or mask is not None):
        raise ParameterError("boundary='zero' is scikit-image's model: no acceleration, TV or mask")
    stack, was_2d = _stack(image)
    k = _psf_array(psf, normalize=boundary == "padded")
    peaks = stack.reshape(stack.shape[0], -1).max(axis=1)
    if np.any(peaks <= 0):
        i = int(np.flatnonzero(peaks <= 0)[0])
        where = "the image" if was_2d else f"image {i} of the stack"
        raise ParameterError(
            f"{where} has no positive value (max {float(peaks[i]):g}): Richardson-Lucy "
            "needs non-negative intensities with some signal (dark-subtracted counts, "
            "not -log values)"
        )
    m = None
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool:
            raise ParameterError(f"mask must be boolean (True = valid), got dtype {m.dtype}")
        m = m[np.newaxis] if m.ndim == 2 else m
        if m.ndim != 3 or m.shape[1:] != stack.shape[1:] or m.shape[0] not in (1, stack.shape[0]):
            raise ShapeError(f"mask has shape {np.shape(mask)}; images are {stack.shape}")
        m = np.ascontiguousarray(m, dtype=np.uint8)
        if not m.any():
            raise ParameterError("mask marks every pixel invalid")
    res = _out(out, stack.shape if not was_2d else stack.shape[1:], stack)
    target = res[np.newaxis] if was_2d else res
    reps = _core.richardson_lucy(
        stack,
        k,
        target,
        m,
        iterations=int(iterations),
        boundary=boundary,
        accelerate=bool(accelerate),
        tv=float(tv),
        noise=nz,
        tau=float(tau),
        n_threads=n_threads_arg(n_threads),
    )
    check_result(res, "richardson_lucy")
    if return_report:
        rep = RLReport(
            tuple(r[0] for r in reps),
            tuple(r[1] for r in reps),
            tuple(tuple(r[2]) for r in reps),
            float(tau),
        )
        return res, rep
    return res


def estimate_noise(image) -> float:
    """Standard deviation of white noise in an image (Immerkaer, Computer
    Vision and Image Understanding 64, 300, 1996), in the image's units.

    Filters with the difference of two Laplacians, which cancels smooth
    structure, and averages the absolute response.
    """
    y = np.asarray(image, dtype=np.float64)
    if y.ndim == 3:
        y = y[0]
    if y.ndim != 2 or min(y.shape) < 3:
        raise ShapeError(f"noise estimation needs a 2-D image of at least 3 x 3, got {y.shape}")
    r = (
        y[:-2, :-2]
        - 2 * y[:-2, 1:-1]
        + y[:-2, 2:]
        - 2 * y[1:-1, :-2]
        + 4 * y[1:-1, 1:-1]
        - 2 * y[1:-1, 2:]
        + y[2:, :-2]
        - 2 * y[2:, 1:-1]
        + y[2:, 2:]
    )
    return float(np.sqrt(np.pi / 2) * np.mean(np.abs(r)) / 6.0)


def _tukey(n: int, frac: float = 0.25) -> np.ndarray:
    from scipy.signal.windows import tukey

    return tukey(n, frac)


def estimate_balance(image, psf) -> float:
    """Wiener balance (noise-to-signal ratio) for :func:`wiener`, from the data.

    Model: a signal spectrum c / |L(f)|^2 (L the Laplacian's transfer
    function, the regulariser), white noise of variance sigma^2 (Immerkaer's
    estimate); the periodogram of the (Tukey-windowed) image is
    |K|^2 c / |L|^2 + sigma^2, so c is the median of
    (P - sigma^2) |L|^2 / |K|^2 where |K|^2 > 0.1, and balance = sigma^2 / c.
    """
    y = np.asarray(image, dtype=np.float64)
    if y.ndim == 3:
        y = y[0]
    k = _psf_array(psf, normalize=True).astype(np.float64)
    h, w = y.shape
    # A central crop of at most 512 x 512 is plenty for a spectrum estimate.
    ch, cw = min(h, 512), min(w, 512)
    y = y[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
    sigma = estimate_noise(y)
    win = np.outer(_tukey(ch), _tukey(cw))
    p = np.abs(np.fft.rfft2((y - y.mean()) * win)) ** 2 / np.sum(win**2)
    kk = np.zeros((ch, cw))
    kh, kw = min(k.shape[0], ch), min(k.shape[1], cw)
    kk[:kh, :kw] = k[:kh, :kw]
    kf = np.abs(np.fft.rfft2(kk)) ** 2
    u = np.fft.fftfreq(ch)[:, None]
    v = np.fft.rfftfreq(cw)[None, :]
    lf = (4 - 2 * np.cos(2 * np.pi * u) - 2 * np.cos(2 * np.pi * v)) ** 2
    sel = (kf > 0.1) & (lf > 0)
    if sigma <= 0 or not sel.any():
        return 1e-6
    c = np.median(np.clip(p[sel] - sigma**2, 0, None) * lf[sel] / kf[sel])
    if not c > 0:
        return 1.0
    return float(sigma**2 / c)


def wiener(
    image,
    psf,
    *,
    balance: float | None = None,
    boundary: str = "reflect",
    pad: int | tuple[int, int] | None = None,
    out: np.ndarray | None = None,
    n_threads: int | None = None,
):
    """Wiener/Tikhonov deconvolution: X = conj(K) Y / (|K|^2 + balance |L|^2).

    Parameters
    ----------
    image : (H, W) or (N, H, W) array_like
        Blurred intensities.
    psf : (kh, kw) array_like or :class:`scintomo.psf.PSF`
        PSF on the image's pixel grid. Normalised to unit sum with
        ``boundary='reflect'``; used as given with ``'periodic'``.
    balance : float, optional
        Regularisation weight (noise-to-signal ratio). Default: estimated
        from the first image by :func:`estimate_balance`.
    boundary : {'reflect', 'periodic'}
        'reflect': the image minus its mean is padded by symmetric
        reflection (``pad`` pixels a side, default the PSF size) tapered to
        zero with a cosine ramp; PSF centre ((kh-1)//2, (kw-1)//2).
        'periodic': scikit-image's ``wiener`` (PSF centre (kh//2, kw//2)).
    pad : int or (int, int), pixels, optional
        Reflected pad a side for 'reflect' (default the PSF size); at most
        the image size or the PSF size, whichever is larger.
    out : ndarray of float32, optional
    n_threads : int, optional

    Returns
    -------
    ndarray of float32, the input's shape.
    """
    choice(boundary, "boundary", ("reflect", "periodic"))
    n_threads = n_threads_arg(n_threads)
    stack, was_2d = _stack(image)
    k = _psf_array(psf, normalize=boundary == "reflect")
    if balance is None:
        balance = estimate_balance(stack[0], k)
    balance = positive(balance, "balance", allow_zero=True)
    padv = None
    if pad is not None:
        pp = (pad, pad) if np.isscalar(pad) else tuple(pad)
        try:
            ok = len(pp) == 2 and all(float(p).is_integer() and p >= 0 for p in pp)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ParameterError(f"pad must be an integer >= 0 or a pair of them, got {pad!r}")
        padv = (int(pp[0]), int(pp[1]))
        (h, w), (kh, kw) = stack.shape[1:], k.shape
        if padv[0] > max(h, kh) or padv[1] > max(w, kw):
            raise ParameterError(
                f"pad {padv} must be at most the image size ({h}, {w}) or the PSF size "
                f"({kh}, {kw}), whichever is larger (a wider pad reflects the reflection)"
            )
    res = _out(out, stack.shape if not was_2d else stack.shape[1:], stack)
    target = res[np.newaxis] if was_2d else res
    # Linear in the image: data near the float32 maximum is scaled by a
    # power of two (exact) so the float32 FFTs cannot overflow.
    stack, scale = scale_down(stack, 2.0**64)
    _core.wiener(
        stack,
        k,
        target,
        balance=float(balance),
        boundary=boundary,
        pad=padv,
        n_threads=n_threads_arg(n_threads),
    )
    return check_result(res, "wiener", scale=scale)


def deconvolve(image, psf, *, method: str = "rl", **kwargs):
    """:func:`richardson_lucy` (``method='rl'``) or :func:`wiener`."""
    choice(method, "method", ("rl", "wiener"))
    return (richardson_lucy if method == "rl" else wiener)(image, psf, **kwargs)


def flatfield_deconvolved(
    projections,
    flats,
    darks,
    psf,
    *,
    method: str = "rl",
    log: bool = True,
    clip: tuple[float | None, float | None] | None = None,
    n_threads: int | None = None,
    **deconv_kwargs,
):
    """Flat-field correction with deconvolution in the right place.

    Order: subtract the dark, deconvolve projections and the (reduced) flat,
    divide, clip, -log. The scintillator blurs intensities, so the inverse
    is applied to P - D and F - D, never to their ratio (module notes).

    Parameters
    ----------
    projections : (N, H, W) array_like
        Raw projections (counts).
    flats, darks : (F, H, W) / (D, H, W) array_like; darks may be None
        Reduced by their mean.
    psf : array_like or :class:`scintomo.psf.PSF`
    method : {'rl', 'wiener'}
    log : bool
        Return -ln of the clipped ratio.
    clip : (lo, hi), optional
        Bounds of the ratio before -log (lower default 1e-6 with ``log``).
    **deconv_kwargs
        Passed to :func:`richardson_lucy` or :func:`wiener`.

    Returns
    -------
    (N, H, W) ndarray of float32
    """
    from . import flatfield

    nt = n_threads_arg(n_threads)
    proj, was_2d = _stack(projections, "projections")
    dark = None if darks is None else flatfield.reduce_frames(darks, n_threads=nt, what="darks")
    flat = flatfield.reduce_frames(flats, n_threads=nt, what="flats")
    if flat.shape != proj.shape[1:] or (dark is not None and dark.shape != proj.shape[1:]):
        raise ShapeError("projections, flats and darks must have the same image size")
    p = proj - dark if dark is not None else proj.copy()
    f = flat - dark if dark is not None else flat
    pd = deconvolve(p, psf, method=method, n_threads=nt, **deconv_kwargs)
    fd = deconvolve(f, psf, method=method, n_threads=nt, **deconv_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScintomoWarning)
        res = flatfield.correct(pd, fd, None, clip=clip, log=log, n_threads=nt)
    return res[0] if was_2d else res
