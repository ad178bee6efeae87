"""``scintomo flatfield INPUT -o OUTPUT``: flat-field correct a DXchange scan."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "flatfield",
        help="flat-field correct a scan (DXchange HDF5) into HDF5 or a TIFF stack",
        description="Flat-field correct projections: (P - D) / (F - D), optionally -log. "
        "Reads a DXchange HDF5 file; writes HDF5 (.h5/.hdf5: /exchange/data plus theta) "
        "or a multi-page TIFF (.tif/.tiff), atomically.",
    )
    p.add_argument("input", type=Path, help="DXchange HDF5 file")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="output .h5/.hdf5 or .tif/.tiff"
    )
    p.add_argument("--log", action="store_true", help="write -ln of the normalised data")
    p.add_argument(
        "--reduce", choices=("mean", "median"), default="mean", help="flat/dark reduction"
    )
    p.add_argument(
        "--bad-flat",
        choices=("fill", "clamp", "nan", "raise"),
        default="fill",
        help="policy where flat - dark <= eps",
    )
    p.add_argument(
        "--clip", nargs=2, type=float, metavar=("LO", "HI"), help="clip the ratio before -log"
    )
    p.add_argument("--chunk", type=int, default=32, help="projections per block (bounds memory)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: on a terminal)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import warnings

    import numpy as np

    from .. import flatfield
    from .._progress import progress
    from ..exceptions import ParameterError
    from ..io import read_dxchange
    from ..io.writers import hdf5_writer, tiff_writer

    suffix = args.output.suffix.lower()
    if suffix not in (".h5", ".hdf5", ".hdf", ".tif", ".tiff"):
        raise ParameterError(
            f"output must end in .h5, .hdf5, .tif or .tiff, not {args.output.name!r}"
        )
    if args.chunk < 1:
        raise ParameterError("--chunk must be >= 1")
    t0 = time.perf_counter()
    with read_dxchange(args.input) as scan:
        n, h, w = scan.shape
        if scan.flats is None:
            raise ParameterError(f"{args.input}: no flats (/exchange/data_white)")
        flats = np.asarray(scan.flats[()])
        darks = None if scan.darks is None else np.asarray(scan.darks[()])
        total = flatfield.FlatFieldReport(0, args.bad_flat, 0, 0, 0, 0)
        clip = tuple(args.clip) if args.clip else None

        def blocks():
            nonlocal total
            for start in progress(
                range(0, n, args.chunk),
                total=-(-n // args.chunk),
                desc="flat-field",
                unit="block",
                enabled=args.progress,
            ):
                stop = min(start + args.chunk, n)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out, rep = flatfield.correct(
                        scan.projections[start:stop],
                        flats,
                        darks,
                        reduce=args.reduce,
                        bad_flat=args.bad_flat,
                        clip=clip,
                        log=args.log,
                        first_index=start,
                        n_threads=args.threads,
                        return_report=True,
                    )
                total = flatfield.FlatFieldReport(
                    rep.bad_pixels,
                    rep.bad_flat,
                    total.clipped_low + rep.clipped_low,
                    total.clipped_high + rep.clipped_high,
                    total.nonfinite + rep.nonfinite,
                    total.n_projections + rep.n_projections,
                )
                yield start, stop, out

        if suffix in (".tif", ".tiff"):
            with tiff_writer(args.output) as write:
                for _, _, out in blocks():
                    write(out)
        else:
            attrs = {"log": int(args.log), "reduce": args.reduce}
            with hdf5_writer(
                args.output, (n, h, w), np.float32, chunks=(1, h, w), attrs=attrs
            ) as ds:
                for start, stop, out in blocks():
                    ds[start:stop] = out
                ds.file.create_dataset("exchange/theta", data=np.rad2deg(scan.theta))
    dt = time.perf_counter() - t0
    mb = n * h * w * 4 / 1e6
    print(
        f"flat-field: {n} projections of {h} x {w} -> {args.output} in {dt:.2f} s ({mb / dt:.0f} MB/s out); "
        f"bad pixels {total.bad_pixels} ({args.bad_flat}), clipped low {total.clipped_low}, "
        f"high {total.clipped_high}, non-finite {total.nonfinite}"
    )
    return 0
