"""``scintomo init``: write a commented default pipeline configuration (TOML)."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "init",
        help="write a commented default pipeline configuration (TOML) for scintomo recon --config",
        description="Write every option of the reconstruction pipeline, with its default and a "
        "comment, "
        "to a TOML file to edit and pass to 'scintomo recon --config FILE'.",
    )
    p.add_argument(
        "output", nargs="?", type=Path, default=Path("scintomo.toml"), help="file to write"
    )
    p.add_argument("--file-name", type=Path, help="scan to put in [input] file")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline import PipelineConfig

    if args.output.exists() and not args.force:
        raise FileExistsError(f"{args.output} exists (pass --force to replace it)")
    cfg = PipelineConfig()
    if args.file_name:
        cfg.input.file = str(args.file_name)
    cfg.write(args.output)
    print(
        f"wrote {args.output}; edit it, then: scintomo recon --config {args.output} "
        "--reconstruction-type try"
    )
    return 0
