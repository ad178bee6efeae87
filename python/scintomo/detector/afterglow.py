"""Afterglow and persistent-luminescence imaging.

A series of frames recorded after an X-ray exposure decays as

    y(t) = A g(t) + B,   g(t) = exp(-t / tau)               ('exponential')
                         g(t) = (1 + t / tau)^(-n)          ('hyperbolic', n fixed)
                         g(t) = sum_i w_i exp(-t / tau_i)   ('multiexponential')

:func:`afterglow` fits every pixel (Rust kernel: variable projection and a
golden-section search over ln tau), gives the decay-time map, and estimates
the latent image A by combining all frames with the decay of the mean curve:
for Poisson counts with a known shape g, the maximum-likelihood amplitude is
sum_t (y_t - B) / sum_t g(t), with variance A / sum_t g(t) instead of
A / g(t0) for the best single frame.

:func:`correct_lag` removes the residual of earlier exposures from each frame
with the recursive algorithm of Hsieh et al., Med. Phys. 27, 23 (2000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core
from .._validate import as_stack, check_finite, check_nonempty, choice, n_threads_arg, positive
from ..exceptions import NumericalError, ParameterError, ShapeError
from ._common import new_axes, result_dict

__all__ = ["Afterglow", "afterglow", "correct_lag", "lag_coefficients"]


@dataclass(frozen=True)
class Afterglow:
    """Per-pixel decay fit and latent image.

    Attributes
    ----------
    amplitude, tau, offset, rss : (H, W) ndarray of float32
        Per-pixel A, decay time (unit of ``times``; for 'multiexponential'
        the amplitude-weighted mean lifetime sum A_i tau_i / sum A_i), B and
        residual sum of squares.
    latent : (H, W) ndarray of float32
        Latent-image estimate: the signal at t = 0 from all frames.
    times, mean_curve : (T,) ndarray
        Frame times and the spatial mean of each frame.
    model : str
    global_taus, global_weights : tuple of float
        Decay time(s) and relative weights fitted to the mean curve.
    global_offset : float
    """

    amplitude: np.ndarray
    tau: np.ndarray
    offset: np.ndarray
    rss: np.ndarray
    latent: np.ndarray
    times: np.ndarray
    mean_curve: np.ndarray
    model: str
    exponent: float
    global_taus: tuple
    global_weights: tuple
    global_offset: float

    def decay(self, t) -> np.ndarray:
        """Normalised decay g(t) of the mean curve (g(0) = 1)."""
        return _shape(
            np.asarray(t, dtype=float),
            self.model,
            self.global_taus,
            self.global_weights,
            self.exponent,
        )

    def to_dict(self, *, include_maps: bool = False) -> dict:
        skip = () if include_maps else ("amplitude", "tau", "offset", "rss", "latent")
        d = result_dict(self, skip=skip)
        d["median_tau"] = float(np.median(self.tau))
        return d

    def plot(self, axes=None):
        axes = new_axes(axes, ncols=3)
        a0, a1, a2 = axes
        a0.plot(self.times, self.mean_curve, "o", ms=3, label="mean")
        fit = self.global_offset + self.decay(self.times) * float(np.mean(self.latent))
        a0.plot(self.times, fit, "-", label="fit")
        a0.set_xlabel("time")
        a0.set_ylabel("signal")
        a0.legend()
        im = a1.imshow(self.tau, cmap="magma")
        a1.set_title("decay time")
        a1.figure.colorbar(im, ax=a1)
        a2.imshow(self.latent, cmap="gray")
        a2.set_title("latent image")
        return axes


def _shape(t, model, taus, weights, exponent):
    if model == "exponential":
        return np.exp(-t / taus[0])
    if model == "hyperbolic":
        return (1.0 + t / taus[0]) ** (-exponent)
    return sum(w * np.exp(-t / tau) for w, tau in zip(weights, taus, strict=True))


def _fit_mean_multiexp(t, y, n, offset):
    """Fit sum_i a_i exp(-t/tau_i) (+ b) to the mean curve; taus log-spaced start."""
    from scipy.optimize import least_squares

    span = t[-1] - t[0]
    dt = np.min(np.diff(t))
    tau0 = np.geomspace(max(dt, span / 50), span, n)

    def basis(logtau):
        cols = [np.exp(-t[:, None] / np.exp(logtau)[None, :])]
        if offset:
            cols.append(np.ones((t.size, 1)))
        return np.hstack(cols)

    def resid(logtau):
        m = basis(logtau)
        coef, *_ = np.linalg.lstsq(m, y, rcond=None)
        return m @ coef - y

    r = least_squares(resid, np.log(tau0), bounds=(np.log(dt / 20), np.log(span * 50)))
    m = basis(r.x)
    coef, *_ = np.linalg.lstsq(m, y, rcond=None)
    taus = np.exp(r.x)
    amps = coef[:n]
    b = float(coef[n]) if offset else 0.0
    order = np.argsort(taus)
    return taus[order], amps[order], b


def afterglow(
    frames,
    times,
    *,
    model: str = "exponential",
    exponent: float = 1.0,
    n_components: int = 2,
    offset: bool = True,
    tau_range: tuple[float, float] | None = None,
    rel_tol: float = 1e-4,
    n_threads: int | None = None,
) -> Afterglow:
    """Fit the afterglow decay of every pixel and estimate the latent image.

    Parameters
    ----------
    frames : (T, H, W) array_like
        Frames after the exposure (signal linear in light, dark not
        necessarily subtracted: see ``offset``).
    times : (T,) array_like
        Frame times after the end of the exposure (any unit; ``tau`` comes out
        in it), strictly increasing, >= 0 for 'hyperbolic'.
    model : {'exponential', 'hyperbolic', 'multiexponential'}
        Per-pixel A exp(-t/tau) + B; A (1 + t/tau)^(-exponent) + B; or
        ``n_components`` exponentials whose decay times are fitted to the mean
        curve and whose amplitudes are fitted per pixel (linear least squares).
    exponent : float
        n of the hyperbolic model (1: second-order kinetics).
    offset : bool
        Fit a constant B (dark level, long-lived component) per pixel.
    tau_range : (float, float), optional
        Search bracket for tau (default: 1/20 of the shortest frame interval
        to 50 times the series length).
    rel_tol : float
        Relative precision of tau.

    Returns
    -------
    Afterglow
    """
    choice(model, "model", ("exponential", "hyperbolic", "multiexponential"))
    stack, was2d = as_stack(frames, "frames")
    if was2d:
        raise ShapeError("afterglow needs a (T, H, W) series of frames")
    check_nonempty(stack, "frames")
    check_finite(stack, "frames")
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size != stack.shape[0]:
        raise ShapeError(
            f"times must have one value per frame ({stack.shape[0]}), got shape {t.shape}"
        )
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ParameterError("times must be finite and strictly increasing")
    exponent = positive(exponent, "exponent")
    span = float(t[-1] - t[0])
    dt = float(np.min(np.diff(t))) if t.size > 1 else 1.0
    lo, hi = tau_range if tau_range is not None else (dt / 20.0, 50.0 * span)
    lo, hi = positive(lo, "tau_range[0]"), positive(hi, "tau_range[1]")
    if not lo < hi:
        raise ParameterError(f"tau_range must be increasing, got {tau_range}")
    nt = n_threads_arg(n_threads)
    mean_curve = stack.reshape(stack.shape[0], -1).mean(axis=1, dtype=np.float64)

    if model == "multiexponential":
        n = int(n_components)
        if not 1 <= n <= 4 or t.size < 2 * n + 2:
            raise ParameterError(f"n_components must be 1..4 with at least {2 * n + 2} frames")
        taus, amps, b = _fit_mean_multiexp(t, mean_curve, n, offset)
        basis = np.exp(-t[:, None] / taus[None, :])
        if offset:
            basis = np.hstack([basis, np.ones((t.size, 1))])
        y = stack.reshape(stack.shape[0], -1).astype(np.float64)
        coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
        fitted = basis @ coef
        rss = np.sum((y - fitted) ** 2, axis=0)
        a = coef[:n]
        amp_total = a.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau_map = np.where(amp_total != 0, (a * taus[:, None]).sum(axis=0) / amp_total, np.nan)
        hw = stack.shape[1:]
        amplitude = amp_total.reshape(hw).astype(np.float32)
        tau = tau_map.reshape(hw).astype(np.float32)
        off = (coef[n] if offset else np.zeros(y.shape[1])).reshape(hw).astype(np.float32)
        rss = rss.reshape(hw).astype(np.float32)
        weights = amps / amps.sum() if amps.sum() != 0 else amps
        g_taus, g_w, g_b = tuple(float(v) for v in taus), tuple(float(v) for v in weights), b
    else:
        kw: dict[str, Any] = dict(
            model=model,
            exponent=exponent,
            offset=bool(offset),
            k_min=1.0 / hi,
            k_max=1.0 / lo,
            rel_tol=float(rel_tol),
            n_threads=nt,
        )
        if model == "hyperbolic" and t[0] < 0:
            raise ParameterError(
                "hyperbolic decay needs times >= 0 (time since the exposure ended)"
            )
        ga, gt, gb, _ = _core.decay_fit(mean_curve.reshape(-1, 1, 1), t.tolist(), **kw)
        amplitude, tau, off, rss = _core.decay_fit(stack, t.tolist(), **kw)
        g_taus, g_w, g_b = (float(gt[0, 0]),), (1.0,), float(gb[0, 0])
    g = _shape(t, model, g_taus, g_w, exponent)
    sg = float(np.sum(g))
    if not sg > 0:
        raise NumericalError(
            "the fitted decay is zero over the series; cannot estimate the latent image"
        )
    # Poisson ML amplitude with a known decay shape (see the module docstring)
    latent = ((stack.sum(axis=0, dtype=np.float64) - t.size * g_b) / sg).astype(np.float32)
    return Afterglow(
        amplitude=amplitude,
        tau=tau,
        offset=off,
        rss=rss,
        latent=latent,
        times=t,
        mean_curve=mean_curve,
        model=model,
        exponent=exponent,
        global_taus=g_taus,
        global_weights=g_w,
        global_offset=float(g_b),
    )


def lag_coefficients(decay, *, frame_time: float, n: int, first_fraction: float) -> np.ndarray:
    """Lag impulse response h_1..h_n for :func:`correct_lag` from a decay.

    h_k = first_fraction * g(k dt) / g(dt): the residual, k frames later, of a
    unit exposure, scaled so that the next frame keeps ``first_fraction`` of
    it (measured, e.g., as first dark frame / last exposed frame).

    Parameters
    ----------
    decay : Afterglow or callable
        Normalised decay g(t) (an :class:`Afterglow`'s ``decay`` is used).
    frame_time : float
        Frame interval, in the decay's time unit.
    """
    g = decay.decay if isinstance(decay, Afterglow) else decay
    dt = positive(frame_time, "frame_time")
    positive(first_fraction, "first_fraction", allow_zero=True)
    k = np.arange(1, int(n) + 1) * dt
    gk = np.asarray(g(k), dtype=float)
    if not gk[0] > 0:
        raise NumericalError("the decay is zero one frame after the exposure")
    return first_fraction * gk / gk[0]


def correct_lag(frames, lag) -> np.ndarray:
    """Remove earlier exposures' residual signal from each frame.

    Model: y_n = x_n + sum_k h_k x_{n-k}; recovered recursively
    x_n = y_n - sum_k h_k x_{n-k} (Hsieh et al., Med. Phys. 27, 23, 2000).

    Parameters
    ----------
    frames : (N, H, W) array_like
        Consecutive frames (the first one without residual).
    lag : (K,) array_like
        h_1..h_K, residual fractions 1..K frames later (see
        :func:`lag_coefficients`).

    Returns
    -------
    (N, H, W) ndarray of float32
    """
    stack, was2d = as_stack(frames, "frames")
    check_finite(stack, "frames")
    h = np.asarray(lag, dtype=np.float64).ravel()
    if h.size == 0 or not np.all(np.isfinite(h)):
        raise ParameterError("lag must be a non-empty array of finite fractions")
    x = np.empty(stack.shape, dtype=np.float64)
    for n in range(stack.shape[0]):
        acc = stack[n].astype(np.float64)
        for k in range(1, min(n, h.size) + 1):
            acc -= h[k - 1] * x[n - k]
        x[n] = acc
    out = x.astype(np.float32)
    return out[0] if was2d else out
