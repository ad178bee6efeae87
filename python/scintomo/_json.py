"""One way to write JSON: valid JSON always (``null`` where a figure is NaN or
infinite, never the ``NaN``/``Infinity`` tokens Python's json module emits by
default and other parsers reject), numpy types as plain numbers and lists."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

__all__ = ["dumps", "to_jsonable", "write_json"]


def to_jsonable(obj):
    """``obj`` with numpy arrays and scalars as lists and numbers, paths as
    strings, tuples as lists, and every non-finite float as ``None``."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (os.PathLike,)):
        return os.fspath(obj)
    return obj


def dumps(obj, *, indent: int | None = 2) -> str:
    """JSON text of ``obj`` after :func:`to_jsonable`; raises ``ValueError`` rather
    than write a NaN token (``allow_nan=False``)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


def write_json(path, obj, *, indent: int | None = 2) -> Path:
    """Write :func:`dumps` of ``obj`` to ``path`` atomically; returns ``path``."""
    from .io.atomic import atomic_path

    path = Path(path)
    text = dumps(obj, indent=indent)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return path
