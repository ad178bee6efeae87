"""Detector data with known answers, for :mod:`scintomo.detector`.

- :func:`photon_counting_flats`: an ideal photon counter (Poisson counts
  integrated over a square pixel aperture): NNPS = 1/q, DQE = sinc^2(a f).
- :func:`flat_dark_series`: flats and darks with a known gain pattern
  (PRNU), dark-signal pattern (DSNU), shot and read noise (EMVA 1288 model).
- :func:`afterglow_series`: a latent image read out as a decaying
  persistent-luminescence / afterglow series.
- :func:`lagged_sequence`: frames with the residual of earlier exposures.
- :func:`curved_film_image`: what a camera looking along z sees of a film
  bent around a cylinder (or any height profile) that carries a flat image.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ParameterError

__all__ = [
    "afterglow_series",
    "curved_film_image",
    "flat_dark_series",
    "lagged_sequence",
    "photon_counting_flats",
]


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def photon_counting_flats(shape, n_frames: int, *, fluence: float, pixel_size: float, seed=None):
    """Flat images of an ideal photon-counting detector.

    Each pixel counts the photons falling on its square aperture of side
    ``pixel_size``: Poisson with mean q a^2, independent between pixels.

    Parameters
    ----------
    shape : (H, W)
    n_frames : int
    fluence : float
        q, photons / mm^2.
    pixel_size : float
        a, micrometres.

    Returns
    -------
    (n_frames, H, W) ndarray of float32, counts.
    """
    a_mm = float(pixel_size) * 1e-3
    lam = float(fluence) * a_mm * a_mm
    if not lam > 0:
        raise ParameterError("fluence and pixel_size must be > 0")
    return _rng(seed).poisson(lam, size=(int(n_frames), *shape)).astype(np.float32)


def flat_dark_series(
    shape,
    n_frames: int,
    *,
    mean_electrons: float = 5000.0,
    prnu: float = 0.01,
    dsnu: float = 2.0,
    dark_level: float = 100.0,
    read_noise: float = 3.0,
    gain: float = 0.5,
    seed=None,
):
    """Flats and darks of a linear camera (EMVA 1288 model), in DN.

    y = gain * (Poisson(mu_e * (1 + prnu * g)) + N(0, read_noise^2)) + dark_level + dsnu * d

    with g, d fixed standard-normal patterns. Returns (flats, darks, truth)
    where truth holds the patterns and the spatial standard deviations of
    the noiseless dark pattern (DN) and of the relative gain.
    """
    rng = _rng(seed)
    g = rng.standard_normal(shape)
    d = rng.standard_normal(shape)
    resp = mean_electrons * (1.0 + prnu * g)
    dark_pattern = dark_level + dsnu * d
    n = int(n_frames)
    flats = gain * (
        rng.poisson(resp, size=(n, *shape)) + read_noise * rng.standard_normal((n, *shape))
    )
    flats += dark_pattern
    darks = gain * read_noise * rng.standard_normal((n, *shape)) + dark_pattern
    truth = {
        "dsnu_dn": float(np.std(dark_pattern)),
        "prnu": float(np.std(resp) / np.mean(resp)),
        "gain_pattern": 1.0 + prnu * g,
        "dark_pattern": dark_pattern,
    }
    return flats.astype(np.float32), darks.astype(np.float32), truth


def afterglow_series(
    latent,
    times,
    *,
    tau: float,
    model: str = "exponential",
    exponent: float = 1.0,
    offset: float = 0.0,
    poisson: bool = True,
    seed=None,
):
    """Frames latent * g(t) + offset (Poisson counts if ``poisson``).

    g(t) = exp(-t / tau) or (1 + t / tau)^(-exponent), g(0) = 1.

    Returns (T, H, W) float32.
    """
    t = np.asarray(times, dtype=float)
    if model == "exponential":
        g = np.exp(-t / tau)
    elif model == "hyperbolic":
        g = (1.0 + t / tau) ** (-exponent)
    else:
        raise ParameterError(f"model must be 'exponential' or 'hyperbolic', got {model!r}")
    lam = np.asarray(latent, dtype=float)[None] * g[:, None, None] + offset
    out = _rng(seed).poisson(lam) if poisson else lam
    return out.astype(np.float32)


def lagged_sequence(frames, lag):
    """Frames as a detector with lag records them: y_n = x_n + sum_k h_k x_{n-k}
    (h = ``lag``, h_1 first). Returns float32."""
    x = np.asarray(frames, dtype=np.float64)
    h = np.asarray(lag, dtype=np.float64)
    y = x.copy()
    for n in range(x.shape[0]):
        for k in range(1, min(n, h.size) + 1):
            y[n] += h[k - 1] * x[n - k]
    return y.astype(np.float32)


def curved_film_image(
    flat_image,
    *,
    radius: float | None = None,
    height=None,
    pixel_size: float = 1.0,
    supersample: int = 8,
):
    """What an orthographic camera along z records of a film carrying
    ``flat_image`` (in arc-length coordinates, pixel ``pixel_size`` um along
    the film) when the film is bent along its columns around a cylinder of
    ``radius`` um (apex at the middle column) or follows ``height`` (um, one
    value per column).

    The camera pixel at x integrates the film over its width, so each camera
    pixel is rendered from ``supersample`` sub-pixel samples. Returns the
    projected image (same shape, float32; zero beyond the film's edge).
    """
    img = np.asarray(flat_image, dtype=np.float64)
    h, w = img.shape
    c0 = (w - 1) / 2.0
    p = float(pixel_size)
    xs = ((np.arange(w * supersample) + 0.5) / supersample - 0.5 - c0) * p  # camera x, um
    if radius is not None:
        r = float(radius)
        inside = np.abs(xs) < r
        s = np.where(inside, r * np.arcsin(np.clip(xs / r, -1, 1)), np.inf)
    else:
        z = np.asarray(height, dtype=float)
        xc = (np.arange(w) - c0) * p
        slope = np.gradient(z, xc)
        ds = np.sqrt(1 + slope**2)
        s_of_x = np.concatenate([[0.0], np.cumsum(0.5 * (ds[1:] + ds[:-1]) * p)])
        s_of_x -= np.interp(0.0, xc, s_of_x)
        s = np.interp(xs, xc, s_of_x, left=np.inf, right=np.inf)
    col = s / p + c0  # film column under camera sample
    valid = np.isfinite(col) & (col >= 0) & (col <= w - 1)
    colc = np.where(valid, col, 0.0)
    i0 = np.clip(np.floor(colc).astype(int), 0, w - 2)
    fr = colc - i0
    vals = img[:, i0] * (1 - fr) + img[:, i0 + 1] * fr
    vals[:, ~valid] = 0.0
    return vals.reshape(h, w, supersample).mean(axis=2).astype(np.float32)
