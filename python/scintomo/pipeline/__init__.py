"""From a scan on disk to a reconstructed volume, out of core.

- :class:`PipelineConfig` (and its sections): the description of a run, the
  same as Python objects and as a TOML file (``scintomo init`` writes one).
- :func:`run`: the whole scan, block by block of sinogram rows, with bounded
  memory, overlapped reading / computing / writing, resumable, optionally on
  a Dask cluster (:func:`make_client`).
- :func:`try_centers`: one slice per candidate rotation centre.
- :func:`resolution_report`: FRC of even/odd-angle half reconstructions and the radial
  MTF of a disc, on a few central rows (``[report] resolution``; :mod:`.report`).

One module per stage: ``plan`` (blocks, halo, memory budget), ``read``,
``compute`` (the steps and the centre), ``align`` (the drift pre-pass), ``write`` (output layout), ``threads``
and ``dask`` (the drivers), ``results``; ``runner`` strings them together.
"""

from __future__ import annotations

from .align import alignment_paths
from .compute import compute_block, preprocess, remove_zingers
from .config import (
    CenterConfig,
    DeconvConfig,
    FlatFieldConfig,
    InputConfig,
    OutputConfig,
    PhaseConfig,
    PipelineConfig,
    ReconConfig,
    ReportConfig,
    RunConfig,
    StripeConfig,
    ZingerConfig,
    dumps_toml,
)
from .dask import make_client
from .dynflat import dynamic_flat_path
from .plan import block_ranges, estimate_block_bytes, halo_rows, nsino_for_budget
from .read import RawBlock, input_corrected, open_scan, read_block
from .report import ResolutionReport, resolution_report
from .results import RunResult, TryResult
from .runner import run, try_centers
from .write import output_paths

__all__ = [
    "CenterConfig",
    "DeconvConfig",
    "FlatFieldConfig",
    "InputConfig",
    "OutputConfig",
    "PhaseConfig",
    "PipelineConfig",
    "RawBlock",
    "ReconConfig",
    "ReportConfig",
    "ResolutionReport",
    "RunConfig",
    "RunResult",
    "StripeConfig",
    "TryResult",
    "ZingerConfig",
    "alignment_paths",
    "block_ranges",
    "compute_block",
    "dynamic_flat_path",
    "dumps_toml",
    "estimate_block_bytes",
    "halo_rows",
    "input_corrected",
    "make_client",
    "nsino_for_budget",
    "open_scan",
    "output_paths",
    "preprocess",
    "read_block",
    "remove_zingers",
    "resolution_report",
    "run",
    "try_centers",
]
