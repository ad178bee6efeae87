"""Progress bars for long work (tqdm), quiet when not on a terminal unless asked."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress(
    iterable=None,
    *,
    total=None,
    desc: str = "",
    unit: str = "it",
    enabled: bool | None = None,
    **kw,
):
    """A tqdm bar; ``enabled=None`` shows it only on an interactive stderr."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, **kw
    )
