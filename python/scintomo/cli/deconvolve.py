"""``scintomo deconvolve INPUT --psf PSF -o OUTPUT``: deconvolve a stack."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

_TIFF = (".tif", ".tiff")
_HDF5 = (".h5", ".hdf5", ".hdf")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "deconvolve",
        help="deconvolve a projection stack (TIFF or HDF5) by a scintillator PSF",
        description="Deconvolve every image of a stack by a PSF (Richardson-Lucy or Wiener), "
        "block by block, writing HDF5 (/exchange/data) or a multi-page TIFF atomically. "
        "Input: a TIFF stack, or an HDF5 file (/exchange/data or --dataset). With --flatfield "
        "a DXchange scan is dark-subtracted, projections and flats deconvolved, divided, "
        "clipped and -log'ed (the blur acts on intensities, not on their ratio).",
    )
    p.add_argument("input", type=Path, help="input .tif/.tiff stack or .h5/.hdf5 file")
    p.add_argument("--psf", type=Path, required=True, help="PSF file (.npy [+ .json] or .h5)")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="output .h5/.hdf5 or .tif/.tiff"
    )
    p.add_argument(
        "--method",
        choices=("rl", "wiener"),
        default="rl",
        help="rl (Richardson-Lucy, iterative) or wiener (one filter) (default: rl)",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="RL iterations (the cap with --noise; default 30, or 100 with --noise)",
    )
    p.add_argument(
        "--noise",
        nargs=2,
        type=float,
        metavar=("GAIN", "READ_NOISE"),
        help="RL stopping rule: variance = GAIN * mean + READ_NOISE^2 (image units)",
    )
    p.add_argument("--tv", type=float, default=0.0, help="RL total-variation weight (e.g. 0.005)")
    p.add_argument(
        "--balance",
        type=float,
        default=None,
        help="Wiener regularisation (default: estimated from the noise)",
    )
    p.add_argument("--dataset", default="exchange/data", help="HDF5 dataset of the images")
    p.add_argument(
        "--flatfield",
        action="store_true",
        help="DXchange input: dark-subtract, deconvolve projections and flats, divide, -log",
    )
    p.add_argument("--chunk", type=int, default=8, help="images per block (bounds memory)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: on a terminal)",
    )
    p.set_defaults(func=run)


def _open(path: Path, dataset: str):
    """(array-like stack, closer) for a TIFF or HDF5 input."""
    from ..exceptions import FileFormatError, ParameterError

    suf = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if suf in _TIFF:
        import tifffile

        try:
            data = tifffile.imread(path)
        except Exception as e:  # tifffile raises many kinds
            raise FileFormatError(f"{path}: cannot read TIFF ({e})") from None
        if data.ndim == 2:
            data = data[None]
        return data, lambda: None
    if suf in _HDF5:
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise FileFormatError(f"{path}: not a readable HDF5 file ({e})") from None
        if dataset not in f:
            f.close()
            raise FileFormatError(f"{path}: no {dataset!r} dataset")
        d = f[dataset]
        if d.ndim not in (2, 3):
            f.close()
            raise FileFormatError(f"{path}: {dataset} has shape {d.shape}, expected 2-D or 3-D")
        return (d if d.ndim == 3 else d[()][None]), f.close
    raise ParameterError(f"input must be .tif/.tiff or .h5/.hdf5, not {path.name!r}")


def run(args) -> int:
    import numpy as np

    from .. import deconv, psf
    from .._progress import progress
    from ..exceptions import ParameterError
    from ..io.writers import hdf5_writer, tiff_writer

    suffix = args.output.suffix.lower()
    if suffix not in _TIFF + _HDF5:
        raise ParameterError(
            f"output must end in .h5, .hdf5, .tif or .tiff, not {args.output.name!r}"
        )
    if args.chunk < 1:
        raise ParameterError("--chunk must be >= 1")
    kernel = psf.load(args.psf)
    kw: dict = {"n_threads": args.threads}
    if args.method == "rl":
        kw.update(
            iterations=args.iterations, tv=args.tv, noise=tuple(args.noise) if args.noise else None
        )
    else:
        kw.update(balance=args.balance)
    t0 = time.perf_counter()
    flats = darks = None
    if args.flatfield:
        from ..io import read_dxchange

        scan = read_dxchange(args.input)
        if scan.flats is None:
            raise ParameterError(f"{args.input}: --flatfield needs flats (/exchange/data_white)")
        data, close = scan.projections, scan.close
        flats = np.asarray(scan.flats[()])
        darks = None if scan.darks is None else np.asarray(scan.darks[()])
    else:
        data, close = _open(args.input, args.dataset)
    try:
        n, h, w = data.shape
        if args.method == "wiener" and args.balance is None:
            kw["balance"] = deconv.estimate_balance(np.asarray(data[0], np.float32), kernel)
        iters: list[int] = []

        def blocks():
            for start in progress(
                range(0, n, args.chunk),
                total=-(-n // args.chunk),
                desc="deconvolve",
                unit="block",
                enabled=args.progress,
            ):
                stop = min(start + args.chunk, n)
                block = np.asarray(data[start:stop])
                if args.flatfield:
                    out = deconv.flatfield_deconvolved(
                        block, flats, darks, kernel, method=args.method, **kw
                    )
                elif args.method == "rl":
                    out, rep = deconv.richardson_lucy(block, kernel, return_report=True, **kw)
                    iters.extend(rep.iterations)
                else:
                    out = deconv.wiener(block, kernel, **kw)
                yield start, stop, out

        if suffix in _TIFF:
            with tiff_writer(args.output) as write:
                for _, _, out in blocks():
                    write(out)
        else:
            attrs = {
                "method": args.method,
                "psf": str(args.psf),
                "pixel_size_um": kernel.pixel_size_um,
            }
            with hdf5_writer(
                args.output, (n, h, w), np.float32, chunks=(1, h, w), attrs=attrs
            ) as ds:
                for start, stop, out in blocks():
                    ds[start:stop] = out
    finally:
        close()
    dt = time.perf_counter() - t0
    extra = f"; RL iterations {min(iters)}-{max(iters)}" if iters else ""
    print(
        f"deconvolve: {n} images of {h} x {w} ({args.method}) -> {args.output} in {dt:.2f} s{extra}"
    )
    return 0
