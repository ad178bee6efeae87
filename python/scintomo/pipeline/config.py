"""The pipeline description: dataclasses that read from and write to TOML.

One section per step, in the order the steps run::

    [input]      file, format
    [flatfield]  reduce, bad_flat, clip_low
    [zinger]     enabled, threshold_counts, size
    [deconv]     psf (file), method, options
    [stripes]    method, options
    [phase]      method, options
    [center]     value (given) or method (found), try range
    [recon]      algorithm, filter, backend
    [output]     folder, format, nsino_per_chunk or memory_budget_mb
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
    file: str = _f("", "scan to reconstruct: DXchange .h5, NXtomo .nxs, or a folder of TIFF frames")
    format: str = _f("auto", "auto | dxchange | nxtomo | tiff")


@dataclass
class FlatFieldConfig:
    reduce: str = _f("mean", "how flats and darks are reduced: mean | median")
    bad_flat: str = _f("fill", "pixels where flat - dark <= 0: fill | clamp | nan | raise")
    clip_low: float = _f(1e-6, "transmission floor before -log (nabu's choice)")


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
class CenterConfig:
    value: float = _f(
        math.nan,
        "rotation axis, pixels from the first column (tomopy-cli --rotation-axis); "
        "nan: found with method",
    )
    method: str = _f("vo", "how the centre is found when not given (scintomo.recon.find_center)")
    search_width: float = _f(10.0, "try: candidates from value - width to value + width, pixels")
    search_step: float = _f(0.5, "try: step between candidates, pixels")
    row: float = _f(
        0.5, "try/find: the detector row used, as a fraction of the height (0.5: middle)"
    )


@dataclass
class ReconConfig:
    algorithm: str = _f("gridrec", "gridrec | fbp")
    filter: str = _f("parzen", "filter of the filtered back-projection")
    backend: str = _f("auto", "auto | tomopy | builtin")


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
    center: CenterConfig = field(default_factory=CenterConfig)
    recon: ReconConfig = field(default_factory=ReconConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
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

        one_of(self.input.format, "input.format", ("auto", "dxchange", "nxtomo", "tiff"))
        one_of(self.flatfield.reduce, "flatfield.reduce", ("mean", "median"))
        one_of(self.flatfield.bad_flat, "flatfield.bad_flat", ("fill", "clamp", "nan", "raise"))
        one_of(self.output.format, "output.format", ("tiff", "h5", "zarr"))
        one_of(self.recon.algorithm, "recon.algorithm", ("gridrec", "fbp"))
        one_of(self.recon.backend, "recon.backend", ("auto", "tomopy", "builtin"))
        one_of(self.deconv.method, "deconv.method", ("richardson_lucy", "wiener"))
        one_of(self.phase.method, "phase.method", ("", "paganin"))
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
        if not 0 <= self.center.row <= 1:
            raise ParameterError(f"{source}: center.row is a fraction of the height, in [0, 1]")
        if self.run.n_threads < 0:
            raise ParameterError(f"{source}: run.n_threads must be >= 0")
        if self.run.n_threads > max_threads():  # the kernels' one bound, 64 per core
            raise ParameterError(f"{source}: run.n_threads must be at most {max_threads()}")
        if self.center.value < 0:  # NaN (found) passes; the upper end needs the data
            raise ParameterError(f"{source}: center.value must be a column index >= 0")


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
