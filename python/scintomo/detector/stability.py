"""Radiation stability: signal vs time under continuous irradiation, and over
repeated on/off cycles. Decay fitted as S(t) = S_inf + (S_0 - S_inf) exp(-t/tau)
(with the Rust variable-projection kernel, so it cannot diverge)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from ..exceptions import ParameterError, ShapeError
from ._common import new_axes, result_dict

__all__ = ["Stability", "stability"]


@dataclass(frozen=True)
class Stability:
    """Stability figures.

    Attributes
    ----------
    retained_fraction : float
        Fitted S(t_end) / S(t_start) (continuous), or last / first cycle mean
        (cycles).
    retained_fraction_raw : float
        Same from the data: mean of the last 5% / first 5% of the (on) samples.
    decay_constant : float
        tau of the exponential fit (unit of ``times``); inf when the fitted
        tau exceeds 100 times the series length or the fitted change is below
        1e-6 of the level (no significant decay).
    cycle_levels : (C,) ndarray or None
        Mean on-signal of each cycle minus the mean off-signal.
    """

    times: np.ndarray
    signals: np.ndarray
    retained_fraction: float
    retained_fraction_raw: float
    decay_constant: float
    plateau: float
    initial: float
    cycle_times: np.ndarray | None
    cycle_levels: np.ndarray | None

    def to_dict(self) -> dict:
        return result_dict(self)

    def plot(self, ax=None):
        ax = new_axes(ax)
        ax.plot(self.times, self.signals, ".", ms=3, label="signal")
        if self.cycle_levels is not None:
            ax.plot(self.cycle_times, self.cycle_levels, "o-", label="cycle level")
        elif np.isfinite(self.decay_constant):
            t = self.times - self.times[0]
            ax.plot(
                self.times,
                self.plateau + (self.initial - self.plateau) * np.exp(-t / self.decay_constant),
                "-",
                label=f"fit, tau = {self.decay_constant:.3g}",
            )
        ax.set_xlabel("time")
        ax.set_ylabel("signal")
        ax.set_title(f"retained {100 * self.retained_fraction:.1f}%")
        ax.legend()
        return ax


def _fit(t, y):
    """(initial, plateau, tau) of y = B + A exp(-(t - t0)/tau)."""
    t0 = t - t[0]
    span = max(t0[-1], 1e-300)
    dt = float(np.min(np.diff(t0)))
    a, tau, b, _ = _core.decay_fit(
        y.reshape(-1, 1, 1).astype(np.float64),
        t0.tolist(),
        model="exponential",
        exponent=1.0,
        offset=True,
        k_min=1.0 / (1000.0 * span),
        k_max=1.0 / (dt / 20.0),
        rel_tol=1e-6,
    )
    a, tau, b = float(a[0, 0]), float(tau[0, 0]), float(b[0, 0])
    change = abs(a * (1.0 - np.exp(-span / tau)))
    if tau > 100.0 * span or change <= 1e-6 * abs(float(np.mean(y))):
        # no decay visible (or none at all): report the mean level
        return float(np.mean(y)), float(np.mean(y)), float("inf")
    return a + b, b, tau


def stability(times, signals, *, on=None) -> Stability:
    """Stability under irradiation.

    Parameters
    ----------
    times : (N,) array_like
        Time of each sample, increasing (any unit).
    signals : (N,) array_like
        Signal (e.g. RL intensity or mean image value).
    on : (N,) array_like of bool, 'auto', or None
        Beam on/off state of each sample for cycle measurements; 'auto'
        thresholds at 10% of the way from the 5th to the 95th percentile. None: one
        continuous irradiation.
    """
    t = np.asarray(times, dtype=float)
    y = np.asarray(signals, dtype=float)
    if t.ndim != 1 or t.shape != y.shape or t.size < 4:
        raise ShapeError("times and signals must be 1-D arrays of the same length >= 4")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise ParameterError("times and signals must be finite")
    if np.any(np.diff(t) <= 0):
        raise ParameterError("times must be strictly increasing")
    ct = cl = None
    if on is None:
        initial, plateau, tau = _fit(t, y)
        n5 = max(1, t.size // 20)
        raw = float(np.mean(y[-n5:]) / np.mean(y[:n5]))
        end = plateau + (initial - plateau) * (
            np.exp(-(t[-1] - t[0]) / tau) if np.isfinite(tau) else 1.0
        )
        retained = float(end / initial) if initial != 0 else float("nan")
    else:
        if isinstance(on, str):
            if on != "auto":
                raise ParameterError(f"on must be a boolean array, 'auto' or None, got {on!r}")
            lo, hi = np.percentile(y, [5, 95])
            mask = y > lo + 0.1 * (hi - lo)
        else:
            mask = np.asarray(on, dtype=bool)
            if mask.shape != t.shape:
                raise ShapeError("on must have one value per sample")
        edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
        starts, stops = edges[::2], edges[1::2]
        if starts.size < 2 or (~mask).sum() == 0:
            raise ParameterError(
                "cycle analysis needs at least two on periods and some off samples"
            )
        off_level = float(np.mean(y[~mask]))
        # skip the first and last sample of each on period (rise and fall)
        cl = np.array(
            [
                np.mean(y[a + 1 : b - 1] if b - a > 2 else y[a:b])
                for a, b in zip(starts, stops, strict=True)
            ]
        )
        cl = cl - off_level
        ct = np.array([np.mean(t[a:b]) for a, b in zip(starts, stops, strict=True)])
        retained = raw = float(cl[-1] / cl[0])
        if cl.size >= 3:
            initial, plateau, tau = _fit(ct, cl)
        else:
            initial, plateau, tau = float(cl[0]), float(cl[-1]), float("nan")
    return Stability(t, y, retained, raw, float(tau), float(plateau), float(initial), ct, cl)
