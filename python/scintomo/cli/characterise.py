"""scintomo characterise MODE ...: detector figures from image files.

Modes: nps (NNPS of flat frames), uniformity (profiles, NU, DSNU/PRNU),
afterglow (per-pixel decay fit, decay-time map, latent image), light-yield
(against a reference scintillator), absorption (absorbed fraction vs
thickness and energy). Figures go to a JSON file (-o), maps to --maps (.npz),
a plot to --plot (.png); all written atomically. 'scintomo characterise MODE
--help' lists each mode's options.
"""

from __future__ import annotations

from pathlib import Path

from ..units import LENGTH_HELP, PIXEL_SIZE_HELP, length_arg, pixel_size_arg


def _read_stack(path: Path):
    """A numeric image stack from a .tif/.tiff or .npy file (FileFormatError if broken)."""
    import numpy as np

    from ..exceptions import FileFormatError

    suffix = path.suffix.lower()
    if suffix not in (".tif", ".tiff", ".npy"):
        raise FileFormatError(f"{path}: read .tif/.tiff or .npy stacks, not {suffix!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if suffix in (".tif", ".tiff"):
        from ..io import read_tiff_pages  # every page, in one dtype that holds them all

        data = read_tiff_pages(path)
        data = data[0] if len(data) == 1 else data
    else:
        try:
            data = np.load(path, allow_pickle=False)
        except MemoryError:
            raise
        except Exception as e:  # numpy raises many kinds on a broken file
            detail = " ".join(str(e).split()) or type(e).__name__
            raise FileFormatError(f"{path}: cannot read as NumPy ({detail})") from None
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise FileFormatError(f"{path}: holds {data.dtype} values, expected numeric images")
    return data


def _write_outputs(args, result, maps=None) -> None:
    from .._json import write_json
    from ..io.atomic import atomic_path

    d = result.to_dict()
    if args.output is not None:
        write_json(args.output, d, indent=1)
    if getattr(args, "maps", None) is not None and maps:
        import numpy as np

        with atomic_path(args.maps) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **maps)
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = result.plot()
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        with atomic_path(args.plot) as tmp:
            fig.savefig(
                tmp, format=args.plot.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight"
            )
        plt.close(fig)


def _summary(d: dict, keys) -> str:
    return ", ".join(
        f"{k} = {d[k]:.6g}" if isinstance(d.get(k), float) else f"{k} = {d.get(k)}" for k in keys
    )


