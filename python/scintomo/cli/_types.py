"""argparse ``type=`` converters shared by the commands (bounds checked at parse time,
so a bad value is a one-line usage error rather than a failure deep in a kernel)."""

from __future__ import annotations

import argparse


def int_at_least(low: int):
    """An ``int`` converter that refuses values below ``low``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    convert.__name__ = "int"  # argparse names the type in its messages
    return convert
