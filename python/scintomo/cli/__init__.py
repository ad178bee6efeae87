"""The ``scintomo`` command.

Each subcommand lives in its own module of this package and defines
``add_parser(subparsers)``, which registers it and sets ``func`` (taking the
parsed arguments, returning an exit code). Modules are found automatically,
so a capability adds its command without touching this file. Heavy imports
happen inside ``func`` so that ``scintomo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from ..exceptions import ScintomoError


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="scintomo",
        description="X-ray microscopy and micro-CT with thin scintillator films.",
    )
    parser.add_argument("--version", action="version", version=f"scintomo {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what happens (INFO level)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (ScintomoError, FileNotFoundError, FileExistsError) as e:
        print(f"scintomo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"scintomo {args.command}: interrupted; no partial output was left behind",
            file=sys.stderr,
        )
        return 130
