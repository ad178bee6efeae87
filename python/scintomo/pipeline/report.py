"""Resolution measured in the reconstruction, for the run's report (issue 16).

After the volume is written, ``[report] resolution = true`` (``--resolution-report``)
reads a few central detector rows again (``resolution_slices``, 4 by default),
preprocesses them as the run did, and reconstructs them three times with the run's
own reconstruction (algorithm, filter, backend, centre): from the even and from the
odd projection angles (in angle order), and from all of them.

- Fourier ring correlation of the two half reconstructions
  (:func:`scintomo.recon.fourier_ring_correlation`; rings of the slices summed), with
  the 1/2-bit and 1/7 crossings in cycles/px, lp/mm and nm, and Crowther's angular
  limit of a half (above it the halves' view aliasing, not the system, drives the
  curve: see :func:`scintomo.recon.frc`).
- The radial MTF (ASTM E1695, :func:`scintomo.mtf.radial_edge_mtf`) of the middle slice
  of the full reconstruction, at the disc the user gives (``[report] disc``) or, when
  none is given, at the largest round blob if there is one (a blob as large as the
  reconstruction's field of view is not taken: that is the field's edge). No disc is a
  note in the report, not an error.

The cost is bounded: the rows are read and preprocessed once, and the three
reconstructions of ``resolution_slices`` rows cost about two full reconstructions of
those rows, whatever the volume's size.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np

from ..exceptions import NumericalError, ParameterError, ScintomoWarning
from .compute import _reconstruct, preprocess
from .config import PipelineConfig
from .read import read_block

log = logging.getLogger("scintomo.pipeline")

__all__ = ["ResolutionReport", "report_rows", "resolution_report"]

# a round blob whose radius exceeds this fraction of the slice's half-width is taken for
# the reconstruction's field of view (its circular mask), not for a sample's disc
_FOV_RADIUS_FRACTION = 0.45


@dataclass(frozen=True)
class ResolutionReport:
    """What :func:`resolution_report` measured.

    ``rows``: the detector rows (start, stop) reconstructed; ``frc``: the
    :class:`~scintomo.recon.FRC` of the even- and odd-angle halves; ``radial``: the
    :class:`~scintomo.mtf.RadialMTF` of the middle slice, or None with the reason in
    ``radial_note``; ``notes``: warnings worth reading beside the figures;
    ``seconds``: time taken; ``json_path`` and ``plot_path``: the files written
    beside the volume (empty when not written).
    """

    rows: tuple
    frc: object
    radial: object
    radial_note: str
    notes: tuple
    seconds: float
    json_path: str = ""
    plot_path: str = ""

    def to_dict(self) -> dict:
        """Plain Python values (NaN as None via :func:`scintomo._json.to_jsonable`)."""
        from .._json import to_jsonable

        f = self.frc
        d = {
            "rows": list(self.rows),
            "method": "Fourier ring correlation of the reconstructions from the even and the "
            "odd projection angles (rings of the slices summed); radial MTF of a disc's edge "
            "(ASTM E1695) in the middle slice of the full reconstruction",
            "frc": f.to_dict(),
            "frc_half_bit_cycles_per_px": f.frequency_half_bit,
            "frc_one_seventh_cycles_per_px": f.frequency_one_seventh,
            "radial_mtf": None if self.radial is None else self.radial.to_dict(),
            "radial_note": self.radial_note,
            "notes": list(self.notes),
            "seconds": self.seconds,
            "json": self.json_path,
            "plot": self.plot_path,
        }
        return to_jsonable(d)

    def summary(self) -> str:
        """One line for a terminal: the FRC crossings and the radial MTF50."""
        f = self.frc

        def one(freq, nm):
            if not np.isfinite(freq):
                return "not crossed below Nyquist"
            s = f"{freq:.3g} cycles/px"
            if f.pixel_size_um:
                s += f" ({freq * 1e3 / f.pixel_size_um:.4g} lp/mm, {nm:.0f} nm)"
            return s

        txt = (
            f"FRC 1/2-bit {one(f.frequency_half_bit, f.resolution_nm_half_bit)}, "
            f"1/7 {one(f.frequency_one_seventh, f.resolution_nm_one_seventh)}"
        )
        if self.radial is not None:
            r = self.radial
            txt += f"; radial MTF50 {r.mtf50:.3g} cycles/px"
            if r.pixel_size_um and np.isfinite(r.mtf50):
                txt += f" ({r.mtf50_lp_per_mm:.4g} lp/mm)"
        else:
            txt += f"; no radial MTF ({self.radial_note})"
        return txt

    def plot(self):
        """The FRC (halves, thresholds, crossings) and, when measured, the radial ESF, LSF
        and MTF; returns the figure."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if self.radial is None:
            fig, ax = plt.subplots(figsize=(6.5, 4.2))
            self.frc.plot(ax=ax)
            ax.set_title(f"Fourier ring correlation, rows {self.rows[0]}:{self.rows[1]}")
            return fig
        fig = plt.figure(figsize=(12, 8.2), layout="constrained")
        top, bottom = fig.subfigures(2, 1)
        ax = top.subplots()
        self.frc.plot(ax=ax)
        ax.set_title(f"Fourier ring correlation, rows {self.rows[0]}:{self.rows[1]}")
        self.radial.plot(fig=bottom)
        return fig


