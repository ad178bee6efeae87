"""``scintomo demo``: the main job on built-in data, no files needed."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a scintillator-film scan and process it (no input files needed)",
        description="Simulate a small projection series as a thin-film scintillator detector "
        "records it (phantom, film PSF, gain pattern, dark current, Poisson and read noise, "
        "uint16), flat-field correct it, write the results and print a summary.",
    )
    p.add_argument("-o", "--output", type=Path, default=Path("scintomo-demo"), help="output folder")
    p.add_argument("--angles", type=int, default=181, help="number of projections")
    p.add_argument("--size", type=int, default=256, help="detector columns")
    p.add_argument("--rows", type=int, default=8, help="detector rows")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo

    run_demo(args.output, n_angles=args.angles, n_cols=args.size, n_rows=args.rows, seed=args.seed)
    return 0