def add_parser(sub) -> None:
    p = sub.add_parser(
        "characterise",
        help="detector figures: NPS, uniformity, afterglow, light yield",
        description=__doc__,
    )
    modes = p.add_subparsers(
        dest="mode",
        metavar="MODE",
        required=True,
        help="one of these; 'scintomo characterise MODE --help' lists its options",
    )

    def common(q):
        q.add_argument(
            "-o", "--output", type=Path, metavar="JSON", help="write the figures as JSON"
        )
        q.add_argument("--plot", type=Path, metavar="FILE", help="save a plot (.png, .pdf, .svg)")

    def threads(q):
        q.add_argument(
            "--threads", type=int, default=None, metavar="N", help="threads (default: all cores)"
        )

    q = modes.add_parser(
        "nps",
        help="normalised noise power spectrum (IEC 62220-1-1) of flat frames",
        description="Normalised noise power spectrum (NNPS, IEC 62220-1-1) of flat frames "
        "with a linear signal: overlapping square ROIs, a 2-D polynomial (degree 2) "
        "subtracted, spectra averaged over ROIs and frames, 1-D cuts along the axes; "
        "frequencies in lp/mm, NNPS in mm^2.",
    )
    q.add_argument("frames", type=Path, help="flat frames (.tif stack or .npy), linear signal")
    q.add_argument(
        "--pixel-size",
        type=pixel_size_arg,
        metavar="SIZE",
        help=f"{PIXEL_SIZE_HELP}; default: the TIFF's resolution tags, if any",
    )
    q.add_argument("--roi", type=int, default=256, metavar="PX", help="side of the square ROIs, px")
    q.add_argument(
        "--overlap", type=float, default=0.5, help="overlap of neighbouring ROIs, fraction 0..1"
    )
    q.add_argument(
        "--detrend",
        choices=("frame", "roi"),
        default="frame",
        help="fit the polynomial to each whole frame (IEC 62220-1-1:2015) or to each ROI",
    )
    q.add_argument(
        "--region",
        default=None,
        help="analysed area: 'iec' (central 125 mm x 125 mm) or ROW0,ROW1,COL0,COL1 (pixels)",
    )
    threads(q)
    common(q)
    q.set_defaults(func=_nps)

    q = modes.add_parser(
        "uniformity",
        help="profiles, global/local non-uniformity, DSNU/PRNU (EMVA 1288)",
        description="Flat-field uniformity: row and column profiles, global and local "
        "non-uniformity over a grid of cells, and with darks the DSNU and PRNU (EMVA 1288).",
    )
    q.add_argument("flats", type=Path, help="flat frames (.tif stack or .npy)")
    q.add_argument("--darks", type=Path, help="dark frames (.tif stack or .npy): DSNU and PRNU")
    q.add_argument(
        "--grid",
        type=int,
        nargs=2,
        default=(8, 8),
        metavar=("GY", "GX"),
        help="cells down and across for the local non-uniformity",
    )
    common(q)
    q.set_defaults(func=_uniformity)

    q = modes.add_parser(
        "afterglow",
        help="per-pixel decay fit, decay-time map, latent image",
        description="Afterglow of a scintillator after the beam is switched off: a decay "
        "model fitted to every pixel of a frame series (a global fit gives the decay times), "
        "the decay-time map and the latent image.",
    )
    q.add_argument(
        "frames", type=Path, help="frames after the exposure, in time order (.tif stack or .npy)"
    )
    q.add_argument("--frame-time", type=float, required=True, help="interval between frames (s)")
    q.add_argument(
        "--start", type=float, default=0.0, help="time of the first frame after the exposure (s)"
    )
    q.add_argument(
        "--model",
        choices=("exponential", "hyperbolic", "multiexponential"),
        default="exponential",
        help="decay model",
    )
    q.add_argument(
        "--exponent", type=float, default=1.0, help="hyperbolic model: the decay's exponent"
    )
    q.add_argument(
        "--components",
        type=int,
        default=2,
        metavar="N",
        help="multiexponential model: number of decay times",
    )
    q.add_argument("--maps", type=Path, help="write amplitude, tau, offset, latent maps (.npz)")
    threads(q)
    common(q)
    q.set_defaults(func=_afterglow)

    q = modes.add_parser(
        "light-yield",
        help="light yield against a reference scintillator",
        description="Light yield of a film from its integrated radioluminescence relative to "
        "a reference scintillator measured the same way, corrected for the energy each "
        "absorbs from a Kramers tube spectrum.",
    )
    q.add_argument("--signal", type=float, required=True, help="integrated RL of the sample")
    q.add_argument(
        "--reference-signal",
        type=float,
        required=True,
        help="integrated RL of the reference, same units and geometry",
    )
    q.add_argument("--material", required=True, help="sample formula, e.g. CsPbBr3")
    q.add_argument("--density", type=float, required=True, help="sample density, g/cm^3")
    q.add_argument(
        "--thickness", type=length_arg, required=True, help=f"sample thickness, {LENGTH_HELP}"
    )
    q.add_argument("--reference-material", default="Lu3Al5O12", help="reference formula")
    q.add_argument(
        "--reference-density", type=float, default=6.73, help="reference density, g/cm^3"
    )
    q.add_argument(
        "--reference-thickness",
        type=length_arg,
        required=True,
        help=f"reference thickness, {LENGTH_HELP}",
    )
    q.add_argument("--reference-light-yield", type=float, default=22000.0, help="photons/MeV")
    q.add_argument("--kvp", type=float, default=50.0, help="Kramers tube spectrum, kV (1 mm Al)")
    common(q)
    q.set_defaults(func=_light_yield)

    q = modes.add_parser(
        "absorption",
        help="absorbed fraction vs thickness and energy",
        description="Fraction of X-rays a film of each thickness attenuates, 1 - exp(-mu t) "
        "with mu the total attenuation coefficient (xraydb), over 5-100 keV.",
    )
    q.add_argument("material", help="formula, e.g. CsPbBr3")
    q.add_argument("--density", type=float, required=True, help="g/cm^3")
    q.add_argument(
        "--thickness",
        type=length_arg,
        nargs="+",
        required=True,
        help=f"film thicknesses, {LENGTH_HELP}",
    )
    common(q)
    q.set_defaults(func=_absorption)


