"""``scintomo mtf IMAGE --pixel-size 0.185um [--roi ...] [--bars ...] -o report.json``."""

from __future__ import annotations

from pathlib import Path

from ..units import PIXEL_SIZE_HELP, pixel_size_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "mtf",
        help="resolution from a slanted edge (ISO 12233) or bar groups (Coltman)",
        description="Measure the MTF of an image: slanted edge (default; ROI optional) or "
        "line-pair groups (--bars auto: detected; --bars R0 R1 C0 C1 FREQ, one per group; or "
        "--bar-frequencies F ...). Writes a JSON report and a PNG figure "
        "(same name, .png) atomically. Images: .tif/.tiff, .npy, .dcm (DICOM).",
    )
    p.add_argument("image", type=Path, help="image file (.tif, .tiff, .npy, .dcm)")
    p.add_argument("-o", "--output", type=Path, required=True, help="JSON report path")
    p.add_argument(
        "--pixel-size",
        type=pixel_size_arg,
        default=None,
        help=f"detector pixel size, {PIXEL_SIZE_HELP}; default: the file's DICOM pixel "
        "spacing or TIFF resolution, if any",
    )
    p.add_argument(
        "--magnification", type=float, default=1.0, help="magnification (bars; default 1)"
    )
    p.add_argument(
        "--roi", nargs=4, type=int, metavar=("R0", "R1", "C0", "C1"), help="edge ROI (px)"
    )
    p.add_argument(
        "--bars",
        nargs="+",
        action="append",
        metavar="auto | R0 R1 C0 C1 FREQ",
        help="bar groups: 'auto' (detect them), or one group per --bars: region (px, "
        "half-open) and frequency (lp/mm with --pixel-size, else cycles/px)",
    )
    p.add_argument(
        "--bar-frequencies",
        nargs="+",
        type=float,
        metavar="FREQ",
        help="bar groups by frequency only (lp/mm with --pixel-size, else cycles/px): "
        "the detected group nearest each",
    )
    p.add_argument("--threshold", type=float, default=0.2, help="bar modulation threshold")
    p.add_argument(
        "--n-bars",
        type=int,
        default=None,
        help="bars per group (3 or 5 on the papers' cards): also fit each group with a "
        "model of that many blurred bars (mtf_finite, limit_frequency_finite)",
    )
    p.add_argument("--bootstrap", type=int, default=50, help="edge bootstrap resamples")
    p.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    p.set_defaults(func=run)


def read_image(path: Path):
    """One 2-D image from a .tif/.tiff, .npy or DICOM file.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    FileFormatError
        An unsupported suffix, a file its reader cannot decode (truncated,
        garbage, no pixel data, an object array), or not one 2-D numeric image.
    """
    import numpy as np

    from ..exceptions import FileFormatError

    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    kinds = {".tif": "TIFF", ".tiff": "TIFF", ".npy": "NumPy", ".dcm": "DICOM", ".dicom": "DICOM"}
    if suffix not in kinds:
        raise FileFormatError(f"unsupported image type {path.name!r} (.tif, .npy, .dcm)")
    try:
        if kinds[suffix] == "TIFF":
            import tifffile

            img = tifffile.imread(path)
        elif kinds[suffix] == "NumPy":
            img = np.load(path, allow_pickle=False)
        else:
            import pydicom
            from pydicom.uid import ImplicitVRLittleEndian

            ds = pydicom.dcmread(path, force=True)
            if "TransferSyntaxUID" not in ds.file_meta:
                ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            img = ds.pixel_array
    except MemoryError:
        raise
    except Exception as e:  # each reader has its own zoo of exceptions for a broken file
        detail = " ".join(str(e).split()) or type(e).__name__
        raise FileFormatError(f"{path}: cannot read as {kinds[suffix]} ({detail})") from None
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2:
        raise FileFormatError(f"{path.name} holds shape {img.shape}, expected one 2-D image")
    if not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)):
        raise FileFormatError(f"{path.name} holds {img.dtype} values, expected a numeric image")
    return img


def _bar_groups(args):
    """``groups`` for bar_mtf from --bars / --bar-frequencies."""
    from ..exceptions import ParameterError

    if args.bar_frequencies:
        if args.bars:
            raise ParameterError("give either --bars or --bar-frequencies, not both")
        return list(args.bar_frequencies)
    if len(args.bars) == 1 and args.bars[0] == ["auto"]:
        return "auto"
    groups = []
    for g in args.bars:
        if len(g) != 5:
            raise ParameterError(f"--bars takes 'auto' or R0 R1 C0 C1 FREQ, got {' '.join(g)!r}")
        try:
            r0, r1, c0, c1 = (int(v) for v in g[:4])
            groups.append(((r0, r1, c0, c1), float(g[4])))
        except ValueError as e:
            raise ParameterError(f"--bars {' '.join(g)}: {e}") from e
    return groups


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import mtf
    from .._json import write_json
    from ..io import pixel_size_from_file
    from ..io.atomic import atomic_path
    from ..units import resolve_pixel_size

    img = read_image(args.image)
    pixel_size, _ = resolve_pixel_size(args.pixel_size, pixel_size_from_file(args.image))
    if args.bars or args.bar_frequencies:
        res = mtf.bar_mtf(
            img,
            groups=_bar_groups(args),
            pixel_size=pixel_size,
            magnification=args.magnification,
            threshold=args.threshold,
            n_threads=args.threads,
            n_bars=args.n_bars,
        )
    else:
        res = mtf.edge_mtf(
            img,
            roi=args.roi,
            pixel_size=pixel_size,
            n_bootstrap=args.bootstrap,
            n_threads=args.threads,
        )
    report = {"image": str(args.image), **res.to_dict()}
    png = args.output.with_suffix(".png")
    write_json(args.output, report)
    bars = bool(args.bars or args.bar_frequencies)
    fig = res.plot(image=img) if bars else res.plot()  # bars: the regions drawn on the image
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    print(f"wrote {args.output} and {png}")
    return 0
