"""A micro-CT scan as a thin-film scintillator microscope records it.

The chain, per frame: X-ray quanta reach each pixel as a Poisson number
(open-beam fluence x transmission x beam fluctuation); the film turns each
absorbed quantum into light that spreads with the film's PSF (so noise is
correlated, as on a real detector); the optics and camera apply a gain
pattern (vignetting, film thickness non-uniformity, dust) and a conversion
gain; the camera adds a dark offset with dark-current pattern and Gaussian
read noise; values are quantised to uint16 and clipped at 65535.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .phantom import ellipse_projections, shepp_logan_ellipses


@dataclass(frozen=True)
class DetectorModel:
    """Detector parameters (units in the names).

    quanta_per_pixel : mean absorbed X-ray quanta per pixel per open-beam frame
    adu_per_quantum : camera counts per absorbed quantum (light yield x optics x QE / gain)
    psf_sigma_px : Gaussian film PSF, standard deviation in pixels
    dark_offset_adu, dark_pattern_adu : dark level and its fixed-pattern spread
    read_noise_adu : Gaussian read noise per pixel per frame
    gain_pattern_rms : rms of the fixed gain pattern (film non-uniformity)
    vignetting : fractional fall-off of the gain at the image corners
    beam_fluctuation : rms relative frame-to-frame beam intensity change
    beam_drift : relative change of the beam from the first to the last frame
    """

    quanta_per_pixel: float = 4000.0
    adu_per_quantum: float = 2.5
    psf_sigma_px: float = 1.0
    dark_offset_adu: float = 100.0
    dark_pattern_adu: float = 5.0
    read_noise_adu: float = 3.0
    gain_pattern_rms: float = 0.03
    vignetting: float = 0.15
    beam_fluctuation: float = 0.005
    beam_drift: float = 0.03


@dataclass
class SimulatedScan:
    """What :func:`simulate_scan` returns.

    projections : (N, H, W) uint16; flats_before, flats_after : (F, H, W) uint16;
    darks : (D, H, W) uint16; theta : (N,) radians; attenuation : (H, W, W) float32,
    the true volume (row, y, x) in 1/pixel; line_integrals : (N, H, W) float64,
    the noise-free -ln(transmission); flat_positions : where each flat series was
    taken (projection index); detector : the DetectorModel used.
    """

    projections: np.ndarray
    flats_before: np.ndarray
    flats_after: np.ndarray
    darks: np.ndarray
    theta: np.ndarray
    attenuation: np.ndarray
    line_integrals: np.ndarray
    flat_positions: tuple[float, float]
    detector: DetectorModel = field(default_factory=DetectorModel)
    pixel_size_um: float = 0.65

    @property
    def flats(self) -> np.ndarray:
        return np.concatenate([self.flats_before, self.flats_after])


def _gain_pattern(shape, model: DetectorModel, rng) -> np.ndarray:
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    r2 = ((x - (w - 1) / 2) / (w / 2)) ** 2 + ((y - (h - 1) / 2) / max(h / 2, w / 2)) ** 2
    vign = 1.0 - model.vignetting * r2 / 2.0
    blobs = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0, mode="wrap")
    blobs *= model.gain_pattern_rms / max(blobs.std(), 1e-12)
    return vign * (1.0 + blobs)


def simulate_scan(
    *,
    n_angles: int = 181,
    n_rows: int = 4,
    n_cols: int = 128,
    n_flats: int = 10,
    n_darks: int = 10,
    max_attenuation: float = 1.5,
    detector: DetectorModel | None = None,
    pixel_size_um: float = 0.65,
    seed: int = 0,
) -> SimulatedScan:
    """Simulate a parallel-beam scan over [0, pi) of a Shepp-Logan cylinder.

    Every detector row sees the same 2-D phantom scaled slightly per row (so
    rows differ). Flats are taken before (position -1) and after (position
    n_angles) the scan, with the beam drifting in between.
    """
    model = detector or DetectorModel()
    rng = np.random.default_rng(seed)
    theta = np.linspace(0.0, np.pi, n_angles, endpoint=False)
    shape = (n_rows, n_cols)
    base = shepp_logan_ellipses(n_cols)
    # Peak line integral of the outer ellipse ~ 2 b * value; scale to max_attenuation.
    sino = ellipse_projections(base, theta, n_cols)
    scale = max_attenuation / max(sino.max(), 1e-12)
    line = np.empty((n_angles, n_rows, n_cols))
    vol = np.empty((n_rows, n_cols, n_cols), np.float32)
    from .phantom import ellipses_image

    img = ellipses_image(base, n_cols)
    for r in range(n_rows):
        k = scale * (1.0 + 0.05 * (r - (n_rows - 1) / 2) / max(n_rows, 1))
        line[:, r, :] = sino * k
        vol[r] = img * k
    gain = _gain_pattern(shape, model, rng)
    dark_level = model.dark_offset_adu + model.dark_pattern_adu * rng.standard_normal(shape)

    def frames(transmission, beam) -> np.ndarray:
        n = transmission.shape[0]
        lam = model.quanta_per_pixel * beam[:, None, None] * transmission
        quanta = rng.poisson(lam).astype(np.float64)
        light = ndimage.gaussian_filter(
            quanta, (0, model.psf_sigma_px, model.psf_sigma_px), mode="nearest"
        )
        adu = light * model.adu_per_quantum * gain + dark_level
        adu += model.read_noise_adu * rng.standard_normal((n, *shape))
        return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)

    def beam_at(index) -> np.ndarray:
        index = np.asarray(index, dtype=np.float64)
        drift = 1.0 + model.beam_drift * (index + 1) / (n_angles + 1)
        return drift * (1.0 + model.beam_fluctuation * rng.standard_normal(index.shape))

    ones = np.ones((n_flats, *shape))
    flats_before = frames(ones, beam_at(np.full(n_flats, -1.0)))
    projections = frames(np.exp(-line), beam_at(np.arange(n_angles)))
    flats_after = frames(ones, beam_at(np.full(n_flats, float(n_angles))))
    darks = frames(np.zeros((n_darks, *shape)), np.zeros(n_darks))
    return SimulatedScan(
        projections=projections,
        flats_before=flats_before,
        flats_after=flats_after,
        darks=darks,
        theta=theta,
        attenuation=vol,
        line_integrals=line,
        flat_positions=(-1.0, float(n_angles)),
        detector=model,
        pixel_size_um=pixel_size_um,
    )
