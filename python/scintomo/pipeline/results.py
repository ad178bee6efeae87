"""What a run returns: small frozen dataclasses with ``to_dict()``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

__all__ = ["RunResult", "TryResult"]


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` did. Times in seconds."""

    output: str
    center: float
    shape: tuple
    n_blocks: int
    n_skipped: int
    nsino_per_chunk: int
    seconds: float
    read_seconds: float
    compute_seconds: float
    write_seconds: float
    n_workers: int = 1
    extra: dict = field(default_factory=dict)
    #: the pace the volume was computed at, as recorded with it by the run that computed
    #: it (slices/s), when this run resumed it; None for a fresh volume
    recorded_slices_per_second: float | None = None
    #: ``[report] resolution``: the report's figures (:meth:`ResolutionReport.to_dict`:
    #: FRC crossings, radial MTF, the JSON and PNG beside the volume); None when off
    resolution: dict | None = None
    #: the report's one-line summary (empty when off)
    resolution_summary: str = ""

    @property
    def slices_per_second(self) -> float:
        """Slices reconstructed per second by this run; a run that found every block on
        disk reports the pace recorded with the volume (when there is one)."""
        if self.n_skipped == self.n_blocks and self.recorded_slices_per_second is not None:
            return self.recorded_slices_per_second
        done = self.shape[0] * (self.n_blocks - self.n_skipped) / max(self.n_blocks, 1)
        return done / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict:
        d = asdict(self)
        d["slices_per_second"] = self.slices_per_second
        return d


@dataclass(frozen=True)
class TryResult:
    """Slices written by :func:`try_centers`: one TIFF per candidate centre (pixels)."""

    folder: str
    row: int
    centers: tuple
    files: tuple
    seconds: float
    #: The sharpest candidate (:func:`scintomo.recon.score_centers`); NaN when not scored.
    best_center: float = float("nan")
    #: The best candidate is the first or last: widen the search.
    best_at_edge: bool = False
    #: ``try_scores.json`` beside the slices: every file with its centre and scores.
    scores_file: str = ""
    #: cone beam, ``[center] tilt_search_width`` > 0: the candidate tilts (degrees), their
    #: files, the sharpest and ``try_tilt_scores.json``
    tilts: tuple = ()
    tilt_files: tuple = ()
    best_tilt: float = float("nan")
    tilt_scores_file: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
