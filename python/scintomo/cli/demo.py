"""``scintomo demo``: the main job on built-in data, no files needed."""

from __future__ import annotations

from pathlib import Path

from ._types import int_at_least


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a perovskite-film micro-CT scan and reconstruct it with the whole pipeline",
        description="Simulate a micro-CT scan as a thin-film (perovskite) scintillator "
        "microscope records "
        "it (phantom, film PSF, gain pattern, flats before/after, darks, Poisson and read noise, "
        "uint16), "
        "write it as DXchange, run the pipeline (flat-field, deconvolution, centre, "
        "reconstruction) block "
        "by block, write the volume and an HTML report (central slices, system MTF, timings).",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="output folder (default ./scintomo-demo, ./scintomo-demo-cone with --geometry cone)",
    )
    p.add_argument(
        "--geometry",
        choices=("parallel", "cone"),
        default="parallel",
        help="parallel: the synchrotron scan; cone: the lab variant (tube source, full turn, "
        "FDK by z-slabs, correlation with the 3-D phantom in the report) (default parallel)",
    )
    p.add_argument(
        "--angles",
        type=int_at_least(8),
        default=None,
        help="number of projections (default 360; cone: 180 over a full turn)",
    )
    p.add_argument(
        "--size",
        type=int_at_least(32),
        default=None,
        help="detector columns (default 256; cone: 96)",
    )
    p.add_argument(
        "--rows", type=int_at_least(1), default=None, help="detector rows (default 16; cone: 32)"
    )
    p.add_argument(
        "--nsino-per-chunk",
        type=int_at_least(1),
        default=8,
        help="detector rows reconstructed per block (default 8)",
    )
    p.add_argument(
        "--threads", type=int_at_least(1), default=None, help="threads (default: all cores)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed of the simulated noise (default 0)"
    )
    p.add_argument(
        "--backend",
        choices=("auto", "tomopy", "builtin"),
        default="auto",
        help="reconstruction backend (auto: the built-in one, whatever is installed; cone: "
        "always the built-in FDK)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what a demo with other options left in the output folder (without it, "
        "that is an error; a rerun with the same options resumes)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo

    if args.geometry == "cone":
        from ..demo_cone import run_cone_demo

        run_cone_demo(
            args.output or Path("scintomo-demo-cone"),
            n_angles=args.angles or 180,
            n_cols=args.size or 96,
            n_rows=args.rows or 32,
            seed=args.seed,
            nsino_per_chunk=args.nsino_per_chunk,
            n_threads=args.threads,
            overwrite=args.overwrite,
        )
        return 0
    run_demo(
        args.output or Path("scintomo-demo"),
        n_angles=args.angles or 360,
        n_cols=args.size or 256,
        n_rows=args.rows or 16,
        seed=args.seed,
        nsino_per_chunk=args.nsino_per_chunk,
        n_threads=args.threads,
        backend=args.backend,
        overwrite=args.overwrite,
    )
    return 0
