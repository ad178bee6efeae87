"""Scalar metadata of an HDF5 group (energy, pixel size, distances...), for Scan.metadata."""

from __future__ import annotations

import h5py
import numpy as np


def scalars(group, *, limit: int = 200) -> dict:
    """``{path: value}`` for the scalar (or 1-element) numeric and string datasets under
    ``group``, with ``units`` appended as ``"<path> [units]"`` keys' values. External
    and soft links are not followed (they may point to files that are not there)."""
    out: dict = {}
    todo = [group]
    while todo and len(out) < limit:
        g = todo.pop(0)
        try:
            names = list(g)
        except (OSError, KeyError, RuntimeError, ValueError):
            continue  # a damaged group: metadata is a courtesy, skip it
        for k in names:
            try:
                link = g.get(k, getlink=True)
                obj = g.get(k) if isinstance(link, h5py.HardLink) else None
            except (OSError, KeyError, RuntimeError, ValueError):
                continue
            if obj is None:
                continue
            if isinstance(obj, h5py.Group):
                todo.append(obj)
                continue
            if obj.size != 1 or obj.dtype.kind not in "biufSUO":
                continue
            try:
                v = obj[()]
                units = obj.attrs.get("units")
            except (OSError, KeyError, RuntimeError, ValueError, TypeError):
                continue
            v = np.asarray(v).reshape(-1)[0] if np.ndim(v) else v
            if isinstance(v, bytes):
                v = v.decode(errors="replace")
            elif isinstance(v, np.generic):
                v = v.item()
            if units is not None:
                units = units.decode(errors="replace") if isinstance(units, bytes) else str(units)
                v = f"{v} {units}"
            out[obj.name] = v
            if len(out) >= limit:
                break
    return out
