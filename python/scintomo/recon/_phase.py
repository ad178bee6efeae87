"""Single-distance phase retrieval for propagation-based phase contrast
(Paganin, Mayo, Gureyev, Miller and Wilkins, J. Microsc. 206, 33, 2002).
The filtering runs in Rust (``_core.paganin``): rustfft, one image at a time
on all ``n_threads`` threads."""

from __future__ import annotations

import numpy as np

from .. import _core
from .._validate import (
    as_float32,
    check_nonempty,
    check_result,
    n_threads_arg,
    positive,
    scale_down,
)
from ..exceptions import ShapeError

#: h c in keV nanometres (CODATA 2018): lambda[nm] = HC_KEV_NM / E[keV]
HC_KEV_NM = 1.239841984


def paganin(
    transmission,
    *,
    pixel_size: float,
    distance: float,
    energy: float,
    delta_beta: float,
    pad: bool = True,
    log: bool = True,
    n_threads: int | None = None,
) -> np.ndarray:
    """Paganin's single-material phase retrieval on flat-fielded projections.

    Filters each projection: IFFT[ FFT(I / I0) / (1 + pi lambda z (delta/beta)
    |f|^2) ], f in cycles per metre (Paganin et al. 2002, eq. 10; the
    REFERENCES sheet's form), and returns -ln of the result, which equals
    mu T (mu = 4 pi beta / lambda, T the projected thickness): the input
    :func:`reconstruct` expects. Divide by mu for the thickness in metres.

    Parameters
    ----------
    transmission : (A, R, N) or (R, N) ndarray
        Flat-fielded transmission I / I0 (not -log), > 0. Not modified.
    pixel_size : float, micrometres
        Detector pixel size at the sample.
    distance : float, millimetres
        Sample-to-scintillator propagation distance z.
    energy : float, keV
        Photon energy (lambda[nm] = 1.239841984 / E[keV]).
    delta_beta : float
        Ratio delta / beta of the material's refractive index decrement to
        its absorption index (e.g. ~ 1000 for soft tissue at 20 keV).
    pad : bool
        Pad each projection by half its size on each side (edge values)
        against wrap-around of the low-pass filter.
    log : bool
        Return -ln(filtered) (True) or the filtered transmission (False).
    n_threads : int, optional
        Threads (None: all cores); each image's row and column FFTs are
        split between them.

    Returns
    -------
    ndarray, float32, the input's shape.

    Notes
    -----
    For TomoPy users, ``tomopy.retrieve_phase(tomo, pixel_size, dist,
    energy, alpha)`` applies the same filter with lengths in centimetres
    (``pixel_size = pixel_size_um * 1e-4``, ``dist = distance_mm * 0.1``),
    ``energy`` in keV and ``alpha = 1 / (4 pi^2 delta_beta)``, and returns
    the filtered transmission: ``paganin(..., log=False)``, up to padding
    (TomoPy pads to a power of two with the mean edge value, here by half
    the image with edge values) and TomoPy's frequency grid, spaced
    1 / ((n - 1) d) rather than 1 / (n d).
    """
    ps = positive(pixel_size, "pixel_size") * 1e-6
    z = positive(distance, "distance") * 1e-3
    lam = HC_KEV_NM / positive(energy, "energy") * 1e-9
    db = positive(delta_beta, "delta_beta")
    nt = n_threads_arg(n_threads)
    arr = as_float32(transmission, "transmission")
    single = arr.ndim == 2
    if single:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ShapeError(f"transmission must be (A, R, N) or (R, N), got shape {arr.shape}")
    check_nonempty(arr, "transmission")
    # Finite values and, with log, a positive result are checked in Rust. The filter is
    # linear: values near the float32 maximum are scaled by a power of two (exact) so the
    # float32 FFTs cannot overflow, and the scale is put back (or refused) at the end.
    arr, scale = scale_down(arr, 2.0**64)
    out = _core.paganin(
        np.ascontiguousarray(arr),
        pixel_size=ps,
        distance=z,
        wavelength=lam,
        delta_beta=db,
        pad=bool(pad),
        log=bool(log),
        n_threads=nt,
    )
    if log:
        out -= np.float32(np.log(scale))  # -log(scale * f) = -log(f) - log(scale)
        check_result(out, "paganin")
    else:
        check_result(out, "paganin", scale=scale)
    return out[0] if single else out
