"""Scan geometries: :class:`ConeGeometry` (lab micro-CT, circular cone beam)
and :class:`ParallelGeometry` (synchrotron). The conventions are written out
once, in :mod:`scintomo.recon`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..exceptions import ParameterError
from ..units import parse_length_um


def _length(value, name: str, unit: str) -> float:
    """A positive length in ``unit`` ("mm" or "um") from a number (already in
    ``unit``) or a string with its own unit ("60mm", "185 nm")."""
    if isinstance(value, bool):
        raise ParameterError(f"{name} must be a length, got {value!r}")
    try:
        um = parse_length_um(value, default_unit=unit)
    except ParameterError as e:
        raise ParameterError(f"{name}: {e}") from None
    if not math.isfinite(um):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    return um / 1e3 if unit == "mm" else um


def _optional_index(value, name: str) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{name} must be a pixel index (number) or None, got {value!r}"
        ) from None
    if not math.isfinite(v):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    return v


@dataclass(frozen=True)
class ParallelGeometry:
    """Parallel beam (synchrotron): the default of :func:`reconstruct`
    (``geometry=None`` means this). ``center``: column of the rotation axis,
    pixels (None: the detector's middle); ``pixel_size`` in micrometres, only
    recorded."""

    center: float | None = None
    pixel_size: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "center", _optional_index(self.center, "center"))
        if self.pixel_size is not None:
            object.__setattr__(self, "pixel_size", _length(self.pixel_size, "pixel_size", "um"))

    @property
    def magnification(self) -> float:
        return 1.0

    def to_dict(self) -> dict:
        return {"type": "parallel", "center": self.center, "pixel_size_um": self.pixel_size}


@dataclass(frozen=True)
class ConeGeometry:
    """Circular cone-beam scan of a lab micro-CT (point source, flat detector).

    Parameters
    ----------
    source_object : float or str, millimetres
        Distance from the source to the rotation axis (``"60mm"``,
        ``"6 cm"`` or a number in mm).
    source_detector : float or str, millimetres
        Distance from the source to the detector plane; > ``source_object``.
    pixel_size : float or str, micrometres
        Detector pixel pitch *in the detector plane*. For the film microscope
        (a lens-coupled scintillator film) that is the pixel at the film:
        the camera pixel divided by the optical magnification of the
        objective (6.5 um / 20x = 0.325 um), not the camera pixel.
    center_column, center_row : float, pixels, optional
        Column and row index (pixel centres at integers) where the central
        ray (from the source, through the rotation axis, perpendicular to the
        detector) meets the detector. Default: the detector's middle,
        (N - 1) / 2, resolved when the projections are known.
    tilt : float, degrees
        In-plane rotation of the detector: positive turns the column axis
        from the horizontal towards increasing rows (clockwise as an image
        with row 0 on top is displayed).

    Notes
    -----
    Geometric magnification M = source_detector / source_object; the voxel
    size at the object is pixel_size / M. The fan and cone angles (full
    angles, degrees) depend on the detector's size: :meth:`fan_angle` and
    :meth:`cone_angle` take it.
    """

    source_object: float
    source_detector: float
    pixel_size: float
    center_column: float | None = None
    center_row: float | None = None
    tilt: float = 0.0

    def __post_init__(self):
        sod = _length(self.source_object, "source_object", "mm")
        sdd = _length(self.source_detector, "source_detector", "mm")
        px = _length(self.pixel_size, "pixel_size", "um")
        if sdd <= sod:
            raise ParameterError(
                f"source_detector ({sdd} mm) must be larger than source_object ({sod} mm): "
                "the detector is behind the object"
            )
        try:
            tilt = float(self.tilt)
        except (TypeError, ValueError):
            raise ParameterError(f"tilt must be a number of degrees, got {self.tilt!r}") from None
        if not (math.isfinite(tilt) and abs(tilt) < 45.0):
            raise ParameterError(f"tilt must be a finite angle below 45 degrees, got {self.tilt!r}")
        object.__setattr__(self, "source_object", sod)
        object.__setattr__(self, "source_detector", sdd)
        object.__setattr__(self, "pixel_size", px)
        object.__setattr__(self, "tilt", tilt)
        for name in ("center_column", "center_row"):
            object.__setattr__(self, name, _optional_index(getattr(self, name), name))

    @property
    def magnification(self) -> float:
        """Geometric magnification at the rotation axis, source_detector / source_object."""
        return self.source_detector / self.source_object

    @property
    def voxel_size(self) -> float:
        """Voxel size at the object, micrometres: pixel_size / magnification."""
        return self.pixel_size / self.magnification

    def centers(self, n_rows: int, n_cols: int) -> tuple[float, float]:
        """(center_column, center_row) with the defaults resolved for a
        detector of ``n_rows`` x ``n_cols`` pixels."""
        cc = (n_cols - 1) / 2.0 if self.center_column is None else self.center_column
        cr = (n_rows - 1) / 2.0 if self.center_row is None else self.center_row
        return cc, cr

    def fan_angle(self, n_cols: int) -> float:
        """Full fan angle, degrees, spanned by ``n_cols`` columns (twice the
        larger half-angle when the central ray is off the middle)."""
        cc, _ = self.centers(1, n_cols)
        half = max(cc + 0.5, n_cols - 0.5 - cc) * self.pixel_size * 1e-3
        return 2.0 * math.degrees(math.atan2(half, self.source_detector))

    def cone_angle(self, n_rows: int) -> float:
        """Full cone angle, degrees, spanned by ``n_rows`` rows (twice the larger half-angle)."""
        _, cr = self.centers(n_rows, 1)
        half = max(cr + 0.5, n_rows - 0.5 - cr) * self.pixel_size * 1e-3
        return 2.0 * math.degrees(math.atan2(half, self.source_detector))

    def to_dict(self) -> dict:
        return {
            "type": "cone",
            "source_object_mm": self.source_object,
            "source_detector_mm": self.source_detector,
            "pixel_size_um": self.pixel_size,
            "center_column": self.center_column,
            "center_row": self.center_row,
            "tilt_deg": self.tilt,
            "magnification": self.magnification,
            "voxel_size_um": self.voxel_size,
        }
