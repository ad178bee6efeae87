"""Pass-through to TomoPy (https://tomopy.readthedocs.io), used when installed.

TomoPy's conventions, checked against TomoPy 1.15 (built from its repository)
and handled here:

- threads: TomoPy threads itself; ``ncore`` is passed through and scintomo
  does not wrap the call in its own pool.
- centre: the same convention as scintomo's (column index of the axis, pixel
  centres at integers), passed unchanged (shifted by the padding). TomoPy's
  gridrec reconstructs two rows at once and uses the *first* row's centre for
  both, so rows are sent in runs of equal centre (one call per run).
- padding: ``tomopy.recon`` does not pad; unpadded gridrec wraps around
  (TomoPy issue #481), so projections are padded here with edge values.
- output grid: TomoPy's gridrec puts the rotation axis on output pixel
  ``P // 2`` of a P-wide grid (its fbp: on (P - 1) / 2 in columns, half a
  pixel higher in rows), scintomo on ``(n - 1) / 2``. The padding puts it as
  close as whole pixels can, and the rest (half a pixel) is taken up by
  shifting each projection by tx cos(theta) + ty sin(theta) (a phase ramp),
  which translates the image: the slices come out on scintomo's grid. The
  padding and the shift are one pass into one float32 buffer (float32 FFTs
  of the padded width, on ``n_threads``): the wrapper costs a few per cent of
  TomoPy's own time (``benches/test_bench_recon.py``), where padding with
  ``np.pad`` and shifting in float64 at twice the width cost as much as
  TomoPy itself.
- ``fbp``: TomoPy's "fbp" back-projects without filtering ("Filtering is not
  implemented for fbp"); the projections are filtered here (the same windowed
  band-limited ramp as the built-in FBP, angle weights included), so the
  result is a true FBP on scintomo's scale.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ParameterError

_WINDOWS = {
    "ramp": lambda f: np.ones_like(f),
    "ramlak": lambda f: np.ones_like(f),
    "shepp": lambda f: np.sinc(f),
    "cosine": lambda f: np.cos(np.pi * f),
    "hamming": lambda f: 0.54 + 0.46 * np.cos(2 * np.pi * f),
    "hann": lambda f: 0.5 + 0.5 * np.cos(2 * np.pi * f),
    "parzen": lambda f: np.where(
        2 * np.abs(f) <= 0.5,
        1 - 6 * (2 * f) ** 2 + 6 * np.abs(2 * f) ** 3,
        2 * (1 - np.abs(2 * f)) ** 3,
    ),
}


def ramp_response(filter_name: str, n: int) -> np.ndarray:
    """Frequency response (rfft order, length n // 2 + 1) of the band-limited
    ramp of Kak and Slaney times the window, as the built-in kernels use."""
    h = np.zeros(n)
    h[0] = 0.25
    k = np.arange(1, n // 2 + 1, 2)
    h[k] = -1.0 / (np.pi * k) ** 2
    h[n - k] = h[k]
    f = np.fft.rfftfreq(n)
    return np.fft.rfft(h).real * _WINDOWS[filter_name](f)


def _pads(n_det: int, pad_len: int, algorithm: str) -> tuple[int, int]:
    """Left and right pad (see the module docstring). gridrec: an even total
    width whose middle pixel is the axis pixel closest to (n_det - 1) / 2
    (odd n: one column more on the left than on the right); others and
    unpadded even widths: symmetric. No more than needed: TomoPy's grid is
    the next power of two >= the width, so one extra column can double it."""
    left = max(0, (pad_len - n_det) // 2)
    if algorithm != "gridrec" or n_det % 2 == 0:
        return left, left
    return (left, left - 1) if left else (1, 0)


def _padded(proj, left: int, right: int) -> np.ndarray:
    """Projections (A, R, N) padded with edge values into a new float32
    array (A, R, left + N + right): one pass, the caller's array untouched."""
    a, r, n = proj.shape
    out = np.empty((a, r, left + n + right), dtype=np.float32)
    out[:, :, left : left + n] = proj
    out[:, :, :left] = proj[:, :, :1]
    out[:, :, left + n :] = proj[:, :, n - 1 :]
    return out


def _shift_in_place(proj, theta, tx, ty, n_threads) -> None:
    """Shift padded projections (A, R, M), owned by the caller, by
    tx cos(theta) + ty sin(theta) columns with a phase ramp at length M, in
    float32. The wrap-around joins the two edge values, one pad width away
    from the data (as the zero padding to 2 M did)."""
    import scipy.fft

    m = proj.shape[2]
    th = np.asarray(theta, dtype=np.float64)
    shift = tx * np.cos(th) + ty * np.sin(th)
    # exp(-2 pi i shift k / m) as powers of one step per angle (float64
    # products: ~1e-13 after m / 2 steps), not an exp per entry.
    h = np.empty((th.size, m // 2 + 1), dtype=np.complex128)
    h[:, 0] = 1.0
    h[:, 1:] = np.exp(-2j * np.pi * shift / m)[:, None]
    h = np.cumprod(h, axis=1).astype(np.complex64)
    workers = n_threads or -1
    for r in range(proj.shape[1]):  # one row at a time: bounded memory
        spec = scipy.fft.rfft(proj[:, r], axis=1, workers=workers)
        spec *= h
        proj[:, r] = scipy.fft.irfft(spec, n=m, axis=1, workers=workers)


def _filter_and_shift(proj, theta, weights, fname, tx, ty) -> np.ndarray:
    """Projections (A, R, M) shifted by tx cos(theta) + ty sin(theta) columns
    (a phase ramp: exact for band-limited data) and, when ``fname`` is
    given, filtered by the windowed ramp and weighted per angle (fbp)."""
    m = proj.shape[2]
    nf = 1 << int(np.ceil(np.log2(2 * m)))
    f = np.fft.rfftfreq(nf)
    th = np.asarray(theta, dtype=np.float64)
    shift = tx * np.cos(th) + ty * np.sin(th)
    h = np.exp(-2j * np.pi * shift[:, None] * f[None, :])
    if fname is not None:
        h = h * ramp_response(fname, nf)[None, :] * np.asarray(weights, np.float64)[:, None]
    out = np.empty(proj.shape, dtype=np.float32)
    for r in range(proj.shape[1]):  # one row at a time: bounded memory
        spec = np.fft.rfft(proj[:, r], n=nf, axis=1) * h
        out[:, r] = np.fft.irfft(spec, n=nf, axis=1)[:, :m]
    return out


def recon_tomopy(
    proj,
    theta,
    centers,
    weights,
    *,
    algorithm,
    filter,  # noqa: A002
    pad_len,
    mask_ratio,
    n_threads,
    **kwargs,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Reconstruct with ``tomopy.recon``; returns the slices and the
    (row, column) output pixel of the rotation axis."""
    try:
        import tomopy
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise ParameterError(
            "backend='tomopy' but TomoPy is not installed (conda install -c conda-forge tomopy)"
        ) from e
    n_det = proj.shape[2]
    left, right = _pads(n_det, pad_len, algorithm)
    own = bool(left or right)
    if own:
        proj = _padded(proj, left, right)
    else:
        proj = np.ascontiguousarray(proj, dtype=np.float32)
    opts = dict(kwargs)
    if "num_gridx" in opts or "num_gridy" in opts:
        raise ParameterError("num_gridx / num_gridy: the slices are the detector's width here")
    if algorithm == "gridrec" and "filter_name" not in opts:
        opts["filter_name"] = filter
    width = proj.shape[2]
    # Where TomoPy will put the axis in the cropped slice (row, column) ...
    if algorithm == "gridrec":
        axis = (width // 2 - left, width // 2 - left)
    else:
        axis = ((width - 1) / 2 - left - 0.5, (width - 1) / 2 - left)
    # ... and the image translation (x right, y up, pixels) that moves it to
    # scintomo's (n - 1) / 2: each projection shifted by tx cos + ty sin.
    mid = (n_det - 1) / 2.0
    tx, ty = mid - axis[1], axis[0] - mid
    fname = opts.pop("filter_name", filter) if algorithm == "fbp" else None
    if fname is not None and fname not in _WINDOWS:
        raise ParameterError(f"filter {fname!r} is not available for TomoPy's fbp here")
    if fname is not None:
        proj = _filter_and_shift(proj, theta, weights, fname, tx, ty)
    elif tx or ty:
        if not own:
            proj = proj.copy()  # never the caller's array
        _shift_in_place(proj, theta, tx, ty, n_threads)
    c = np.asarray(centers, dtype=np.float64) + left
    th = np.asarray(theta, dtype=np.float32)
    # Runs of rows with one centre: TomoPy's gridrec uses one centre per pair.
    cuts = [0] + [i for i in range(1, len(c)) if c[i] != c[i - 1]] + [len(c)]
    parts = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        parts.append(
            tomopy.recon(
                proj[:, a:b],
                th,
                center=np.full(b - a, c[a], dtype=np.float32),
                algorithm=algorithm,
                ncore=n_threads,
                **opts,
            )
        )
    rec = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    if algorithm == "gridrec":
        # Rows run downwards: TomoPy's axis row is width // 2 - 1 in its
        # slice; cropping the rows one higher puts it on the column's index
        # (unpadded: roll the rows by one; the wrapped row is outside the disc).
        if left:
            rec = rec[:, left - 1 : left - 1 + n_det, left : left + n_det]
        else:
            rec = np.roll(rec[:, :n_det, :n_det], 1, axis=1)
    else:
        rec = rec[:, left : left + n_det, left : left + n_det]
    if mask_ratio is None:
        return np.ascontiguousarray(rec, dtype=np.float32), (mid, mid)
    # As the built-in mask: centred on (n - 1) / 2, radius ratio x n / 2;
    # applied in the copy that crops.
    out = np.zeros((rec.shape[0], n_det, n_det), dtype=np.float32)
    r2 = (mask_ratio * n_det / 2.0) ** 2
    for y in range(n_det):  # the columns inside the circle on each row
        d2 = r2 - (y - mid) ** 2
        if d2 >= 0:
            c0 = max(0, int(np.ceil(mid - np.sqrt(d2))))
            c1 = min(n_det, int(np.floor(mid + np.sqrt(d2))) + 1)
            out[:, y, c0:c1] = rec[:, y, c0:c1]
    return out, (mid, mid)
