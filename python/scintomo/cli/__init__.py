"""The ``scintomo`` command.

Each subcommand lives in its own module of this package and defines
``add_parser(subparsers)``, which registers it and sets ``func`` (taking the
parsed arguments, returning an exit code). Modules are found automatically,
so a capability adds its command without touching this file. Heavy imports
happen inside ``func`` so that ``scintomo --help`` stays fast.

Every command speaks one language: an error is one line on stderr,
``scintomo CMD: error: ...``, with exit status 2, whatever raised it (a usage
mistake, a broken file, a bad parameter, memory); a warning is one line,
``scintomo CMD: warning: ...``. :func:`error_message` is the one place that
turns an exception into that line. ``SCINTOMO_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import warnings
from pathlib import Path

from ..exceptions import ParameterError, ScintomoError

#: Exit status of every error, usage and input alike (argparse's convention).
EXIT_ERROR = 2

# Options that name a file or folder the command writes. Its folder must exist:
# a typo in a path is refused rather than silently creating a directory tree.
_OUTPUT_OPTIONS = ("output", "output_folder", "plot", "maps", "log_file")


class _HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default where there is one to show: never "(default: None)"."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default is None
            or default is False
            or default is argparse.SUPPRESS
        ):
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(str(v) for v in default)
        return f"{text} (default: {str(default).replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like every other error, and
    whose help shows real defaults only."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # noqa: D102 (argparse's hook)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="scintomo",
        description="X-ray microscopy and micro-CT with thin scintillator films.",
    )
    parser.add_argument("--version", action="version", version=f"scintomo {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what happens (INFO level)"
    )
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        required=True,
        help="one of these; 'scintomo COMMAND --help' lists its options",
    )
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
    return parser


def _one_line(text: str) -> str:
    # Some libraries put a caret diagram under the offending text (xraydb's
    # formula parser); keep the words, drop the drawing.
    lines = [ln.strip() for ln in str(text).splitlines()]
    return " ".join(ln for ln in lines if ln and set(ln) - set("^~ "))


def error_message(exc: BaseException) -> str:
    """The text after ``error:`` for an exception raised by a command.

    User-facing problems (scintomo's own errors, bad values, missing or
    unreadable files, memory) are stated as they are; anything else is an
    internal error, named as such with a hint for the traceback.
    """
    if isinstance(exc, OSError) and not isinstance(exc, ScintomoError):
        if exc.filename is not None and exc.strerror:
            return _one_line(f"{exc.filename}: {exc.strerror}")
        bare_path = len(exc.args) == 1 and (
            isinstance(exc.args[0], os.PathLike)
            or (isinstance(exc.args[0], str) and not any(c.isspace() for c in exc.args[0]))
        )
        if bare_path:
            # FileNotFoundError(path) names only the path: say what is wrong with it
            what = "no such file or directory" if isinstance(exc, FileNotFoundError) else "error"
            return f"{exc.args[0]}: {what}"
        return _one_line(exc.args[0] if len(exc.args) == 1 else exc)
    if isinstance(exc, MemoryError):
        detail = _one_line(exc)
        return (
            "not enough memory"
            + (f": {detail}" if detail else "")
            + ("; try smaller blocks (--chunk, --nsino-per-chunk) or fewer threads")
        )
    if isinstance(exc, KeyError):  # h5py: a dataset or attribute that is not there
        return _one_line(exc.args[0] if exc.args else "missing key")
    if isinstance(exc, (ScintomoError, ValueError, TypeError)):
        return _one_line(exc) or type(exc).__name__
    return (
        f"internal error ({type(exc).__name__}: {_one_line(exc)}); please report it, with "
        "the output of the same command run with SCINTOMO_DEBUG=1"
    )


def _check_outputs(args) -> None:
    """Refuse an output whose folder does not exist (rather than create it)."""
    for name in _OUTPUT_OPTIONS:
        value = getattr(args, name, None)
        if not isinstance(value, Path):
            continue
        folder = value.parent
        if not folder.is_dir():
            opt = "--" + name.replace("_", "-")
            raise ParameterError(
                f"{opt} {value}: the folder {folder} does not exist (create it first)"
            )


def _show_warning(command: str):
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"scintomo {command}: warning: {_one_line(message)}", file=sys.stderr)

    return show


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = " ".join(v for v in (args.command, getattr(args, "mode", None)) if isinstance(v, str))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    debug = os.environ.get("SCINTOMO_DEBUG", "") not in ("", "0")
    old_show = warnings.showwarning
    if not debug:
        warnings.showwarning = _show_warning(command)
    try:
        _check_outputs(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(
            f"scintomo {command}: interrupted; no partial output was left behind",
            file=sys.stderr,
        )
        return 130
    except Exception as e:
        if debug:
            raise
        print(f"scintomo {command}: error: {error_message(e)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.showwarning = old_show