def _region_arg(text):
    if text is None or text == "iec":
        return text
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        from ..exceptions import ParameterError

        raise ParameterError(
            f"--region must be 'iec' or ROW0,ROW1,COL0,COL1, got {text!r}"
        ) from None


def _nps(args) -> int:
    from ..detector import nps
    from ..exceptions import ParameterError
    from ..io import pixel_size_from_file
    from ..units import resolve_pixel_size

    pixel_size, _ = resolve_pixel_size(args.pixel_size, pixel_size_from_file(args.frames))
    if pixel_size is None:
        raise ParameterError(f"{args.frames} states no pixel size; give --pixel-size")
    r = nps(
        _read_stack(args.frames),
        pixel_size=pixel_size,
        roi=args.roi,
        overlap=args.overlap,
        detrend=args.detrend,
        region=_region_arg(args.region),
        n_threads=args.threads,
    )
    _write_outputs(args, r)
    print(
        f"NNPS: {r.n_rois} ROIs of {r.roi} px, mean signal {r.mean_signal:.6g}, "
        f"mean NNPS {float(r.values.mean()):.4g} mm^2 over 0..{r.frequencies[-1]:.4g} lp/mm"
    )
    return 0


def _uniformity(args) -> int:
    from ..detector import uniformity

    darks = _read_stack(args.darks) if args.darks else None
    r = uniformity(_read_stack(args.flats), darks, grid=tuple(args.grid))
    _write_outputs(args, r)
    print(
        "uniformity: "
        + _summary(r.to_dict(), ("global_nonuniformity", "local_nonuniformity", "dsnu", "prnu"))
    )
    return 0


def _afterglow(args) -> int:
    import numpy as np

    from ..detector import afterglow

    frames = _read_stack(args.frames)
    t = args.start + args.frame_time * np.arange(np.asarray(frames).shape[0])
    r = afterglow(
        frames,
        t,
        model=args.model,
        exponent=args.exponent,
        n_components=args.components,
        n_threads=args.threads,
    )
    _write_outputs(
        args, r, {k: getattr(r, k) for k in ("amplitude", "tau", "offset", "rss", "latent")}
    )
    print(
        f"afterglow ({r.model}): global tau {r.global_taus}, "
        f"median pixel tau {float(np.median(r.tau)):.4g} s"
    )
    return 0


def _light_yield(args) -> int:
    from ..detector import light_yield

    r = light_yield(
        args.signal,
        args.reference_signal,
        material=args.material,
        density=args.density,
        thickness=args.thickness,
        reference_material=args.reference_material,
        reference_density=args.reference_density,
        reference_thickness=args.reference_thickness,
        reference_light_yield=args.reference_light_yield,
        kvp=args.kvp,
    )
    _write_outputs(args, r)
    print(
        f"light yield {r.light_yield:.0f} photons/MeV "
        f"(absorbed energy {r.absorbed_fraction:.4f} vs "
        f"reference {r.reference_absorbed_fraction:.4f}); assumptions: " + "; ".join(r.assumptions)
    )
    return 0


def _absorption(args) -> int:
    from ..detector import absorption_efficiency

    r = absorption_efficiency(args.material, density=args.density, thicknesses=args.thickness)
    _write_outputs(args, r)
    for t in (10.0, 20.0, 50.0):
        j = int(abs(r.energies - t).argmin())
        print(
            f"{t:g} keV: "
            + ", ".join(
                f"{th:g} um {v:.3f}" for th, v in zip(r.thicknesses, r.values[:, j], strict=True)
            )
        )
    return 0
