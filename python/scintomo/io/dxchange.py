"""DXchange HDF5 (APS): ``/exchange/data`` (N, H, W), ``/exchange/data_white``,
``/exchange/data_dark``, ``/exchange/theta`` in degrees (DXchange's convention;
a ``units`` attribute or the range of the angles may say radians, see
:mod:`scintomo.io._angles`)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..exceptions import FileFormatError, ParameterError
from ._angles import stated_unit, to_radians, unit_name
from ._distances import scan_geometry
from ._hdf5 import open_hdf5
from ._meta import scalars
from .atomic import atomic_path
from .lazy import FrameSelection
from .scan import Scan


def read_dxchange(path, *, angle_unit: str | None = None) -> Scan:
    """Open a DXchange file lazily. ``theta`` is converted to radians.

    ``scan.geometry`` is a :class:`~scintomo.recon.ConeGeometry` where the file
    records a source distance under 10 m with the sample-detector distance and
    pixel size (see :mod:`scintomo.io._distances` for the fields and units),
    else None (parallel beam).

    Parameters
    ----------
    path : str or Path
    angle_unit : {'deg', 'rad'}, optional
        Unit of ``/exchange/theta``. Default: its ``units`` attribute, else
        the unit in which the angles cover a scan (about 180 or 360 degrees),
        else degrees with a warning.

    Raises
    ------
    FileNotFoundError
    FileFormatError
        Not HDF5, truncated, a required dataset missing, inconsistent shapes,
        or a ``units`` attribute that the angles' range contradicts.
    """
    path = Path(path)
    given = unit_name(angle_unit)
    f = open_hdf5(path)
    try:
        if "exchange/data" not in f:
            raise FileFormatError(f"{path}: no /exchange/data dataset (is it a DXchange file?)")
        data = f["exchange/data"]
        for name in ("data", "data_white", "data_dark", "theta"):
            obj = f.get(f"exchange/{name}")
            if obj is not None and not isinstance(obj, h5py.Dataset):
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
        if "exchange/theta" not in f:
            raise FileFormatError(f"{path}: no /exchange/theta dataset")
        tds = f["exchange/theta"]
        raw = np.asarray(tds[()], dtype=np.float64).ravel()
        if raw.size != data.shape[0]:
            raise FileFormatError(
                f"{path}: {raw.size} angles in /exchange/theta but {data.shape[0]} projections"
            )
        stated = stated_unit(tds.attrs.get("units"))
        theta, unit, how = to_radians(
            raw, source=f"{path}: /exchange/theta", given=given, stated=stated
        )
    except FileFormatError:
        f.close()
        raise
    except ParameterError as e:
        f.close()
        raise FileFormatError(str(e)) from None
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as e:
        f.close()
        raise FileFormatError(f"{path}: damaged or truncated HDF5 file ({e})") from None
    except BaseException:
        f.close()
        raise
    meta = {"format": "dxchange", "angle_unit": unit, "angle_unit_from": how}
    try:
        if "measurement" in f:
            meta.update(scalars(f["measurement"]))
    except (OSError, KeyError, RuntimeError, TypeError, ValueError):
        pass  # a damaged metadata group: the data and angles were read, the rest is a courtesy
    geometry = scan_geometry(f, str(path), meta, fmt="dxchange")
    # behind FrameSelection, a truncated dataset raises FileFormatError when read
    return Scan(
        FrameSelection(data, np.arange(data.shape[0]), name="projections"),
        None if flats is None else FrameSelection(flats, np.arange(flats.shape[0]), name="flats"),
        None if darks is None else FrameSelection(darks, np.arange(darks.shape[0]), name="darks"),
        theta,
        str(path),
        meta,
        [f],
        open_kwargs={"format": "dxchange", "angle_unit": angle_unit},
        geometry=geometry,
    )


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
            ds = f.create_dataset(
                "exchange/theta", data=np.rad2deg(np.asarray(theta, dtype=np.float64))
            )
            ds.attrs["units"] = "degrees"
        f.attrs["implements"] = "exchange"
    return path
