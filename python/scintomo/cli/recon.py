"""``scintomo recon``: a scan file to a reconstructed volume (tomopy-cli's conventions).

    scintomo recon --file-name /data/scan.h5 --rotation-axis 1024.5 --reconstruction-type try
    scintomo recon --file-name /data/scan.h5 --rotation-axis 1024.5 --reconstruction-type full \\
        --nsino-per-chunk 64 --save-format zarr --cluster local:4

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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a(
        "--file-name",
        type=Path,
        help="scan file (or TIFF folder); default: [input] file of --config",
    )
    a("--config", type=Path, help="pipeline TOML (scintomo init writes one)")
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
        help="try: one slice per candidate centre; full: the whole volume",
    )
    a(
        "--rotation-axis",
        type=float,
        help="rotation axis, pixels from the first column; absent: found",
    )
    a("--rotation-axis-method", help="method used to find the axis (scintomo.recon.find_center)")
    a("--center-search-width", type=float, help="try: half-width of the centre search, pixels")
    a("--center-search-step", type=float, help="try: step of the centre search, pixels")
    a("--nsino", type=float, help="try: detector row as a fraction of the height (0.5: middle)")
    a("--nsino-per-chunk", type=int, help="sinogram rows per block (bounds memory)")
    a(
        "--memory-budget",
        type=float,
        metavar="MB",
        help="choose the block size to stay under this, MB",
    )
    a("--start-row", type=int, help="first detector row (full)")
    a("--end-row", type=int, help="one past the last detector row (full)")
    a("--save-format", choices=("tiff", "h5", "zarr"), help="volume format (full)")
    a("--output-folder", type=Path, help="default: <scan folder>_rec")
    a("--reconstruction-algorithm", choices=("gridrec", "fbp"))
    a("--filter", dest="filter_name", help="reconstruction filter")
    a("--backend", choices=("auto", "tomopy", "builtin"))
    a(
        "--zinger-removal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="remove zingers",
    )
    a("--zinger-level", type=float, help="zinger threshold above the local median, counts")
    a("--psf", type=Path, help="PSF file of the film: deconvolve the projections")
    a("--deconv-method", choices=("richardson_lucy", "wiener"))
    a("--stripe-method", help="ring removal method (scintomo.recon.remove_stripes)")
    a("--flat-reduce", choices=("mean", "median"))
    a("--retrieve-phase-method", choices=("none", "paganin"), help="phase retrieval before recon")
    a("--energy", type=float, help="paganin: photon energy, keV")
    a("--propagation-distance", type=float, help="paganin: sample-detector distance, mm")
    a(
        "--pixel-size",
        type=pixel_size_arg,
        help="paganin: pixel size at the sample, " + PIXEL_SIZE_HELP,
    )
    a("--delta-beta", type=float, help="paganin: delta / beta of the material")
    a("--cluster", help="Dask scheduler address, or local:N for N worker processes")
    a("--threads", type=int, help="kernel threads (default: all cores / workers)")
    a("--log-file", type=Path, help="default: <output folder>/<name>_rec.log")
    a("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    p.set_defaults(func=run)


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
        ("center", "row", args.nsino),
        ("output", "nsino_per_chunk", args.nsino_per_chunk),
        ("output", "memory_budget_mb", args.memory_budget),
        ("output", "start_row", args.start_row),
        ("output", "end_row", args.end_row),
        ("output", "format", args.save_format),
        ("output", "folder", args.output_folder and str(args.output_folder)),
        ("recon", "algorithm", args.reconstruction_algorithm),
        ("recon", "filter", args.filter_name),
        ("recon", "backend", args.backend),
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
    if not cfg.input.file:
        raise ParameterError("no scan: give --file-name (or [input] file in --config)")
    cfg.validate("command line")
    return cfg


def run(args) -> int:
    import logging

    from ..pipeline import make_client, output_paths, try_centers
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
            return 0
        if not getattr(args, "verbose", False):
            logging.getLogger("distributed").setLevel(logging.WARNING)
        client = make_client(cfg.run.cluster) if cfg.run.cluster else None
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
        return 0
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        handler.close()
