"""scintomo recon: a scan file to a reconstructed volume (tomopy-cli's conventions).

    scintomo recon --file-name /data/scan.h5 --rotation-axis 1024.5 --reconstruction-type try
    scintomo recon --file-name /data/scan.h5 --rotation-axis 1024.5 --reconstruction-type full \\
        --nsino-per-chunk 64 --save-format zarr --cluster local:4
    scintomo recon --file-name /data/lab.h5 --reconstruction-type full --geometry cone \\
        --source-object-distance 60mm --source-detector-distance 250mm --pixel-size 0.185um

``try`` writes one slice per candidate centre into ``/data_rec/try_center/scan/``;
``full`` writes the volume into ``/data_rec/scan_rec/`` (TIFF, one file per
slice), ``/data_rec/scan_rec.h5`` or ``/data_rec/scan_rec.zarr``, and a log
file ``/data_rec/scan_rec.log``. Options given here override ``--config``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..units import PIXEL_SIZE_HELP, pixel_size_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "recon",
        help="reconstruct a scan (DXchange, NXtomo, TIFF folder) block by block, optionally on "
        "Dask",
        description=__doc__.split("\n\n", 1)[0]
        + " Scan formats: DXchange .h5, NeXus NXtomo .nxs, a folder "
        "of numbered TIFFs with an angles file. Output next to the scan's folder, in <folder>_rec.",
    )
    a = p.add_argument
    a(
        "--file-name",
        type=Path,
        metavar="PATH",
        help="scan file (or TIFF folder); default: [input] file of --config",
    )
    a("--config", type=Path, metavar="TOML", help="pipeline TOML (scintomo init writes one)")
    a(
        "--flats",
        help="TIFF scans: flats when not beside the projections: a folder, a (multi-page) TIFF "
        "file, or a pattern such as 'scan/flat_*.tif'",
    )
    a(
        "--darks",
        help="TIFF scans: darks when not beside the projections (as --flats); none found: a "
        "zero dark, with a warning",
    )
    a("--angles", help="TIFF scans: angles file when not beside the projections")
    a(
        "--angle-unit",
        choices=("deg", "rad"),
        help="unit of the scan's angles; default: the file's unit, else the one in which they "
        "cover a scan (about 180 or 360 degrees)",
    )
    a(
        "--reconstruction-type",
        choices=("try", "full"),
        default="try",
        help="try: one slice per candidate centre; full: the whole volume (default: try)",
    )
    a(
        "--rotation-axis",
        type=float,
        metavar="PX",
        help="rotation axis, pixels from the first column; absent: found by --rotation-axis-method",
    )
    a(
        "--rotation-axis-method",
        metavar="NAME",
        help="how the axis is found when not given (a scintomo.recon.find_center method: vo, ...)",
    )
    a(
        "--center-search-width",
        type=float,
        metavar="PX",
        help="try: half-width of the centre search, pixels",
    )
    a(
        "--center-search-step",
        type=float,
        metavar="PX",
        help="try: step of the centre search, pixels",
    )
    a(
        "--tilt-search-width",
        type=float,
        metavar="DEG",
        help="try, cone beam: also candidate detector tilts within +- this of --detector-tilt",
    )
    a(
        "--tilt-search-step",
        type=float,
        metavar="DEG",
        help="try, cone beam: step of the tilt candidates, degrees",
    )
    a(
        "--nsino",
        type=float,
        metavar="FRACTION",
        help="try: detector row as a fraction of the height (0.5: middle)",
    )
    a("--nsino-per-chunk", type=int, metavar="N", help="sinogram rows per block (bounds memory)")
    a(
        "--memory-budget",
        type=float,
        metavar="MB",
        help="choose the block size to stay under this, MB (default: no budget, blocks of "
        "--nsino-per-chunk rows)",
    )
    a("--start-row", type=int, metavar="ROW", help="first detector row (full)")
    a("--end-row", type=int, metavar="ROW", help="one past the last detector row (full; -1: all)")
    a(
        "--save-format",
        choices=("tiff", "h5", "zarr"),
        help="volume format (full): tiff (one file per slice), h5 or zarr",
    )
    a(
        "--output-folder",
        type=Path,
        metavar="FOLDER",
        help="where to write; default: <scan folder>_rec beside the scan path given",
    )
    a(
        "--reconstruction-algorithm",
        choices=("gridrec", "fbp", "sirt", "cgls", "tv"),
        help="gridrec (Fourier gridding), fbp (filtered back-projection), or the iterative "
        "sirt, cgls, tv (total variation); with these --psf puts the film's PSF in the model "
        "instead of deconvolving the projections",
    )
    a("--iterations", type=int, metavar="N", help="iterations of sirt / cgls / tv")
    a("--tv-weight", type=float, metavar="W", help="weight of the total-variation term (tv)")
    a("--filter", dest="filter_name", metavar="NAME", help="reconstruction filter (parzen, ...)")
    a(
        "--backend",
        choices=("auto", "tomopy", "builtin"),
        help="reconstruction code: TomoPy, scintomo's own, or auto (TomoPy when importable)",
    )
    a(
        "--overwrite",
        action="store_true",
        default=None,
        help="full: replace a volume that a different run (other scan, parameters or "
        "scintomo version) left at the output path; without it such a volume is an error. "
        "The same run's volume is always resumed",
    )
    a(
        "--resolution-report",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="full: measure the resolution in the reconstruction (FRC of the even- and "
        "odd-angle half reconstructions of a few central slices, radial MTF of a disc edge) "
        "and write <name>_rec_resolution.json and .png beside the volume",
    )
    a(
        "--zinger-removal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="remove zingers",
    )
    a(
        "--zinger-level",
        type=float,
        metavar="COUNTS",
        help="zinger threshold above the local median, counts",
    )
    a(
        "--psf",
        type=Path,
        metavar="FILE",
        help="PSF file of the film (.npy or .h5): deconvolve the projections by it",
    )
    a(
        "--deconv-method",
        choices=("richardson_lucy", "wiener"),
        help="deconvolution with --psf",
    )
    a(
        "--stripe-method",
        metavar="NAME",
        help="ring removal method (scintomo.recon.remove_stripes); none when not given",
    )
    a(
        "--flat-reduce",
        choices=("mean", "median"),
        help="how the flats and darks are reduced to one image each",
    )
    a(
        "--retrieve-phase-method",
        choices=("none", "paganin"),
        help="phase retrieval before recon (paganin needs --energy, --propagation-distance, "
        "--pixel-size, --delta-beta)",
    )
    a("--energy", type=float, metavar="KEV", help="paganin: photon energy, keV")
    a(
        "--propagation-distance",
        type=float,
        metavar="MM",
        help="paganin: sample-detector distance, mm",
    )
    a(
        "--pixel-size",
        type=pixel_size_arg,
        metavar="SIZE",
        help="paganin: pixel size at the sample, " + PIXEL_SIZE_HELP,
    )
    a("--delta-beta", type=float, metavar="RATIO", help="paganin: delta / beta of the material")
    a(
        "--geometry",
        choices=("parallel", "cone"),
        help="beam geometry ([geometry] type); default: the scan's own (Nikon/Zeiss scans "
        "record a cone), else parallel",
    )
    a(
        "--source-object-distance",
        metavar="LENGTH",
        help="cone: source to rotation axis, with a unit (60mm; bare number: mm)",
    )
    a(
        "--source-detector-distance",
        metavar="LENGTH",
        help="cone: source to detector, with a unit (250mm; bare number: mm)",
    )
    a(
        "--detector-pixel-size",
        metavar="SIZE",
        help="cone: detector pixel pitch in the detector plane (the pixel at the film for the "
        "film microscope), with a unit (0.185um; bare number: um); with --geometry cone and "
        "no phase retrieval, --pixel-size means this",
    )
    a("--center-column", type=float, metavar="PX", help="cone: column of the central ray")
    a("--center-row", type=float, metavar="PX", help="cone: row of the central ray")
    a("--detector-tilt", type=float, metavar="DEG", help="cone: detector in-plane tilt, degrees")
    a(
        "--half-acquisition",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="parallel: offset-axis 360-degree scan (axis near a detector edge, double field of "
        "view; [geometry] half_acquisition); the axis is --rotation-axis, else found with its "
        "overlap and side",
    )
    a(
        "--half-acquisition-side",
        choices=("left", "right"),
        help="half acquisition: the detector edge the axis is near (default: found)",
    )
    a(
        "--dynamic-flat",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dynamic flat-field with eigen flats ([flatfield] dynamic; default: off)",
    )
    a(
        "--distortion-model",
        type=Path,
        metavar="FILE",
        help="detector distortion model (scintomo.distortion, JSON) to undo",
    )
    a(
        "--alignment-shifts",
        type=Path,
        metavar="FILE",
        help="per-view drift shifts (scintomo.alignment, JSON) to undo",
    )
    a(
        "--align",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="find the per-view drift shifts first on a band of rows ([alignment] compute; "
        "written to <name>_alignment.json and .png beside the volume) and undo them",
    )
    a(
        "--align-rows",
        type=int,
        metavar="N",
        help="--align: detector rows in the band the shifts are found on (default 32)",
    )
    a(
        "--beam-hardening",
        nargs=4,
        metavar=("KVP", "MATERIAL", "DENSITY", "MAX_MM"),
        help="beam-hardening linearisation from a Kramers spectrum: tube kV, the sample's "
        "formula, its density (g/cm3) and longest path (mm), e.g. 80 Al 2.699 9",
    )
    a(
        "--cluster",
        metavar="ADDRESS",
        help="run on Dask: a scheduler address (tcp://host:8786), or local:N for N worker "
        "processes; default: in this process",
    )
    a("--threads", type=int, metavar="N", help="kernel threads (default: all cores / workers)")
    a(
        "--log-file",
        type=Path,
        metavar="FILE",
        help="log of the run; default: <output folder>/<name>_rec.log",
    )
    a(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="progress bars (default: on)",
    )
    _config_defaults_in_help(p)
    p.set_defaults(func=run)


# option -> the PipelineConfig field it overrides (for the defaults shown in --help)
_CONFIG_FIELDS = {
    "rotation_axis_method": ("center", "method"),
    "center_search_width": ("center", "search_width"),
    "center_search_step": ("center", "search_step"),
    "tilt_search_width": ("center", "tilt_search_width"),
    "tilt_search_step": ("center", "tilt_search_step"),
    "nsino": ("center", "row"),
    "nsino_per_chunk": ("output", "nsino_per_chunk"),
    "start_row": ("output", "start_row"),
    "end_row": ("output", "end_row"),
    "save_format": ("output", "format"),
    "reconstruction_algorithm": ("recon", "algorithm"),
    "iterations": ("recon", "iterations"),
    "tv_weight": ("recon", "tv_weight"),
    "filter_name": ("recon", "filter"),
    "backend": ("recon", "backend"),
    "zinger_removal": ("zinger", "enabled"),
    "resolution_report": ("report", "resolution"),
    "zinger_level": ("zinger", "threshold_counts"),
    "deconv_method": ("deconv", "method"),
    "flat_reduce": ("flatfield", "reduce"),
}


def _config_defaults_in_help(p) -> None:
    """Say each option's default: the value of a default PipelineConfig (a --config file
    changes it, which is why the options themselves default to None)."""
    from ..pipeline.config import PipelineConfig

    cfg = PipelineConfig()
    for action in p._actions:
        field = _CONFIG_FIELDS.get(action.dest)
        if field is None or action.help is None or "default" in action.help:
            continue
        value = getattr(getattr(cfg, field[0]), field[1])
        if isinstance(value, bool):
            value = "on" if value else "off"
        action.help += f" (default: {value}, or the --config file's)"


def _config(args):
    from ..exceptions import ParameterError
    from ..pipeline import PipelineConfig

    cfg = PipelineConfig.from_toml(args.config) if args.config else PipelineConfig()
    set_ = [
        ("input", "file", args.file_name and str(args.file_name)),
        ("input", "flats", args.flats),
        ("input", "darks", args.darks),
        ("input", "angles", args.angles),
        ("input", "angle_unit", args.angle_unit),
        ("center", "value", args.rotation_axis),
        ("center", "method", args.rotation_axis_method),
        ("center", "search_width", args.center_search_width),
        ("center", "search_step", args.center_search_step),
        ("center", "tilt_search_width", args.tilt_search_width),
        ("center", "tilt_search_step", args.tilt_search_step),
        ("center", "row", args.nsino),
        ("output", "nsino_per_chunk", args.nsino_per_chunk),
        ("output", "memory_budget_mb", args.memory_budget),
        ("output", "start_row", args.start_row),
        ("output", "end_row", args.end_row),
        ("output", "format", args.save_format),
        ("output", "folder", args.output_folder and str(args.output_folder)),
        ("output", "overwrite", args.overwrite),
        ("report", "resolution", args.resolution_report),
        ("recon", "algorithm", args.reconstruction_algorithm),
        ("recon", "filter", args.filter_name),
        ("recon", "backend", args.backend),
        ("recon", "iterations", args.iterations),
        ("recon", "tv_weight", args.tv_weight),
        ("zinger", "enabled", args.zinger_removal),
        ("zinger", "threshold_counts", args.zinger_level),
        ("deconv", "psf", args.psf and str(args.psf)),
        ("deconv", "method", args.deconv_method),
        ("stripes", "method", args.stripe_method),
        ("flatfield", "reduce", args.flat_reduce),
        ("run", "cluster", args.cluster),
        ("run", "n_threads", args.threads),
        ("run", "progress", args.progress),
    ]
    for sec, key, v in set_:
        if v is not None:
            setattr(getattr(cfg, sec), key, v)
    if args.psf is not None and cfg.recon.algorithm in ("sirt", "cgls", "tv"):
        # with an iterative algorithm the film's PSF goes into the model (A = B P)
        # instead of deconvolving each projection first
        cfg.deconv.psf = ""
        cfg.recon.psf = str(args.psf)
    if args.retrieve_phase_method is not None:
        cfg.phase.method = "" if args.retrieve_phase_method == "none" else "paganin"
    for key, v in (
        ("energy", args.energy),
        ("distance", args.propagation_distance),
        ("pixel_size", args.pixel_size),
        ("delta_beta", args.delta_beta),
    ):
        if v is not None:
            cfg.phase.options[key] = v
    for key, v in (
        ("type", args.geometry),
        ("source_object", args.source_object_distance),
        ("source_detector", args.source_detector_distance),
        ("pixel_size", args.detector_pixel_size),
        ("center_column", args.center_column),
        ("center_row", args.center_row),
        ("tilt", args.detector_tilt),
        ("half_acquisition", args.half_acquisition),
        ("half_acquisition_side", args.half_acquisition_side),
    ):
        if v is not None:
            setattr(cfg.geometry, key, v)
    if cfg.geometry.type == "cone" and args.detector_pixel_size is None and args.pixel_size:
        if cfg.phase.method:
            raise ParameterError(
                "--pixel-size is ambiguous with --geometry cone and phase retrieval (the "
                "detector pixel, or the pixel at the sample?): give --detector-pixel-size too"
            )
        # the command line: in a cone-beam run without phase retrieval the one
        # pixel size there is is the detector's
        cfg.geometry.pixel_size = f"{args.pixel_size}um"
        cfg.phase.options.pop("pixel_size", None)
    if args.dynamic_flat is not None:
        cfg.flatfield.dynamic = args.dynamic_flat
    if args.distortion_model is not None:
        cfg.distortion.model = str(args.distortion_model)
    if args.alignment_shifts is not None:
        cfg.alignment.shifts = str(args.alignment_shifts)
    if args.align is not None:
        cfg.alignment.compute = args.align
    if args.align_rows is not None:
        cfg.alignment.rows = args.align_rows
    if args.beam_hardening is not None:
        kvp, material, density, max_mm = args.beam_hardening
        try:
            opts = {"kvp": float(kvp), "density": float(density), "max_thickness": float(max_mm)}
        except ValueError:
            raise ParameterError(
                f"--beam-hardening {' '.join(args.beam_hardening)}: KVP, DENSITY and MAX_MM "
                "must be numbers"
            ) from None
        cfg.beamhardening.method = "spectrum"
        cfg.beamhardening.options = {**opts, "material": material}
    if not cfg.input.file:
        raise ParameterError("no scan: give --file-name (or [input] file in --config)")
    if cfg.phase.method == "paganin":
        missing = [
            opt
            for key, opt in (
                ("energy", "--energy KEV"),
                ("distance", "--propagation-distance MM"),
                ("pixel_size", "--pixel-size SIZE"),
                ("delta_beta", "--delta-beta RATIO"),
            )
            if cfg.phase.options.get(key) is None
        ]
        if missing:
            raise ParameterError(
                "--retrieve-phase-method paganin needs "
                + ", ".join(missing)
                + " (or the same keys under [phase] options in --config)"
            )
    cfg.validate("command line")
    return cfg


def _client(address: str):
    """A Dask client for --cluster, or a ParameterError that says what was expected."""
    from ..exceptions import ParameterError, ScintomoError
    from ..pipeline import make_client

    try:
        return make_client(address)
    except ScintomoError:
        raise
    except (ValueError, TypeError, OSError) as e:  # distributed: bad address, refused, timeout
        detail = " ".join(str(e).split()) or type(e).__name__
        raise ParameterError(
            f"--cluster {address!r}: no Dask scheduler there ({detail}); give local:N for N "
            "worker processes, or a scheduler address such as tcp://host:8786"
        ) from None


def run(args) -> int:
    import logging

    from ..pipeline import output_paths, try_centers
    from ..pipeline import run as run_full

    cfg = _config(args)
    if not Path(cfg.input.file).exists():
        raise FileNotFoundError(f"{cfg.input.file}: no such file or folder")
    paths = output_paths(cfg, cfg.input.file)
    log_path = args.log_file or paths["log"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger = logging.getLogger("scintomo")
    logger.addHandler(handler)
    old_level, old_propagate = logger.level, logger.propagate
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # the log file gets INFO; the terminal only with -v
        logger.propagate = bool(getattr(args, "verbose", False))
    logger.info(
        "scintomo recon %s, configuration:\n%s",
        args.reconstruction_type,
        cfg.to_toml(comments=False),
    )
    try:
        if args.reconstruction_type == "try":
            res = try_centers(cfg)
            print(
                f"try: {len(res.centers)} centres {res.centers[0]:.2f} .. {res.centers[-1]:.2f} "
                "px on row "
                f"{res.row} -> {res.folder} ({res.seconds:.1f} s)"
            )
            edge = " (at the edge of the range: widen --center-search-width)" * res.best_at_edge
            print(f"try: sharpest at centre {res.best_center:.2f} px{edge}; {res.scores_file}")
            if res.tilts:
                print(
                    f"try: {len(res.tilts)} tilts {res.tilts[0]:.3f} .. {res.tilts[-1]:.3f} deg, "
                    f"sharpest at {res.best_tilt:.3f} deg; {res.tilt_scores_file}"
                )
            return 0
        if not getattr(args, "verbose", False):
            logging.getLogger("distributed").setLevel(logging.WARNING)
        client = _client(cfg.run.cluster) if cfg.run.cluster else None
        try:
            res = run_full(cfg, client=client)
        finally:
            if client is not None:
                cluster = getattr(client, "cluster", None)
                client.close()
                if cluster is not None and cfg.run.cluster.startswith("local:"):
                    cluster.close()
        done = res.n_blocks - res.n_skipped
        print(
            f"full: {res.shape[0]} slices of {res.shape[1]} x {res.shape[2]}, centre "
            f"{res.center:.2f} px, "
            f"{done} blocks of {res.nsino_per_chunk} rows computed ({res.n_skipped} already on "
            "disk), "
            f"{res.n_workers} worker(s), {res.seconds:.1f} s ({res.slices_per_second:.1f} "
            "slices/s) "
            f"-> {res.output}; log {log_path}"
        )
        if done:
            print(_timeline(res))
        if res.resolution is not None:
            print(f"resolution: {res.resolution_summary}; {res.resolution['json']}")
        return 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        handler.close()


def _timeline(res) -> str:
    """Where a full run's time went: each stage's busy seconds and its share
    of the wall time (stages overlap, so the shares add up to more than
    100 %); the slowest stage sets the pace."""
    stages = [("read", res.read_seconds)]
    prep = res.extra.get("preprocess_seconds")
    if prep is not None:
        stages.append(("flat-field/-log/stripes", prep))
    stages += [("reconstruct", res.compute_seconds), ("write", res.write_seconds)]
    wall = max(res.seconds, 1e-9)
    parts = ", ".join(f"{name} {t:.1f} s ({100 * t / wall:.0f} %)" for name, t in stages)
    return f"timeline (busy time per stage, overlapped; wall {res.seconds:.1f} s): {parts}"
