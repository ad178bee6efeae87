"""Helpers shared by the result objects of :mod:`scintomo.detector`."""

from __future__ import annotations

import dataclasses

import numpy as np


def to_plain(value):
    """JSON-friendly copy: arrays to lists, numpy scalars to Python numbers,
    non-finite floats to None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def result_dict(obj, *, skip=()) -> dict:
    """``to_dict`` of a frozen dataclass result (large maps can be skipped)."""
    return {
        f.name: to_plain(getattr(obj, f.name))
        for f in dataclasses.fields(obj)
        if f.name not in skip
    }


def new_axes(ax=None, ncols: int = 1):
    """``ax`` if given, else a new figure's axes (works with the Agg backend)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 4), squeeze=True)
    return axes
