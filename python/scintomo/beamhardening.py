"""Beam-hardening correction by polynomial linearisation.

A lab tube's spectrum hardens as it crosses the sample: the low energies are
absorbed first, so -ln(I / I0) grows slower than the thickness, and a
homogeneous cylinder reconstructs cupped (darker in the middle). The
classic correction (Herman 1979; Brooks and Di Chiro 1976) maps the
measured polychromatic value p = -ln(I / I0) to the monochromatic line
integral mu_ref * L of one reference material by a polynomial

    p_mono = c_1 p + c_2 p^2 + ... + c_n p^n       (no constant term: p = 0 is air)

fitted either

- from a tube spectrum and the sample's material (:func:`from_spectrum`):
  p(L) = -ln( sum_E w(E) exp(-mu(E) L) / sum_E w(E) ), with w(E) the
  detected spectrum (photons x energy for an energy-integrating scintillator
  detector, photons for a counting one) and mu(E) from xraydb, or
- from a step wedge or any object of known thicknesses (:func:`from_step_wedge`).

``mu_ref`` is the attenuation of the thinnest layers (the limit of p / L as
L -> 0, the spectrum-weighted mean of mu), so thin parts keep their values
and thick ones are raised to the line. The polynomial is exact for one
material; for several it corrects the dominant one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._validate import as_array, as_float32, check_nonempty, choice, n_threads_arg, positive
from .exceptions import ParameterError, ScintomoWarning, ShapeError

__all__ = ["BeamHardening", "from_spectrum", "from_step_wedge", "polychromatic_projection"]


@dataclass(frozen=True)
class BeamHardening:
    """A beam-hardening linearisation p_mono = sum_k c_k p^k (k = 1..degree).

    Attributes
    ----------
    coefficients : tuple of float
        c_1 .. c_n (dimensionless: p and p_mono are both -ln of a ratio).
    mu_ref : float, 1/mm
        Attenuation coefficient the corrected values correspond to:
        p_mono = mu_ref * L for a thickness L (mm) of the calibration material.
    p_max : float
        Largest p of the calibration; values above it are extrapolated (counted).
    rms_error : float
        RMS of the fit's residual over the calibration points, in p units.
    source : str
        How it was made ('spectrum: Kramers 80 kVp ..., Al 2.7 g/cm3' or
        'step wedge: 8 steps').
    """

    coefficients: tuple[float, ...]
    mu_ref: float
    p_max: float
    rms_error: float
    source: str = ""

    @property
    def degree(self) -> int:
        return len(self.coefficients)

    def apply(self, projections, *, out=None, n_threads: int | None = None) -> np.ndarray:
        """Linearise -ln(I/I0) projections: float32, the shape of ``projections``.

        Values above ``p_max`` are continued along the polynomial's tangent at
        ``p_max`` (a polynomial fitted on [0, p_max] can turn back beyond it);
        their count is given in a warning. The polynomial is evaluated in float64
        (Horner) by one pass of the Rust kernel, ``n_threads`` threads (None: all
        cores); ``out`` (float32, may be ``projections`` itself) is written in place.
        """
        from . import _core

        p = as_array(projections, "projections")
        check_nonempty(p, "projections")
        p32 = as_float32(p, "projections")
        nt = n_threads_arg(n_threads)
        c = [float(v) for v in self.coefficients]
        kw = {"coefficients": c, "p_max": float(self.p_max), "n_threads": nt}
        direct = (
            isinstance(out, np.ndarray)
            and out.dtype == np.float32
            and out.shape == p.shape
            and out.flags.writeable
        )
        if direct and out is p32:
            n_above = _core.lab_linearise(None, out, **kw)
        elif direct and not np.may_share_memory(out, p32):
            n_above = _core.lab_linearise(p32, out, **kw)
        else:
            y = np.empty(p.shape, np.float32)
            n_above = _core.lab_linearise(p32, y, **kw)
            if out is None:
                out = y
            else:
                out[...] = y
        if n_above:
            warnings.warn(
                f"beam hardening: {n_above} value(s) above the calibrated -ln(I/I0) = "
                f"{self.p_max:.3g} were extrapolated linearly",
                ScintomoWarning,
                stacklevel=2,
            )
        return out

    __call__ = apply

    def to_dict(self) -> dict:
        return {
            "coefficients": [float(c) for c in self.coefficients],
            "mu_ref_per_mm": float(self.mu_ref),
            "p_max": float(self.p_max),
            "rms_error": float(self.rms_error),
            "source": self.source,
        }


def _fit(p: np.ndarray, target: np.ndarray, degree: int) -> tuple[tuple[float, ...], float]:
    """Least-squares c_1..c_n of target = sum c_k p^k (no constant term)."""
    a = np.stack([p**k for k in range(1, degree + 1)], axis=1)
    # columns scaled to unit norm: p^n spans orders of magnitude
    norms = np.linalg.norm(a, axis=0)
    c, *_ = np.linalg.lstsq(a / norms, target, rcond=None)
    c = c / norms
    rms = float(np.sqrt(np.mean((a @ c - target) ** 2)))
    return tuple(float(v) for v in c), rms


def _detected_weights(spectrum, detector: str) -> np.ndarray:
    choice(detector, "detector", ("energy", "counting"))
    w = spectrum.photons * (spectrum.energies if detector == "energy" else 1.0)
    return w / w.sum()


def polychromatic_projection(
    thickness_mm, *, spectrum, material: str, density: float, detector: str = "energy"
) -> np.ndarray:
    """-ln(I / I0) of ``thickness_mm`` of one material in a polychromatic beam.

    Parameters
    ----------
    thickness_mm : array_like, mm
    spectrum : scintomo.detector.Spectrum
        Photons per bin at the sample (after the tube's filters).
    material : str
        Chemical formula for xraydb ('Al', 'SiO2', 'Ca5(PO4)3OH').
    density : float, g/cm^3
    detector : {'energy', 'counting'}
        Energy-integrating (a scintillator film and camera: each photon counts
        with its energy) or photon-counting.
    """
    from .detector.light_yield import _mu_per_um

    t = np.asarray(thickness_mm, dtype=np.float64)
    w = _detected_weights(spectrum, detector)
    mu = _mu_per_um(material, positive(density, "density"), spectrum.energies) * 1e3  # 1/mm
    trans = np.exp(-np.multiply.outer(t, mu)) @ w
    return -np.log(trans)


def from_spectrum(
    spectrum=None,
    *,
    material: str,
    density: float,
    max_thickness: float,
    kvp: float | None = None,
    filters=(("Al", 2.699, 1000.0),),
    detector: str = "energy",
    degree: int = 4,
    n_points: int = 200,
) -> BeamHardening:
    """Linearisation for one material from a tube spectrum (Brooks and Di Chiro 1976).

    Parameters
    ----------
    spectrum : scintomo.detector.Spectrum, optional
        The spectrum at the sample (a measured or SpekPy one). Default:
        :func:`scintomo.detector.kramers_spectrum` of ``kvp`` and ``filters``.
    material : str
        Chemical formula of the sample for xraydb.
    density : float, g/cm^3
    max_thickness : float, mm
        Longest path through the sample (e.g. its diameter): the calibration
        spans 0 .. max_thickness.
    kvp : float, kV
        Tube voltage, when no spectrum is given.
    filters : sequence of (formula, density g/cm^3, thickness um)
        Tube filtration for the Kramers spectrum (default 1 mm Al).
    detector : {'energy', 'counting'}
    degree : int
        Degree of the polynomial (1 .. 8).

    Returns
    -------
    BeamHardening
    """
    from .detector.light_yield import _mu_per_um, kramers_spectrum

    if spectrum is None:
        if kvp is None:
            raise ParameterError("give a spectrum= or the tube's kvp=")
        spectrum = kramers_spectrum(kvp, filters=filters)
    _check_degree(degree, n_points)
    t_max = positive(max_thickness, "max_thickness")
    t = np.linspace(0.0, t_max, int(n_points))[1:]
    p = polychromatic_projection(
        t, spectrum=spectrum, material=material, density=density, detector=detector
    )
    w = _detected_weights(spectrum, detector)
    mu_ref = float(w @ (_mu_per_um(material, density, spectrum.energies) * 1e3))
    coefficients, rms = _fit(p, mu_ref * t, degree)
    src = f"spectrum: {spectrum.description or 'given'}; {material} {density:g} g/cm3, 0..{t_max:g} mm"
    return BeamHardening(coefficients, mu_ref, float(p.max()), rms, src)


def from_step_wedge(
    measured, thickness_mm, *, degree: int = 3, mu_ref: float | None = None
) -> BeamHardening:
    """Linearisation from a step wedge (or any object of known thicknesses).

    Parameters
    ----------
    measured : (S,) array_like
        -ln(I / I0) measured behind each step (e.g. the mean over the step's
        region of the flat-fielded image).
    thickness_mm : (S,) array_like, mm
        Thickness of each step, > 0 (air, p = 0, is implied).
    degree : int
        Degree of the polynomial, below the number of steps.
    mu_ref : float, 1/mm, optional
        Attenuation the corrected values should have. Default: the slope of
        a quadratic through the origin fitted to the thinnest steps (the
        limit of p / L as L -> 0).

    Returns
    -------
    BeamHardening
    """
    p = np.asarray(measured, dtype=np.float64).ravel()
    t = np.asarray(thickness_mm, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ShapeError(f"{p.size} measurements for {t.size} thicknesses")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
        raise ParameterError("step wedge values must be finite")
    if np.any(t <= 0) or np.any(p <= 0):
        raise ParameterError("step thicknesses and their -ln(I/I0) must be > 0 (air is implied)")
    order = np.argsort(t)
    p, t = p[order], t[order]
    if np.any(np.diff(p) <= 0):
        raise ParameterError(
            "-ln(I/I0) must grow with the thickness; are measured and thickness_mm paired?"
        )
    _check_degree(degree, p.size + 1)
    if mu_ref is None:
        k = min(p.size, 4)
        a = np.stack([t[:k], t[:k] ** 2], axis=1) if k >= 2 else t[:k, None]
        mu_ref = float(np.linalg.lstsq(a, p[:k], rcond=None)[0][0])
    mu_ref = positive(mu_ref, "mu_ref")
    coefficients, rms = _fit(p, mu_ref * t, degree)
    return BeamHardening(coefficients, mu_ref, float(p.max()), rms, f"step wedge: {p.size} steps")


def _check_degree(degree, n_points) -> None:
    if isinstance(degree, bool) or int(degree) != degree or not 1 <= int(degree) <= 8:
        raise ParameterError(f"degree must be a whole number in 1..8, got {degree!r}")
    if int(degree) >= n_points:
        raise ParameterError(f"degree {degree} needs more than {degree} calibration points")
