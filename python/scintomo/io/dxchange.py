"""DXchange HDF5 (APS): ``/exchange/data`` (N, H, W), ``/exchange/data_white``,
``/exchange/data_dark``, ``/exchange/theta`` in degrees."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..exceptions import FileFormatError
from ._hdf5 import open_hdf5
from ._meta import scalars
from .atomic import atomic_path
from .scan import Scan


def read_dxchange(path) -> Scan:
    """Open a DXchange file lazily. ``theta`` is converted to radians.

    Raises
    ------
    FileNotFoundError
    FileFormatError
        Not HDF5, truncated, a required dataset missing, or inconsistent shapes.
    """
    path = Path(path)
    f = open_hdf5(path)
    try:
        if "exchange/data" not in f:
            raise FileFormatError(f"{path}: no /exchange/data dataset (is it a DXchange file?)")
        data = f["exchange/data"]
        for name in ("data", "data_white", "data_dark", "theta"):
            if f.get(f"exchange/{name}", getclass=True) not in (None, h5py.Dataset):
                raise FileFormatError(f"{path}: /exchange/{name} is a group, not a dataset")
        if data.ndim != 3:
            raise FileFormatError(
                f"{path}: /exchange/data has shape {data.shape}, expected (angle, row, column)"
            )
        flats = f.get("exchange/data_white")
        darks = f.get("exchange/data_dark")
        for name, d in (("data_white", flats), ("data_dark", darks)):
            if d is not None and (d.ndim != 3 or d.shape[1:] != data.shape[1:]):
                raise FileFormatError(
                    f"{path}: /exchange/{name} has shape {d.shape}, projections are {data.shape}"
                )
        if "exchange/theta" in f:
            theta = np.deg2rad(np.asarray(f["exchange/theta"][()], dtype=np.float64)).ravel()
            if theta.size != data.shape[0]:
                raise FileFormatError(
                    f"{path}: {theta.size} angles in /exchange/theta but {data.shape[0]} "
                    "projections"
                )
        else:
            raise FileFormatError(f"{path}: no /exchange/theta dataset")
    except FileFormatError:
        f.close()
        raise
    except (OSError, KeyError) as e:
        f.close()
        raise FileFormatError(f"{path}: damaged or truncated HDF5 file ({e})") from None
    meta = {"format": "dxchange"}
    if "measurement" in f:
        meta.update(scalars(f["measurement"]))
    return Scan(data, flats, darks, theta, str(path), meta, [f], open_kwargs={"format": "dxchange"})


def write_dxchange(
    path, projections, flats=None, darks=None, theta=None, *, compression=None
) -> Path:
    """Write a DXchange file atomically (``theta`` in radians, stored in degrees)."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("exchange/data", data=projections, compression=compression)
        if flats is not None:
            f.create_dataset("exchange/data_white", data=flats, compression=compression)
        if darks is not None:
            f.create_dataset("exchange/data_dark", data=darks, compression=compression)
        if theta is not None:
            f.create_dataset("exchange/theta", data=np.rad2deg(np.asarray(theta, dtype=np.float64)))
        f.attrs["implements"] = "exchange"
    return path
