"""Single-distance phase retrieval for propagation-based phase contrast
(Paganin, Mayo, Gureyev, Miller and Wilkins, J. Microsc. 206, 33, 2002)."""

from __future__ import annotations

import numpy as np

from .._validate import as_float32, check_finite, check_nonempty, check_result, positive
from ..exceptions import NumericalError, ShapeError

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
        Flat-fielded transmission I / I0 (not -log), > 0.
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

    Returns
    -------
    ndarray, float32, the input's shape.
    """
    ps = positive(pixel_size, "pixel_size") * 1e-6
    z = positive(distance, "distance") * 1e-3
    lam = HC_KEV_NM / positive(energy, "energy") * 1e-9
    db = positive(delta_beta, "delta_beta")
    arr = as_float32(transmission, "transmission")
    single = arr.ndim == 2
    if single:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ShapeError(f"transmission must be (A, R, N) or (R, N), got shape {arr.shape}")
    check_nonempty(arr, "transmission")
    check_finite(arr, "transmission")
    _, nr, nc = arr.shape
    pr, pc = (nr // 2, nc // 2) if pad else (0, 0)
    fy = np.fft.fftfreq(nr + 2 * pr, d=ps)[:, None]
    fx = np.fft.rfftfreq(nc + 2 * pc, d=ps)[None, :]
    filt = 1.0 / (1.0 + np.pi * lam * z * db * (fx**2 + fy**2))
    out = np.empty(arr.shape, np.float32)
    for i, img in enumerate(arr):
        a = img.astype(np.float64)  # float32 FFTs overflow near the float32 maximum
        a = np.pad(a, ((pr, pr), (pc, pc)), mode="edge") if pad else a
        f = np.fft.irfft2(np.fft.rfft2(a) * filt, s=a.shape)[pr : pr + nr, pc : pc + nc]
        if log:
            if np.any(f <= 0):
                raise NumericalError(
                    "filtered transmission <= 0: is the input I / I0 rather than -log?"
                )
            f = -np.log(f)
        with np.errstate(over="ignore"):
            out[i] = f
    check_result(out, "paganin")
    return out[0] if single else out
