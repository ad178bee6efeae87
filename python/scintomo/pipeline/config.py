"""The pipeline description: dataclasses that read from and write to TOML.

One section per step, in the order the steps run::

    [input]      file, format
    [flatfield]  reduce, bad_flat, clip_low
    [zinger]     enabled, threshold_counts, size
    [deconv]     psf (file), method, options
    [stripes]    method, options
    [phase]      method, options
    [distortion] model (file of scintomo.distortion), after the flat-field
    [alignment]  shifts (file of scintomo.alignment) or compute (a pre-pass on a band of
                 rows finds them), per-view drift undone
    [beamhardening] method, options or coefficients (after -log)
    [center]     value (given) or method (found), try range
    [geometry]   type (parallel | cone), source_object, source_detector,
                 detector pixel_size, center_column/row, tilt, shape, voxel_size;
                 half_acquisition (parallel, offset axis over 360 degrees)
    [recon]      algorithm, filter, backend
    [output]     folder, format, nsino_per_chunk or memory_budget_mb
    [report]     resolution (FRC of even/odd-angle halves, radial MTF of a disc),
                 resolution_slices, disc
    [run]        n_threads, cluster

``options`` tables are passed as keyword arguments to the function that
does the step (``scintomo.deconv.<method>``, ``scintomo.recon.remove_stripes``,
``scintomo.recon.paganin``), so every option those functions have can be set
without this file knowing it.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._validate import max_threads
from ..exceptions import ParameterError


def _f(default, doc: str, **kw):
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc}, **kw)
    return field(default=default, metadata={"doc": doc}, **kw)


@dataclass
class InputConfig:
    file: str = _f(
        "",
        "scan to reconstruct: DXchange .h5, NXtomo .nxs, a folder of TIFF frames, Nikon .xtekct, "
        "Zeiss .txrm",
    )
    format: str = _f("auto", "auto | dxchange | nxtomo | tiff | xtek | txrm")
    flats: str = _f(
        "", "TIFF scans: flats when not beside the projections (folder, TIFF file, or pattern)"
    )
    darks: str = _f("", "TIFF scans: darks when not beside the projections; none: zero dark")
    angles: str = _f("", "TIFF scans: angles file when not beside the projections")
    angle_unit: str = _f("", "deg | rad; empty: the file's unit attribute, else from the range")

    def reader_options(self) -> dict:
        """Keyword arguments of :func:`scintomo.io.read` (None where not set)."""
        return {
            "flats": self.flats or None,
            "darks": self.darks or None,
            "angles": self.angles or None,
            "angle_unit": self.angle_unit or None,
        }


@dataclass
class FlatFieldConfig:
    reduce: str = _f("mean", "how flats and darks are reduced: mean | median")
    bad_flat: str = _f("fill", "pixels where flat - dark <= 0: fill | clamp | nan | raise")
    clip_low: float = _f(1e-6, "transmission floor before -log (nabu's choice)")
    dynamic: bool = _f(
        False,
        "dynamic flat-field (eigen flat fields, Van Nieuwenhove 2015; scintomo.flatfield.dynamic)"
        ": eigen flats of the flat series, weights per projection; needs several flats",
    )
    dynamic_components: int = _f(0, "dynamic: eigen flats used; 0: by parallel analysis")
    dynamic_downsample: int = _f(2, "dynamic: the weights are fitted on d x d block means")
    dynamic_rows: int = _f(
        64,
        "dynamic: the weights are fitted once, on a band of this many central rows (written "
        "to <name>_dynamic_flat.json beside the volume, reused by a rerun) and applied to "
        "every block; 0: fitted again on each block's own rows (slower; blocks may differ)",
    )
    dynamic_weights: str = _f(
        "",
        "dynamic: weights and eigen-flat basis fitted before (the pre-pass's JSON); set by "
        "the run itself, empty otherwise",
    )


@dataclass
class ZingerConfig:
    enabled: bool = _f(False, "remove zingers (bright outliers from direct hits) before flat-field")
    threshold_counts: float = _f(
        500.0, "a pixel is a zinger when it exceeds its median by this (TomoPy 'dif')"
    )
    size: int = _f(3, "median filter width, pixels")


@dataclass
class DeconvConfig:
    psf: str = _f(
        "", "PSF file of the scintillator film (scintomo.psf.load); empty: no deconvolution"
    )
    method: str = _f("richardson_lucy", "richardson_lucy | wiener")
    options: dict = _f({}, "keyword arguments of scintomo.deconv.<method>, e.g. {iterations = 10}")
    halo_rows: int = _f(
        -1, "detector rows read on each side of a block for 2-D filters; -1: from the PSF"
    )


@dataclass
class StripeConfig:
    method: str = _f("", "ring-artefact removal, scintomo.recon.remove_stripes method; empty: none")
    options: dict = _f({}, "keyword arguments of scintomo.recon.remove_stripes")


@dataclass
class PhaseConfig:
    method: str = _f("", "phase retrieval: paganin, or empty for none (then -log)")
    options: dict = _f(
        {},
        "keyword arguments of scintomo.recon.paganin: pixel_size (um), distance (mm), "
        "energy (keV), delta_beta",
    )
    halo_rows: int = _f(32, "detector rows read on each side of a block for the phase filter")


@dataclass
class DistortionConfig:
    model: str = _f(
        "",
        "detector distortion model (JSON of scintomo.distortion.DistortionModel.save, fitted "
        "on a dot grid); empty: none. Applied to the flat-fielded projections",
    )


@dataclass
class AlignmentConfig:
    shifts: str = _f(
        "",
        "per-view (row, column) shifts (JSON of scintomo.alignment.Alignment.save, e.g. from "
        "align_projections on a band of rows); empty: none. Undone after the distortion",
    )
    compute: bool = _f(
        False,
        "find the shifts in a pre-pass (scintomo.alignment.align_projections on a band of "
        "rows), written to <name>_alignment.json/.png beside the volume, then undone in "
        "every block; a rerun with the same scan and settings reuses the file",
    )
    rows: int = _f(32, "compute: detector rows in the band the shifts are found on")
    row: float = _f(0.5, "compute: centre of the band, as a fraction of the height (0..1)")
    binning: int = _f(
        1, "compute: the band binned b x b for the pre-pass (shifts scaled back), for speed"
    )
    iterations: int = _f(10, "compute: at most this many reconstruct/re-project rounds")
    tol: float = _f(0.02, "compute: stop when no shift changes by more than this (pixels)")
    max_shift: float = _f(
        0.0, "compute: largest shift looked for, pixels (0: a quarter of the band's side)"
    )


@dataclass
class BeamHardeningConfig:
    method: str = _f(
        "",
        "beam-hardening linearisation after -log: spectrum (options below) | coefficients "
        "(from a step wedge, scintomo.beamhardening.from_step_wedge) | empty: none",
    )
    options: dict = _f(
        {},
        "spectrum: keyword arguments of scintomo.beamhardening.from_spectrum: kvp (kV), "
        "material (formula), density (g/cm3), max_thickness (mm), degree, detector",
    )
    coefficients: list = _f([], "coefficients: c1..cn of p_mono = c1 p + ... + cn p^n")
    p_max: float = _f(
        math.inf, "coefficients: largest calibrated -ln(I/I0); beyond it, the tangent"
    )


@dataclass
class CenterConfig:
    value: float = _f(
        math.nan,
        "rotation axis, pixels from the first column (tomopy-cli --rotation-axis); "
        "nan: found with method",
    )
    method: str = _f("vo", "how the centre is found when not given (scintomo.recon.find_center)")
    search_width: float = _f(10.0, "try: candidates from value - width to value + width, pixels")
    search_step: float = _f(0.5, "try: step between candidates, pixels")
    tilt_search_width: float = _f(
        0.0,
        "try, cone beam: also candidate detector tilts from tilt - width to tilt + width, "
        "degrees (0: none)",
    )
    tilt_search_step: float = _f(0.1, "try, cone beam: step between candidate tilts, degrees")
    row: float = _f(
        0.5, "try/find: the detector row used, as a fraction of the height (0.5: middle)"
    )


@dataclass
class GeometryConfig:
    type: str = _f(
        "",
        "parallel | cone; empty: the scan's own (a Nikon/Zeiss scan records a cone geometry), "
        "else parallel",
    )
    source_object: str = _f("", "cone: source to rotation axis, with its unit ('60mm'; bare: mm)")
    source_detector: str = _f("", "cone: source to detector, with its unit ('250mm'; bare: mm)")
    pixel_size: str = _f(
        "",
        "cone: detector pixel pitch in the detector plane ('0.185um'; bare: um); for the film "
        "microscope the pixel at the film (camera pixel / objective magnification)",
    )
    center_column: float = _f(
        math.nan, "cone: column where the central ray meets the detector; nan: the middle"
    )
    center_row: float = _f(
        math.nan, "cone: row where the central ray meets the detector; nan: the middle"
    )
    tilt: float = _f(0.0, "cone: detector in-plane tilt, degrees")
    shape: list = _f([], "cone: volume [nz, ny, nx]; empty: what the detector sees")
    voxel_size: str = _f("", "cone: voxel size ('0.05um'); empty: pixel_size / magnification")
    half_acquisition: bool = _f(
        False,
        "parallel: offset-axis 360-degree scan (axis near a detector edge, double field of "
        "view), stitched into a 180-degree sinogram of double width; [center] value is the "
        "axis column on the detector, nan: found with scintomo.recon.find_center_360",
    )
    half_acquisition_side: str = _f(
        "", "half acquisition: left | right, the edge the axis is near; empty: found"
    )


@dataclass
class ReconConfig:
    algorithm: str = _f(
        "gridrec", "gridrec | fbp | fdk (cone beam: always fdk) | sirt | cgls | tv (iterative)"
    )
    filter: str = _f("parzen", "filter of the filtered back-projection")
    backend: str = _f("auto", "auto | tomopy | builtin")
    iterations: int = _f(50, "iterative algorithms: number of iterations")
    tv_weight: float = _f(0.0, "tv: weight of the total-variation term")
    psf: str = _f(
        "",
        "iterative algorithms: PSF file of the film (.npy or .h5) put in the forward model "
        "(A = B P) instead of deconvolving the projections; empty: none",
    )


@dataclass
class OutputConfig:
    folder: str = _f("", "output folder; empty: <scan folder>_rec (tomopy-cli)")
    format: str = _f("tiff", "tiff (one file per slice) | h5 | zarr (v3)")
    nsino_per_chunk: int = _f(64, "sinogram rows per block: bounds memory")
    memory_budget_mb: float = _f(
        0.0, "if > 0, choose the block size so one worker stays under this"
    )
    start_row: int = _f(0, "first detector row to reconstruct")
    end_row: int = _f(-1, "one past the last row; -1: all")
    overwrite: bool = _f(
        False,
        "replace a volume that another run (other input, parameters or version) left at the "
        "output path, removing it first; false: refuse. The same run's volume is resumed",
    )


@dataclass
class ReportConfig:
    resolution: bool = _f(
        False,
        "measure the resolution in the reconstruction after the run: Fourier ring correlation "
        "of the even- and odd-angle half reconstructions of a few central slices (1/2-bit and "
        "1/7 thresholds) and the radial MTF of a disc edge (ASTM E1695), written beside the "
        "volume as <name>_rec_resolution.json and .png (parallel beam)",
    )
    resolution_slices: int = _f(
        4, "report: central slices reconstructed (twice, from each half of the angles)"
    )
    disc: list = _f(
        [],
        "report: [row, column] or [row, column, radius] (pixels of the slice) of a cylinder's "
        "or sphere's edge for the radial MTF; empty: the largest round blob, if any",
    )


@dataclass
class RunConfig:
    n_threads: int = _f(
        0, "threads for the kernels; 0: all cores (per Dask worker: cores / workers)"
    )
    cluster: str = _f("", "Dask: scheduler address tcp://..., or local:N for N worker processes")
    progress: bool = _f(True, "progress bars on a terminal")


@dataclass
class PipelineConfig:
    """Everything one reconstruction needs (see the module doc)."""

    input: InputConfig = field(default_factory=InputConfig)
    flatfield: FlatFieldConfig = field(default_factory=FlatFieldConfig)
    zinger: ZingerConfig = field(default_factory=ZingerConfig)
    deconv: DeconvConfig = field(default_factory=DeconvConfig)
    stripes: StripeConfig = field(default_factory=StripeConfig)
    phase: PhaseConfig = field(default_factory=PhaseConfig)
    distortion: DistortionConfig = field(default_factory=DistortionConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    beamhardening: BeamHardeningConfig = field(default_factory=BeamHardeningConfig)
    center: CenterConfig = field(default_factory=CenterConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    recon: ReconConfig = field(default_factory=ReconConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    run: RunConfig = field(default_factory=RunConfig)

    # --- conversions ---------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> PipelineConfig:
        cfg = cls()
        for sec_name, values in d.items():
            if sec_name not in SECTIONS:
                raise ParameterError(
                    f"{source}: unknown section [{sec_name}] (known: {', '.join(SECTIONS)})"
                )
            if not isinstance(values, dict):
                raise ParameterError(f"{source}: [{sec_name}] must be a table")
            sec = getattr(cfg, sec_name)
            names = {f.name: f for f in dataclasses.fields(sec)}
            for k, v in values.items():
                if k not in names:
                    raise ParameterError(
                        f"{source}: unknown key {k!r} in [{sec_name}] (known: {', '.join(names)})"
                    )
                default = getattr(sec, k)
                setattr(sec, k, _coerce(v, default, f"{source}: [{sec_name}] {k}"))
        cfg.validate(source)
        return cfg

    @classmethod
    def from_toml(cls, path) -> PipelineConfig:
        path = Path(path)
        try:
            d = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as e:
            raise ParameterError(f"{path}: not valid TOML ({e})") from None
        return cls.from_dict(d, source=str(path))

    def to_toml(self, *, comments: bool = True) -> str:
        return dumps_toml(self, comments=comments)

    def write(self, path, *, comments: bool = True) -> Path:
        from ..io.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_toml(comments=comments))
        return path

    def validate(self, source: str = "config") -> None:
        def one_of(v, name, allowed):
            if v not in allowed:
                raise ParameterError(f"{source}: {name} must be one of {allowed}, not {v!r}")

        one_of(
            self.input.format,
            "input.format",
            ("auto", "dxchange", "nxtomo", "tiff", "xtek", "txrm"),
        )
        one_of(self.input.angle_unit, "input.angle_unit", ("", "deg", "rad"))
        one_of(self.flatfield.reduce, "flatfield.reduce", ("mean", "median"))
        one_of(self.flatfield.bad_flat, "flatfield.bad_flat", ("fill", "clamp", "nan", "raise"))
        one_of(self.output.format, "output.format", ("tiff", "h5", "zarr"))
        one_of(
            self.recon.algorithm,
            "recon.algorithm",
            ("gridrec", "fbp", "fdk", "sirt", "cgls", "tv"),
        )
        r = self.recon
        if isinstance(r.iterations, bool) or not isinstance(r.iterations, int) or r.iterations < 0:
            raise ParameterError(
                f"{source}: recon.iterations must be an integer >= 0, not {r.iterations!r}"
            )
        if not (isinstance(r.tv_weight, (int, float)) and math.isfinite(r.tv_weight)) or (
            r.tv_weight < 0
        ):
            raise ParameterError(f"{source}: recon.tv_weight must be >= 0, not {r.tv_weight!r}")
        if r.psf and r.algorithm not in ("sirt", "cgls", "tv"):
            raise ParameterError(
                f"{source}: recon.psf is the PSF of the iterative algorithms' model; with "
                f"{r.algorithm} deconvolve the projections instead ([deconv] psf)"
            )
        if r.psf and self.deconv.psf:
            raise ParameterError(
                f"{source}: recon.psf and deconv.psf both undo the film's blur: choose one"
            )
        one_of(self.geometry.type, "geometry.type", ("", "parallel", "cone"))
        g = self.geometry
        one_of(g.half_acquisition_side, "geometry.half_acquisition_side", ("", "left", "right"))
        if g.half_acquisition and g.type == "cone":
            raise ParameterError(
                f"{source}: geometry.half_acquisition is for parallel-beam scans (a cone-beam "
                "FDK weights a displaced detector by itself: give center_column)"
            )
        if g.half_acquisition and r.algorithm in ("sirt", "cgls", "tv"):
            raise ParameterError(
                f"{source}: geometry.half_acquisition works with the direct methods "
                f"(gridrec, fbp), not recon.algorithm = {r.algorithm!r}"
            )
        if g.shape and (
            len(g.shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in g.shape)
        ):
            raise ParameterError(
                f"{source}: geometry.shape must be three positive integers [nz, ny, nx], "
                f"not {g.shape!r}"
            )
        if not (math.isfinite(g.tilt) and abs(g.tilt) < 45.0):
            raise ParameterError(f"{source}: geometry.tilt must be below 45 degrees")
        one_of(self.recon.backend, "recon.backend", ("auto", "tomopy", "builtin"))
        one_of(self.deconv.method, "deconv.method", ("richardson_lucy", "wiener"))
        one_of(self.phase.method, "phase.method", ("", "paganin"))
        one_of(self.beamhardening.method, "beamhardening.method", ("", "spectrum", "coefficients"))
        if self.flatfield.dynamic and self.deconv.psf:
            raise ParameterError(
                f"{source}: flatfield.dynamic and deconvolution cannot both run (the "
                "deconvolution divides by one flat per series)"
            )
        if self.flatfield.dynamic_rows < 0:
            raise ParameterError(f"{source}: flatfield.dynamic_rows must be >= 0")
        if self.flatfield.dynamic_components < 0 or self.flatfield.dynamic_downsample < 1:
            raise ParameterError(
                f"{source}: flatfield.dynamic_components must be >= 0 and dynamic_downsample >= 1"
            )
        bh = self.beamhardening
        if bh.method and self.phase.method:
            raise ParameterError(
                f"{source}: beamhardening acts on -log projections; phase retrieval replaces "
                "the -log, so the two cannot both run"
            )
        if bh.method == "coefficients" and (
            not bh.coefficients
            or not all(isinstance(c, (int, float)) and math.isfinite(c) for c in bh.coefficients)
        ):
            raise ParameterError(
                f"{source}: beamhardening.coefficients must be a non-empty list of numbers"
            )
        if bh.method == "spectrum":
            missing = [k for k in ("material", "density", "max_thickness") if k not in bh.options]
            if missing or not ("kvp" in bh.options or "spectrum" in bh.options):
                raise ParameterError(
                    f"{source}: beamhardening method 'spectrum' needs options kvp, material, "
                    f"density, max_thickness (missing: {', '.join(missing) or 'kvp'})"
                )
        al = self.alignment
        if al.compute:
            if al.shifts:
                raise ParameterError(
                    f"{source}: alignment: give shifts (a file) or compute = true, not both"
                )
            if al.rows < 4 or al.binning < 1 or al.iterations < 1:
                raise ParameterError(
                    f"{source}: alignment.rows must be >= 4, binning and iterations >= 1"
                )
            if not 0 <= al.row <= 1:
                raise ParameterError(f"{source}: alignment.row is a fraction of the height")
            if not (al.tol > 0 and al.max_shift >= 0):
                raise ParameterError(
                    f"{source}: alignment.tol must be > 0 and alignment.max_shift >= 0"
                )
            if al.rows // al.binning < 4:
                raise ParameterError(
                    f"{source}: alignment.rows / binning leaves fewer than 4 rows to align on"
                )
        if self.output.nsino_per_chunk < 1:
            raise ParameterError(f"{source}: output.nsino_per_chunk must be >= 1")
        if self.output.memory_budget_mb < 0:
            raise ParameterError(f"{source}: output.memory_budget_mb must be >= 0")
        if not self.flatfield.clip_low > 0:
            raise ParameterError(
                f"{source}: flatfield.clip_low must be > 0 (it is the floor before -log)"
            )
        if self.zinger.size < 1 or self.zinger.threshold_counts <= 0:
            raise ParameterError(
                f"{source}: zinger.size must be >= 1 and zinger.threshold_counts > 0"
            )
        if self.center.search_step <= 0 or self.center.search_width < 0:
            raise ParameterError(f"{source}: center.search_step must be > 0 and search_width >= 0")
        c = self.center
        if not (c.tilt_search_step > 0 and 0 <= c.tilt_search_width < 45):
            raise ParameterError(
                f"{source}: center.tilt_search_step must be > 0 and tilt_search_width in [0, 45)"
            )
        if not 0 <= self.center.row <= 1:
            raise ParameterError(f"{source}: center.row is a fraction of the height, in [0, 1]")
        rep = self.report
        if not 1 <= rep.resolution_slices <= 64:
            raise ParameterError(f"{source}: report.resolution_slices must be in [1, 64]")
        if not _disc_ok(rep.disc):
            raise ParameterError(
                f"{source}: report.disc must be [] or [row, column] or [row, column, radius] "
                f"(pixels, row and column >= 0, radius > 0), not {rep.disc!r}"
            )
        if self.run.n_threads < 0:
            raise ParameterError(f"{source}: run.n_threads must be >= 0")
        if self.run.n_threads > max_threads():  # the kernels' one bound, 64 per core
            raise ParameterError(f"{source}: run.n_threads must be at most {max_threads()}")
        if self.center.value < 0:  # NaN (found) passes; the upper end needs the data
            raise ParameterError(f"{source}: center.value must be a column index >= 0")


def _disc_ok(disc) -> bool:
    """[] or [row, column] or [row, column, radius]: finite numbers, >= 0, radius > 0."""
    if not isinstance(disc, list):
        return False
    if not disc:
        return True
    nums = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in disc
    )
    return nums and len(disc) in (2, 3) and min(disc) >= 0 and (len(disc) == 2 or disc[2] > 0)


SECTIONS = tuple(f.name for f in dataclasses.fields(PipelineConfig))


def _coerce(v, default, where: str):
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise ParameterError(f"{where} must be true or false, not {v!r}")
        return v
    if isinstance(default, int):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ParameterError(f"{where} must be an integer, not {v!r}")
        return v
    if isinstance(default, float):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ParameterError(f"{where} must be a number, not {v!r}")
        return float(v)
    if isinstance(default, str):
        if not isinstance(v, str):
            raise ParameterError(f"{where} must be a string, not {v!r}")
        return v
    if isinstance(default, dict):
        if not isinstance(v, dict):
            raise ParameterError(f"{where} must be a table, not {v!r}")
        return dict(v)
    return v


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ParameterError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def dumps_toml(cfg: PipelineConfig, *, comments: bool = True) -> str:
    """TOML text of ``cfg`` (read back by :meth:`PipelineConfig.from_toml`)."""
    lines = []
    if comments:
        lines += [
            "# scintomo pipeline configuration (scintomo recon --config FILE).",
            "# Steps run in the order of the sections. Units are in the comments.",
            "",
        ]
    for sec_name in SECTIONS:
        sec = getattr(cfg, sec_name)
        lines.append(f"[{sec_name}]")
        for f in dataclasses.fields(sec):
            if comments:
                lines.append(f"# {f.metadata.get('doc', '')}")
            lines.append(f"{f.name} = {_toml_value(getattr(sec, f.name))}")
        lines.append("")
    return "\n".join(lines)
