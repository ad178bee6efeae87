"""Reading scans and writing results.

- :func:`read`: any supported scan (DXchange HDF5, NeXus NXtomo, a folder of
  TIFF frames, a Nikon ``.xtekct`` scan, a Zeiss ``.txrm`` / ``.txm``) as a
  lazy :class:`Scan` whose projections, flats and darks are read only where
  sliced (``scan.projections[:, 10:20, :]``), with
  ``theta`` in radians.
- Writers: TIFF stacks, HDF5 and Zarr v3, atomic (:mod:`scintomo.io.atomic`):
  every file (every Zarr chunk, every TIFF slice) is written under a
  temporary name and renamed when complete, so an interrupted run never
  leaves a file that looks whole.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import FileFormatError
from .atomic import atomic_path
from .dxchange import read_dxchange, write_dxchange
from .nxtomo import read_nxtomo, write_nxtomo
from .pixelsize import pixel_size_from_file
from .scan import Scan
from .tiffstack import (
    read_angles,
    read_tiff_pages,
    read_tiff_stack,
    write_tiff_frames,
    write_tiff_scan,
)
from .txrm import is_ole2, read_txrm
from .writers import (
    HDF5Writer,
    TiffSliceWriter,
    VolumeWriter,
    ZarrWriter,
    volume_writer,
    write_hdf5,
    write_tiff_stack,
    write_zarr,
)
from .xtek import find_xtek_file, is_xtek, read_xtek

__all__ = [
    "HDF5Writer",
    "Scan",
    "TiffSliceWriter",
    "VolumeWriter",
    "ZarrWriter",
    "atomic_path",
    "detect_format",
    "pixel_size_from_file",
    "read",
    "read_angles",
    "read_dxchange",
    "read_nxtomo",
    "read_tiff_pages",
    "read_tiff_stack",
    "volume_writer",
    "write_dxchange",
    "write_hdf5",
    "write_nxtomo",
    "write_tiff_frames",
    "write_tiff_scan",
    "write_tiff_stack",
    "write_zarr",
    "read_txrm",
    "read_xtek",
]

FORMATS = ("dxchange", "nxtomo", "tiff", "xtek", "txrm")
_TIFF_OPTIONS = ("flats", "darks", "angles", "prefix")


def detect_format(path) -> str:
    """'dxchange', 'nxtomo', 'tiff', 'xtek' or 'txrm' from the file's content
    (not its name): an OLE2 compound file is a Zeiss TXRM, a text file with an
    ``[XTekCT]`` section (or a folder holding one ``.xtekct``) a Nikon scan."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return "xtek" if find_xtek_file(path) is not None else "tiff"
    if is_ole2(path):
        return "txrm"
    if is_xtek(path):
        return "xtek"
    if path.suffix.lower() in (".tif", ".tiff"):
        return "tiff"
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise FileFormatError(f"{path}: not a readable HDF5 file nor a TIFF folder ({e})") from None
    try:
        with f:
            return "dxchange" if "exchange/data" in f else "nxtomo"
    except (OSError, KeyError, RuntimeError, ValueError) as e:
        # h5py finds a damaged object header only when it opens the object
        raise FileFormatError(f"{path}: damaged HDF5 file ({e})") from None


def read(path, *, format: str | None = None, **kwargs) -> Scan:  # noqa: A002 - the natural name
    """Open a scan lazily, whatever its format.

    Parameters
    ----------
    path : str or Path
        A DXchange ``.h5``, a NeXus ``.nxs``, a folder of TIFF frames, a Nikon
        ``.xtekct`` (or its folder), a Zeiss ``.txrm`` / ``.txm``.
    format : {'dxchange', 'nxtomo', 'tiff', 'xtek', 'txrm'}, optional
        Default: detected from the content.
    **kwargs
        Passed to the reader: ``angle_unit=`` for every format,
        ``data_path=`` ... for NXtomo, ``flats=``, ``darks=``, ``angles=``,
        ``prefix=`` for a TIFF folder (an error for the HDF5 formats, which
        hold their own; ``None`` values are ignored); ``flats=``, ``darks=``,
        ``angles=`` for a Nikon scan, ``angles=`` for a TXRM (an array in
        radians, or an angles file read with ``angle_unit=``; the files' own
        angles are degrees).

    Returns
    -------
    Scan
        Close it (or use ``with``) to release the file.
    """
    from ..exceptions import ParameterError

    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise ParameterError(f"format must be one of {FORMATS}, not {fmt!r}")
    if fmt in ("xtek", "txrm"):
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        unit = kwargs.pop("angle_unit", None)
        if isinstance(kwargs.get("angles"), (str, Path)):
            # an angles file from elsewhere ([input] angles): its own unit rules
            kwargs["angles"] = read_angles(kwargs["angles"], unit=unit)
        elif unit is not None and str(unit).lower() not in ("deg", "degree", "degrees"):
            raise ParameterError(
                f"{path}: a {fmt} file stores its angles in degrees; angle_unit={unit!r} applies "
                "only to an angles= file"
            )
        allowed = {"flats", "darks", "angles"} if fmt == "xtek" else {"angles"}
        extra = sorted(set(kwargs) - allowed)
        if extra:
            raise ParameterError(
                f"{path}: {', '.join(e + '=' for e in extra)} do not apply to a {fmt} scan"
            )
        return (read_xtek if fmt == "xtek" else read_txrm)(path, **kwargs)
    if fmt != "tiff":
        # options of a TIFF folder (the CLI passes them as None when not given)
        misplaced = sorted(k for k in _TIFF_OPTIONS if kwargs.pop(k, None) is not None)
        if misplaced:
            raise ParameterError(
                f"{path}: {', '.join(m + '=' for m in misplaced)} apply to a folder of TIFF "
                f"frames; a {fmt} file holds its own"
            )
    if fmt == "dxchange":
        extra = sorted(set(kwargs) - {"angle_unit"})
        if extra:
            raise TypeError(f"read_dxchange takes only angle_unit=, got {extra}")
        return read_dxchange(path, **kwargs)
    if fmt == "nxtomo":
        return read_nxtomo(path, **kwargs)
    return read_tiff_stack(path, **kwargs)
