"""Dynamic flat-field correction with eigen flat fields (Van Nieuwenhove et al.,
"Dynamic intensity normalization using eigen flat fields in X-ray imaging",
Optics Express 23(21), 27975, 2015).

The flat behind projection j is not the mean flat: the source and the
scintillator film drift while the scan runs, and the flats taken before (or
between) the projections sample that drift. The method models every flat as

    F_j - D = mean_flat + sum_k w_jk * u_k

with ``u_k`` the principal components ("eigen flats") of the flat series,
and fits the weights ``w_j`` to each projection. Exposed as
:func:`scintomo.flatfield.dynamic`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._progress import progress
from ._validate import as_stack, check_finite, check_nonempty, choice
from .exceptions import NumericalError, ParameterError, ShapeError

__all__ = ["DynamicFlatField", "dynamic", "eigen_flats"]


@dataclass(frozen=True)
class DynamicFlatField:
    """The flat model of a dynamic flat-field correction.

    Attributes
    ----------
    dark : (H, W) ndarray of float32, counts
    mean_flat : (H, W) ndarray of float32, counts above the dark
    eigen_flats : (K, H, W) ndarray of float32, counts
        Principal components of the flats, each scaled to its RMS amplitude
        over the flat series (so weights are of order 1).
    eigenvalues : (F - 1,) ndarray of float64, counts^2
        Variance of the flat series along each principal component (the
        eigenvalues of the pixels' covariance matrix), largest first.
    n_components : int
        K, the components kept (given, or chosen by parallel analysis).
    weights : (N, K) ndarray of float64 or None
        Fitted weights of each projection (after :func:`dynamic`).
    method : str
        How the weights were fitted: 'tv' or 'air'.
    downsample : int
    basis : (F, K) ndarray of float64 or None
        The eigen flats as combinations of the centred flats:
        ``eigen_flats = basis.T @ (flats - dark - mean_flat)`` (pixels flattened). The
        same basis applied to other rows of the same flats gives those rows' eigen
        flats, so weights fitted on one band of rows hold for every block.
    """

    dark: np.ndarray
    mean_flat: np.ndarray
    eigen_flats: np.ndarray
    eigenvalues: np.ndarray
    n_components: int
    weights: np.ndarray | None = None
    method: str = "tv"
    downsample: int = 2
    basis: np.ndarray | None = None

    def flat(self, weights) -> np.ndarray:
        """The flat (above the dark) for one set of K weights, (H, W) float32."""
        w = np.asarray(weights, dtype=np.float64)
        return (self.mean_flat + np.tensordot(w, self.eigen_flats, axes=1)).astype(np.float32)

    def to_dict(self) -> dict:
        """What the output's provenance records (no images)."""
        return {
            "method": self.method,
            "n_components": int(self.n_components),
            "downsample": int(self.downsample),
            "eigenvalues": [float(v) for v in self.eigenvalues[: max(self.n_components, 1) + 2]],
        }


def _downsample(img: np.ndarray, d: int) -> np.ndarray:
    """Mean of d x d blocks (the trailing rows/columns that do not fill a block dropped)."""
    if d == 1:
        return img.astype(np.float64)
    *lead, h, w = img.shape
    h2, w2 = h // d, w // d
    v = img[..., : h2 * d, : w2 * d].astype(np.float64)
    return v.reshape(*lead, h2, d, w2, d).mean(axis=(-3, -1))


def _parallel_analysis(a: np.ndarray, eig: np.ndarray, rng, repeats: int = 20) -> int:
    """Components whose eigenvalue exceeds the 95th percentile of those of the same data
    with every pixel's values shuffled across the flats (Horn's parallel analysis, as
    Van Nieuwenhove et al. 2015 choose K)."""
    k, p = a.shape
    if p > 20000:  # a random subset of pixels estimates the noise eigenvalues as well
        a = a[:, rng.choice(p, 20000, replace=False)]
        eig = eig * (20000 / p)
    null = []
    for _ in range(repeats):
        shuffled = rng.permuted(a, axis=0)
        s = np.linalg.svd(shuffled - shuffled.mean(axis=0), compute_uv=False)
        null.append(s**2 / (k - 1))
    threshold = np.percentile(np.array(null), 95, axis=0)
    keep = 0
    for lam, t in zip(eig, threshold, strict=False):
        if lam <= t:
            break
        keep += 1
    return keep


def eigen_flats(flats, darks=None, *, n_components: int | None = None, seed: int = 0, basis=None):
    """Mean flat and eigen flats of a flat series.

    Parameters
    ----------
    flats : (F, H, W) array_like, counts
        At least 3 flats, taken while the beam drifts as it does during the scan.
    darks : (D, H, W) or (H, W) array_like, optional
        Their mean is subtracted (``None``: zero).
    n_components : int, optional
        Eigen flats kept. Default: parallel analysis.
    seed : int
        Seed of the shuffles of the parallel analysis.
    basis : (F, K) array_like, optional
        Eigen flats as combinations of the centred flats (``DynamicFlatField.basis`` of
        another band of rows of the same flats): no decomposition, ``eigenvalues`` empty.

    Returns
    -------
    DynamicFlatField
        With ``weights=None``.
    """
    fl, _ = as_stack(flats, "flats")
    check_nonempty(fl, "flats")
    check_finite(fl, "flats")
    if fl.shape[0] < 3:
        raise ShapeError(f"eigen flats need at least 3 flats, got {fl.shape[0]}")
    hw = fl.shape[1:]
    if darks is None:
        dark = np.zeros(hw, np.float64)
    else:
        dk, _ = as_stack(darks, "darks")
        check_finite(dk, "darks")
        if dk.shape[1:] != hw:
            raise ShapeError(f"darks are {dk.shape[1:]}, flats {hw}")
        dark = dk.astype(np.float64).mean(axis=0)
    f = fl.reshape(fl.shape[0], -1).astype(np.float64) - dark.ravel()
    mean = f.mean(axis=0)
    a = f - mean
    k = fl.shape[0]
    if basis is not None:
        b = np.asarray(basis, dtype=np.float64)
        if b.ndim != 2 or b.shape[0] != k or not np.all(np.isfinite(b)):
            raise ShapeError(f"basis must be finite ({k}, K) for {k} flats, got {b.shape}")
        return DynamicFlatField(
            dark=dark.astype(np.float32),
            mean_flat=mean.reshape(hw).astype(np.float32),
            eigen_flats=(b.T @ a).reshape(b.shape[1], *hw).astype(np.float32),
            eigenvalues=np.zeros(0),
            n_components=b.shape[1],
            basis=b,
        )
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    eig = s**2 / (k - 1)
    eig = eig[: k - 1]  # centring leaves at most F - 1 components
    if n_components is None:
        n = _parallel_analysis(a, eig, np.random.default_rng(seed))
    else:
        if isinstance(n_components, bool) or int(n_components) != n_components:
            raise ParameterError(f"n_components must be a whole number, got {n_components!r}")
        n = int(n_components)
        if not 0 <= n <= k - 1:
            raise ParameterError(f"n_components must be in 0..{k - 1} for {k} flats, got {n}")
    scale = np.sqrt(eig[:n])[:, None]
    ef = (vt[:n] * scale).reshape(n, *hw)
    # vt_n sqrt(eig_n) = u_n^T a / sqrt(F - 1): the eigen flats as combinations of the flats
    return DynamicFlatField(
        dark=dark.astype(np.float32),
        mean_flat=mean.reshape(hw).astype(np.float32),
        eigen_flats=ef.astype(np.float32),
        eigenvalues=eig,
        n_components=n,
        basis=u[:, :n] / np.sqrt(k - 1),
    )


def _tv(img: np.ndarray) -> float:
    return float(np.abs(np.diff(img, axis=0)).sum() + np.abs(np.diff(img, axis=1)).sum())


def _fit_tv(p, mean, ef, w0):
    """Weights minimising the total variation of p / (mean + sum w ef) (the paper's
    cost function), derivative-free (Powell), from ``w0``."""
    from scipy.optimize import minimize

    floor = 1e-6 * max(float(np.abs(mean).max()), 1e-30)

    def cost(w):
        f = mean + np.tensordot(w, ef, axes=1)
        return _tv(p / np.maximum(f, floor))

    res = minimize(cost, w0, method="Powell", options={"xtol": 1e-4, "ftol": 1e-9})
    return res.x


def dynamic(
    projections,
    flats,
    darks=None,
    *,
    n_components: int | None = None,
    downsample: int = 2,
    method: str = "tv",
    air=None,
    eps: float = 1e-6,
    progress_bar: bool | None = None,
    return_model: bool = False,
    weights=None,
    basis=None,
):
    """Dynamic flat-field correction with eigen flat fields (Van Nieuwenhove 2015).

    Each projection j is divided by its own flat,
    ``mean_flat + sum_k w_jk u_k``, the mean of the flats plus a weighted sum
    of their principal components, with the weights fitted to projection j.

    Parameters
    ----------
    projections : (N, H, W) or (H, W) array_like, counts
    flats : (F, H, W) array_like, counts
        At least 3 flats sampling the drift of the beam (e.g. taken before,
        between and after the projections).
    darks : (D, H, W) or (H, W) array_like, optional
    n_components : int, optional
        Eigen flats used. Default: chosen by parallel analysis (the paper's way).
    downsample : int
        The weights are fitted on d x d block means of the projection and the
        flats (the paper fits on downsampled images: faster, less noise).
    method : {'tv', 'air'}
        ``'tv'``: the paper's cost, the total variation (sum of absolute
        differences of neighbours) of the normalised downsampled projection,
        minimised without derivatives (Powell). ``'air'``: linear least squares
        of ``P - D = mean_flat + sum w u`` over the region ``air`` (where the
        sample leaves the beam unattenuated), exact where such a region exists.
    air : (slice, slice), optional
        Rows and columns of air in every projection; required by ``'air'``.
    eps : float
        Flats (minus dark) below eps x their maximum are clamped there.
    progress_bar : bool, optional
        A progress bar over projections (default: on an interactive terminal).
    return_model : bool
        Also return the :class:`DynamicFlatField` with the fitted weights.
    weights, basis : (N, K) and (F, K) array_like, optional
        Weights fitted before (e.g. on another band of rows of the same scan, the
        pipeline's pre-pass) with the basis of their eigen flats
        (:attr:`DynamicFlatField.basis`): no fit, only the division (vectorised).

    Returns
    -------
    out : ndarray of float32, the shape of ``projections``
        (P - D) / flat_j, transmission (1 in air).
    model : DynamicFlatField, only with ``return_model=True``

    Raises
    ------
    ShapeError
        Fewer than 3 flats, shapes that do not fit together, empty input.
    NonFiniteError
        NaN or inf in flats or darks.
    ParameterError
        Invalid options (``method='air'`` without ``air``, downsample < 1 ...).
    NumericalError
        A mean flat at or below the dark everywhere.
    """
    choice(method, "method", ("tv", "air"))
    if isinstance(downsample, bool) or int(downsample) != downsample or int(downsample) < 1:
        raise ParameterError(f"downsample must be a whole number >= 1, got {downsample!r}")
    d = int(downsample)
    if method == "air" and air is None:
        raise ParameterError("method='air' needs air=(rows, cols), a region of air")
    proj, was_2d = as_stack(projections, "projections")
    check_nonempty(proj, "projections")
    if (weights is None) != (basis is None):
        raise ParameterError("weights= and basis= go together (both from one fit)")
    model = eigen_flats(flats, darks, n_components=n_components, basis=basis)
    hw = model.mean_flat.shape
    if proj.shape[1:] != hw:
        raise ShapeError(f"projections are {proj.shape[1:]}, flats {hw}")
    if weights is not None:
        return _apply_weights(proj, model, weights, eps, was_2d, return_model)
    if min(hw) < 2 * d:
        raise ParameterError(f"downsample={d} leaves less than 2 x 2 pixels of {hw}")
    if float(model.mean_flat.max()) <= 0:
        raise NumericalError("the mean flat is at or below the dark everywhere")
    floor = eps * float(model.mean_flat.max())
    k = model.n_components
    weights = np.zeros((proj.shape[0], k))
    out = np.empty(proj.shape, np.float32)
    dark = model.dark
    if method == "air":
        rows, cols = air
        ef_air = model.eigen_flats[:, rows, cols].reshape(k, -1).T.astype(np.float64)
        mean_air = model.mean_flat[rows, cols].ravel().astype(np.float64)
        if mean_air.size < k + 1:
            raise ParameterError(f"the air region has {mean_air.size} pixels, need > {k}")
    else:
        ef_ds = _downsample(model.eigen_flats, d)
        mean_ds = _downsample(model.mean_flat, d)
    w = np.zeros(k)
    for j in progress(range(proj.shape[0]), desc="dynamic flat", unit="proj", enabled=progress_bar):
        p = proj[j].astype(np.float32) - dark
        if k:
            if method == "air":
                rhs = p[rows, cols].ravel().astype(np.float64) - mean_air
                w = np.linalg.lstsq(ef_air, rhs, rcond=None)[0]
            else:
                # start from the previous projection's weights: the drift is slow
                w = _fit_tv(_downsample(p, d), mean_ds, ef_ds, w)
        weights[j] = w
        out[j] = p / np.maximum(model.flat(w), floor)
    result = out[0] if was_2d else out
    if not return_model:
        return result
    from dataclasses import replace

    return result, replace(model, weights=weights, method=method, downsample=d)


def _apply_weights(proj, model: DynamicFlatField, weights, eps, was_2d, return_model):
    """(P - D) / (mean + w_j . u) with given weights, a few projections at a time."""
    from dataclasses import replace

    w = np.asarray(weights, dtype=np.float64)
    k = model.n_components
    if w.shape != (proj.shape[0], k):
        raise ShapeError(f"weights must be ({proj.shape[0]}, {k}), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ParameterError("weights must be finite")
    if float(model.mean_flat.max()) <= 0:
        raise NumericalError("the mean flat is at or below the dark everywhere")
    floor = np.float32(eps * float(model.mean_flat.max()))
    out = np.empty(proj.shape, np.float32)
    n, npx = proj.shape[0], int(model.mean_flat.size)
    ef = model.eigen_flats.reshape(k, npx)
    mean, dark = model.mean_flat.ravel(), model.dark.ravel()
    flat = np.empty(npx, np.float32)
    # one projection at a time, in pieces that stay in cache (a few passes over each)
    piece = 1 << 15
    w32 = w.astype(np.float32)
    for j in range(n):
        pj, oj = proj[j].reshape(npx), out[j].reshape(npx)
        for a in range(0, npx, piece):
            s = slice(a, a + piece)
            f = flat[s]
            if k:
                np.dot(w32[j], ef[:, s], out=f)
                f += mean[s]
            else:
                f[...] = mean[s]
            np.maximum(f, floor, out=f)
            np.subtract(pj[s], dark[s], out=oj[s], casting="unsafe")
            oj[s] /= f
    result = out[0] if was_2d else out
    if not return_model:
        return result
    return result, replace(model, weights=w)