def report_rows(start: int, stop: int, n: int) -> tuple[int, int]:
    """The ``n`` central rows of ``start:stop`` (all of them when fewer)."""
    n = max(1, min(int(n), stop - start))
    r0 = start + (stop - start - n) // 2
    return r0, r0 + n


def _radial(full: np.ndarray, cfg: PipelineConfig, px_um):
    """(RadialMTF or None, note) of the middle slice."""
    from ..mtf import radial_edge_mtf

    sl = full[full.shape[0] // 2]
    disc = cfg.report.disc
    kw = {"pixel_size": px_um}
    if disc:
        kw["center"] = (float(disc[0]), float(disc[1]))
        if len(disc) == 3:
            kw["radius"] = float(disc[2])
        # the user's disc: its failure is an error worth seeing, not a silent gap
        try:
            return radial_edge_mtf(sl, **kw), f"disc given at {list(disc)}"
        except (NumericalError, ParameterError) as e:
            raise type(e)(f"[report] disc {list(disc)}: {e}") from None
    try:
        r = radial_edge_mtf(sl, **kw)
    except (NumericalError, ParameterError) as e:
        return None, f"no disc found in the middle slice ({e})"
    if r.radius_px > _FOV_RADIUS_FRACTION * min(sl.shape):
        return None, (
            f"the round edge found (radius {r.radius_px:.1f} px) is the field of view's, not a "
            "sample's; give [report] disc = [row, column, radius] for a cylinder or sphere"
        )
    return r, "largest round blob in the middle slice"


def resolution_report(
    scan,
    cfg: PipelineConfig,
    *,
    center: float,
    rows: tuple[int, int],
    halo: int = 0,
    recon_fn=None,
    n_threads=None,
    pixel_size_um=None,
    paths: dict | None = None,
) -> ResolutionReport:
    """FRC of the even/odd half reconstructions and radial MTF of the central rows.

    Parameters
    ----------
    scan : scintomo.io.Scan
        The scan the run reconstructed (parallel beam).
    cfg : PipelineConfig
        The run's configuration (its preprocessing and reconstruction are repeated).
    center : float, pixels
        The rotation axis the run used.
    rows : (int, int)
        The rows the run reconstructed; the ``cfg.report.resolution_slices`` central ones
        are measured.
    halo, recon_fn, n_threads
        As for the run's blocks.
    pixel_size_um : float, micrometres, optional
        For lp/mm and nm.
    paths : dict, optional
        :func:`~scintomo.pipeline.output_paths` of the run: the JSON and PNG are written
        (atomically) beside the volume as ``<name>_rec_resolution.json`` / ``.png``.

    Returns
    -------
    ResolutionReport
    """
    from ..recon import fourier_ring_correlation
    from ..recon._frc import _angular_limit

    t0 = time.perf_counter()
    r0, r1 = report_rows(rows[0], rows[1], cfg.report.resolution_slices)
    data = preprocess(read_block(scan, r0, r1, halo=halo), cfg, n_threads=n_threads)
    theta = np.asarray(scan.theta, dtype=np.float64)
    if theta.size < 4:
        raise ParameterError(f"the resolution report needs >= 4 projections, got {theta.size}")
    # the halves as recon.frc takes them: every other angle in angle order
    order = np.argsort(theta, kind="stable")
    even, odd = np.sort(order[0::2]), np.sort(order[1::2])
    a, b = (
        _reconstruct(np.ascontiguousarray(data[i]), theta[i], center, cfg, recon_fn, n_threads)
        for i in (even, odd)
    )
    frc = fourier_ring_correlation(a, b, pixel_size=pixel_size_um)
    del a, b
    frc = replace(frc, angular_limit=_angular_limit(data, theta, even, odd, center))
    notes = []
    worst = np.nanmax([frc.frequency_half_bit, frc.frequency_one_seventh, -1.0])
    if worst > frc.angular_limit:
        notes.append(
            f"the FRC crosses a threshold at {worst:.3g} cycles/px, above {frc.angular_limit:.3g} "
            "cycles/px where each half's angles stop sampling the object (Crowther): read it as "
            "a lower bound of the resolved frequency, not the resolution"
        )
    full = _reconstruct(data, theta, center, cfg, recon_fn, n_threads)
    del data
    radial, radial_note = _radial(full, cfg, pixel_size_um)
    rep = ResolutionReport(
        rows=(r0, r1),
        frc=frc,
        radial=radial,
        radial_note=radial_note,
        notes=tuple(notes),
        seconds=time.perf_counter() - t0,
    )
    for n in notes:
        warnings.warn(n, ScintomoWarning, stacklevel=3)  # at the caller of run()
    if paths is not None:
        rep = _write(rep, paths)
    log.info("resolution (rows %d:%d): %s", r0, r1, rep.summary())
    return rep


def _write(rep: ResolutionReport, paths: dict) -> ResolutionReport:
    """The report's JSON and PNG beside the volume, each written atomically."""
    import matplotlib.pyplot as plt

    from .._json import write_json
    from ..io.atomic import atomic_path

    folder = paths["folder"]
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{paths['name']}_rec_resolution"
    png, js = folder / f"{stem}.png", folder / f"{stem}.json"
    fig = rep.plot()
    try:
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    rep = replace(rep, json_path=str(js), plot_path=str(png))
    write_json(js, rep.to_dict())
    return rep
