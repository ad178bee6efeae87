"""Light yield against a reference scintillator, and absorption efficiency.

The papers' relation (e.g. Ce:CsPbBr3 films against LuAG:Ce):

    LY = LY_ref * (I / A) / (I_ref / A_ref)

with I the integrated radioluminescence and A the fraction of the beam each
scintillator absorbs. Here A is the absorbed-energy fraction over the tube
spectrum Phi(E) (photons per energy bin):

    A = int Phi(E) E (1 - exp(-mu(E) t)) f(E) dE / int Phi(E) E dE

with mu from xraydb (Elam et al. tables, shipped with the package: no network)
for the material's formula and density, and f(E) = mu_photo / mu_total (the
energy deposited locally: photo-absorption; kind='total' sets f = 1). The
photon-weighted attenuated fraction the papers used (NIST XCOM over the tube
range) is reported too as ``attenuation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import positive
from ..exceptions import ParameterError
from ._common import new_axes, result_dict

# numpy 2.0 renamed trapz to trapezoid; the dependencies allow numpy 1.x.
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # noqa: NPY201

__all__ = [
    "AbsorptionEfficiency",
    "LightYield",
    "Spectrum",
    "absorbed_energy_fraction",
    "absorption_efficiency",
    "kramers_spectrum",
    "light_yield",
]

#: LuAG:Ce light yield, photons/MeV (the reference of the Ce:CsPbBr3 papers)
LUAG_LY = 22000.0
LUAG = ("Lu3Al5O12", 6.73)


@dataclass(frozen=True)
class Spectrum:
    """An X-ray spectrum: photons per bin at ``energies`` (keV, uniform bins)."""

    energies: np.ndarray
    photons: np.ndarray
    description: str = ""

    def __post_init__(self):
        e = np.asarray(self.energies, dtype=float)
        p = np.asarray(self.photons, dtype=float)
        if e.ndim != 1 or e.shape != p.shape or e.size < 1:
            raise ParameterError(
                "spectrum energies and photons must be 1-D arrays of the same length"
            )
        if np.any(e <= 0) or np.any(p < 0) or not np.all(np.isfinite(p)) or p.sum() <= 0:
            raise ParameterError("spectrum energies must be > 0 keV and photons >= 0, not all zero")
        object.__setattr__(self, "energies", e)
        object.__setattr__(self, "photons", p)

    @property
    def mean_energy(self) -> float:
        """Photon-weighted mean energy, keV."""
        return float(np.sum(self.photons * self.energies) / np.sum(self.photons))

    def to_dict(self) -> dict:
        return result_dict(self)

    def plot(self, ax=None):
        ax = new_axes(ax)
        ax.plot(self.energies, self.photons / self.photons.max())
        ax.set_xlabel("energy (keV)")
        ax.set_ylabel("photons (relative)")
        ax.set_title(self.description)
        return ax


def _mu_per_um(formula: str, density: float, energies_kev, kind: str = "total") -> np.ndarray:
    import xraydb

    try:
        mu_cm = xraydb.material_mu(
            formula, np.asarray(energies_kev, dtype=float) * 1e3, density=density, kind=kind
        )
    except Exception as e:  # xraydb raises plain exceptions for unknown elements
        raise ParameterError(f"xraydb cannot compute attenuation of {formula!r}: {e}") from None
    return np.asarray(mu_cm, dtype=float) * 1e-4


def kramers_spectrum(
    kvp: float, *, filters=(("Al", 2.699, 1000.0),), e_min: float = 1.0, step: float = 0.25
) -> Spectrum:
    """Kramers' bremsstrahlung spectrum with filtration.

    Phi(E) ~ (kVp - E) / E photons per keV (Kramers 1923), times
    exp(-mu(E) t) of each filter. No characteristic lines, no anode
    self-absorption: a coarse model; use a measured or simulated spectrum
    (e.g. SpekPy) when one is at hand.

    Parameters
    ----------
    kvp : float
        Tube voltage, kV.
    filters : sequence of (formula, density g/cm^3, thickness um)
        Default 1 mm Al.
    e_min, step : float
        Lowest energy and bin width, keV.
    """
    kvp = positive(kvp, "kvp")
    e = np.arange(positive(e_min, "e_min"), kvp, positive(step, "step"))
    if e.size == 0:
        raise ParameterError(f"no energies between e_min {e_min} and kVp {kvp}")
    phi = (kvp - e) / e
    desc = [f"Kramers {kvp:g} kVp"]
    for formula, density, thickness in filters:
        phi = phi * np.exp(-_mu_per_um(formula, density, e) * float(thickness))
        desc.append(f"{thickness:g} um {formula}")
    return Spectrum(e, phi, ", ".join(desc))


def absorbed_energy_fraction(
    formula: str, *, density: float, thickness: float, spectrum, kind: str = "photo"
) -> float:
    """Fraction of the incident energy a film absorbs (see the module docstring).

    Parameters
    ----------
    formula : str
        Chemical formula, e.g. 'CsPbBr3'.
    density : float
        g/cm^3.
    thickness : float
        Micrometres.
    spectrum : Spectrum or float
        A spectrum, or one energy in keV.
    kind : {'photo', 'total'}
        Energy deposited by photo-absorption only (default) or every
        interaction.
    """
    if kind not in ("photo", "total"):
        raise ParameterError(f"kind must be 'photo' or 'total', got {kind!r}")
    sp = (
        spectrum
        if isinstance(spectrum, Spectrum)
        else Spectrum(np.array([float(spectrum)]), np.array([1.0]))
    )
    density, thickness = positive(density, "density"), positive(thickness, "thickness")
    mu = _mu_per_um(formula, density, sp.energies)
    frac = 1.0 - np.exp(-mu * thickness)
    if kind == "photo":
        frac = frac * _mu_per_um(formula, density, sp.energies, "photo") / mu
    w = sp.photons * sp.energies
    return float(np.sum(w * frac) / np.sum(w))


def _attenuation(formula, density, thickness, sp) -> float:
    mu = _mu_per_um(formula, density, sp.energies)
    return float(np.sum(sp.photons * (1 - np.exp(-mu * thickness))) / np.sum(sp.photons))


def _integrate(signal, name) -> float:
    if isinstance(signal, (tuple, list)) and len(signal) == 2:
        wl, counts = (np.asarray(a, dtype=float) for a in signal)
        if wl.shape != counts.shape or wl.ndim != 1 or wl.size < 2:
            raise ParameterError(
                f"{name}: (wavelength, counts) must be 1-D arrays of one length >= 2"
            )
        order = np.argsort(wl)
        value = float(_trapezoid(counts[order], wl[order]))
    else:
        value = float(signal)
    if not np.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} must integrate to a positive number, got {value}")
    return value


@dataclass(frozen=True)
class LightYield:
    """Light yield in photons/MeV and what it rests on."""

    light_yield: float
    light_yield_attenuation_method: float
    signal: float
    reference_signal: float
    absorbed_fraction: float
    reference_absorbed_fraction: float
    attenuation: float
    reference_attenuation: float
    material: str
    reference_material: str
    reference_light_yield: float
    spectrum: Spectrum
    assumptions: tuple = field(default=())
    unit: str = "photons/MeV"

    def to_dict(self) -> dict:
        return result_dict(self)

    def plot(self, ax=None):
        ax = new_axes(ax)
        names = [self.material, self.reference_material]
        ax.bar(names, [self.light_yield, self.reference_light_yield], color=["C1", "C0"])
        ax.set_ylabel("light yield (photons/MeV)")
        ax.set_title(
            f"absorbed energy {self.absorbed_fraction:.3f} "
            f"vs {self.reference_absorbed_fraction:.3f}"
        )
        return ax


def light_yield(
    signal,
    reference_signal,
    *,
    material: str,
    density: float,
    thickness: float,
    reference_material: str = LUAG[0],
    reference_density: float = LUAG[1],
    reference_thickness: float,
    reference_light_yield: float = LUAG_LY,
    spectrum: Spectrum | None = None,
    kvp: float = 50.0,
    kind: str = "photo",
) -> LightYield:
    """Light yield of a scintillator against a reference measured the same way.

    Parameters
    ----------
    signal, reference_signal : float or (wavelength_nm, counts) pair
        Integrated radioluminescence, or the RL spectrum to integrate
        (trapezoid over wavelength).
    material, reference_material : str
        Chemical formulas (reference default LuAG:Ce, Lu3Al5O12).
    density, reference_density : float
        g/cm^3 (LuAG 6.73).
    thickness, reference_thickness : float
        Micrometres.
    reference_light_yield : float
        photons/MeV (LuAG:Ce 22 000).
    spectrum : Spectrum, optional
        Tube spectrum; default :func:`kramers_spectrum` (``kvp``, 1 mm Al).
    kind : {'photo', 'total'}
        See :func:`absorbed_energy_fraction`.

    Returns
    -------
    LightYield
    """
    i = _integrate(signal, "signal")
    i_ref = _integrate(reference_signal, "reference_signal")
    sp = spectrum if spectrum is not None else kramers_spectrum(kvp)
    a = absorbed_energy_fraction(
        material, density=density, thickness=thickness, spectrum=sp, kind=kind
    )
    a_ref = absorbed_energy_fraction(
        reference_material,
        density=reference_density,
        thickness=reference_thickness,
        spectrum=sp,
        kind=kind,
    )
    att = _attenuation(material, density, thickness, sp)
    att_ref = _attenuation(reference_material, reference_density, reference_thickness, sp)
    ly_ref = positive(reference_light_yield, "reference_light_yield")
    assumptions = (
        f"tube spectrum: {sp.description or 'given'}",
        "both samples in the same beam, geometry and light collection "
        "(same optics, detector, exposure)",
        "RL detection efficiency equal for both emission spectra (or already corrected)",
        "no self-absorption of the scintillation light, equal light extraction",
        "energy deposited: "
        + (
            "photo-absorption only (mu_photo/mu_total), no fluorescence escape"
            if kind == "photo"
            else "all interactions"
        ),
        "attenuation data: xraydb (Elam, Ravel, Sieber tables)",
        "linear response (no saturation), no afterglow carried between measurements",
    )
    return LightYield(
        light_yield=ly_ref * (i / a) / (i_ref / a_ref),
        light_yield_attenuation_method=ly_ref * (i / att) / (i_ref / att_ref),
        signal=i,
        reference_signal=i_ref,
        absorbed_fraction=a,
        reference_absorbed_fraction=a_ref,
        attenuation=att,
        reference_attenuation=att_ref,
        material=material,
        reference_material=reference_material,
        reference_light_yield=ly_ref,
        spectrum=sp,
        assumptions=assumptions,
    )


@dataclass(frozen=True)
class AbsorptionEfficiency:
    """Absorbed fraction of a material vs thickness and energy.

    ``values[i, j]``: thickness i (um), energy j (keV) (monochromatic);
    ``spectrum_values[i]``: absorbed-energy fraction over ``spectrum`` if given.
    """

    material: str
    density: float
    thicknesses: np.ndarray
    energies: np.ndarray
    values: np.ndarray
    spectrum_values: np.ndarray | None
    kind: str

    def thickness_for(self, fraction: float, energy: float) -> float:
        """Thickness (um) absorbing ``fraction`` at ``energy`` keV (interpolated in the grid)."""
        j = int(np.argmin(np.abs(self.energies - energy)))
        col = self.values[:, j]
        if fraction > col.max():
            return float("inf")
        return float(np.interp(fraction, col, self.thicknesses))

    def to_dict(self) -> dict:
        return result_dict(self)

    def plot(self, ax=None):
        ax = new_axes(ax)
        idx = np.unique(
            np.linspace(0, len(self.thicknesses) - 1, min(6, len(self.thicknesses))).astype(int)
        )
        for i in idx:
            ax.semilogx(self.energies, self.values[i], label=f"{self.thicknesses[i]:g} um")
        ax.set_xlabel("energy (keV)")
        ax.set_ylabel("absorbed fraction")
        ax.set_title(f"{self.material} ({self.density:g} g/cm$^3$)")
        ax.legend(fontsize="small")
        return ax


def absorption_efficiency(
    material: str, *, density: float, thicknesses, energies=None, spectrum=None, kind: str = "total"
) -> AbsorptionEfficiency:
    """Absorbed (``kind='photo'``) or attenuated (``'total'``) fraction of a
    film vs thickness (um) and energy (keV, default 5 to 100), to choose a
    film thickness."""
    t = np.atleast_1d(np.asarray(thicknesses, dtype=float))
    e = (
        np.geomspace(5, 100, 60)
        if energies is None
        else np.atleast_1d(np.asarray(energies, dtype=float))
    )
    if np.any(t <= 0) or np.any(e <= 0):
        raise ParameterError("thicknesses and energies must be > 0")
    if kind not in ("photo", "total"):
        raise ParameterError(f"kind must be 'photo' or 'total', got {kind!r}")
    density = positive(density, "density")
    mu = _mu_per_um(material, density, e)
    vals = 1.0 - np.exp(-mu[None, :] * t[:, None])
    if kind == "photo":
        vals = vals * (_mu_per_um(material, density, e, "photo") / mu)[None, :]
    sv = None
    if spectrum is not None:
        sv = np.array(
            [
                absorbed_energy_fraction(
                    material, density=density, thickness=ti, spectrum=spectrum, kind=kind
                )
                for ti in t
            ]
        )
    return AbsorptionEfficiency(material, density, t, e, vals, sv, kind)
