# Type stubs of the Rust extension scintomo._core (checked by
# tests/test_stubs.py with mypy.stubtest). One section per capability.
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__version__: str

def simd_level() -> Literal["avx512", "avx2", "sse2", "generic"]: ...
def max_threads() -> int: ...
def check_memory(nbytes: float, what: str) -> None: ...
def available_memory() -> int | None: ...

# --- flatfield ------------------------------------------------------------

_Counts = tuple[int, int, int, int]

def reduce_frames(
    frames: npt.NDArray[np.uint16] | npt.NDArray[np.float32] | npt.NDArray[np.float64],
    *,
    method: str = "mean",
    what: str = "frames",
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
def flatfield_correct(
    projections: npt.NDArray[np.uint16] | npt.NDArray[np.float32] | npt.NDArray[np.float64] | None,
    flats: npt.NDArray[np.float32],
    dark: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    *,
    positions: list[float],
    interpolation: str,
    eps: float,
    bad_policy: str,
    fill_value: float,
    air: list[int] | None,
    lo: float,
    hi: float,
    log: bool,
    first_index: float,
    n_threads: int | None = None,
) -> _Counts: ...
def minus_log_inplace(
    data: npt.NDArray[np.float32], *, lo: float, hi: float, n_threads: int | None = None
) -> _Counts: ...

# --- recon ---
def recon_builtin(
    projections: npt.NDArray[np.float32],
    theta: list[float],
    weights: list[float],
    centers: list[float],
    *,
    algorithm: str,
    filter: str,
    n_out: int,
    pad_len: int,
    mask_radius: float | None = None,
    kernel_width: int = 5,
    grid_len: int | None = None,
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
def median_rows(
    a: npt.NDArray[np.float32], size: int, *, n_threads: int | None = None
) -> npt.NDArray[np.float32]: ...
def sort_median(
    sino: npt.NDArray[np.float32], size: int, *, n_threads: int | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def paganin(
    stack: npt.NDArray[np.float32],
    *,
    pixel_size: float,
    distance: float,
    wavelength: float,
    delta_beta: float,
    pad: bool = True,
    log: bool = True,
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...

# --- deconv ---------------------------------------------------------------

def richardson_lucy(
    stack: npt.NDArray[np.float32],
    psf: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    mask: npt.NDArray[np.uint8] | None = None,
    *,
    iterations: int,
    boundary: str,
    accelerate: bool,
    tv: float,
    noise: tuple[float, float] | None = None,
    tau: float = 1.0,
    n_threads: int | None = None,
) -> list[tuple[int, bool, list[float]]]: ...
def wiener(
    stack: npt.NDArray[np.float32],
    psf: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    *,
    balance: float,
    boundary: str,
    pad: tuple[int, int] | None = None,
    n_threads: int | None = None,
) -> None: ...

# --- detector ---
_Stack = npt.NDArray[np.uint16] | npt.NDArray[np.float32] | npt.NDArray[np.float64]

def nps_sum(
    frames: _Stack, *, roi: int, step: int, order: int, per_roi: bool, n_threads: int | None = None
) -> tuple[npt.NDArray[np.float64], int, float]: ...
def decay_fit(
    frames: _Stack,
    times: list[float],
    *,
    model: str,
    exponent: float,
    offset: bool,
    k_min: float,
    k_max: float,
    rel_tol: float,
    n_threads: int | None = None,
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
]: ...

# --- mtf ------------------------------------------------------------------

def mtf_gradient_sums(
    image: npt.NDArray[Any], *, n_threads: int | None = None
) -> tuple[float, float]: ...
def mtf_fit_edge(
    image: npt.NDArray[Any],
    *,
    fit_order: int = 1,
    oversampling: int = 4,
    max_refine: int = 20,
    tol_px: float = 1e-3,
    n_threads: int | None = None,
) -> dict[str, Any]: ...
def mtf_bootstrap_esf(
    image: npt.NDArray[Any],
    edges: npt.NDArray[np.float64],
    order: int,
    origin: float,
    nb: int,
    oversampling: int,
    n_boot: int,
    seed: int,
    *,
    lo: float = ...,
    hi: float = ...,
    n_threads: int | None = None,
) -> npt.NDArray[np.float64]: ...

# --- mtf bars ---

def mtf_bar_window_stats(
    image: npt.NDArray[np.uint16] | npt.NDArray[np.float32] | npt.NDArray[np.float64],
    window: int,
    strip: int,
    strip_step: int,
    window_step: int,
    *,
    transpose: bool = False,
    n_threads: int | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def mtf_bar_contrasts(
    image: npt.NDArray[np.uint16] | npt.NDArray[np.float32] | npt.NDArray[np.float64],
    rois: list[tuple[int, int, int, int]],
    freqs: list[float],
    orientation: list[int],
    *,
    refine: bool = True,
    n_bins: int | None = None,
    n_threads: int | None = None,
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.bool_],
]: ...
def mtf_bar_regions(
    ok: npt.NDArray[np.bool_],
    freq: npt.NDArray[np.float64],
    score: npt.NDArray[np.float64],
    tol: float,
) -> npt.NDArray[np.int64]: ...
def cone_fdk(
    projections: npt.NDArray[np.float32],
    theta: list[float],
    weights: npt.NDArray[np.float32],
    *,
    sod: float,
    sdd: float,
    pixel: float,
    center_col: float,
    center_row: float,
    shape: tuple[int, int, int],
    filter: str,
    pad_len: int,
    z_offset: float = 0.0,
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
def cone_project(
    volume: npt.NDArray[np.float32],
    theta: list[float],
    *,
    sod: float,
    sdd: float,
    pixel: float,
    center_col: float,
    center_row: float,
    tilt: float,
    n_rows: int,
    n_cols: int,
    z_offset: float = 0.0,
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
def cone_backproject(
    projections: npt.NDArray[np.float32],
    theta: list[float],
    *,
    sod: float,
    sdd: float,
    pixel: float,
    center_col: float,
    center_row: float,
    tilt: float,
    shape: tuple[int, int, int],
    z_offset: float = 0.0,
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
def lab_linearise(
    data: npt.NDArray[np.float32] | None,
    out: npt.NDArray[np.float32],
    *,
    coefficients: list[float],
    p_max: float,
    n_threads: int | None = None,
) -> int: ...
def lab_remap(
    stack: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    rows: npt.NDArray[np.float64],
    cols: npt.NDArray[np.float64],
    *,
    n_threads: int | None = None,
) -> None: ...
def lab_shift(
    stack: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    shifts: npt.NDArray[np.float64],
    *,
    n_threads: int | None = None,
) -> None: ...

# Projector module (recon/project) and iterative reconstruction.
_IterOutcome = tuple[npt.NDArray[np.float32], list[float], list[float], str]

def parallel_project(
    volume: npt.NDArray[np.float32],
    theta: list[float],
    centers: list[float],
    *,
    n_det: int,
    psf: npt.NDArray[np.float32] | None = None,
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
def parallel_backproject(
    projections: npt.NDArray[np.float32],
    theta: list[float],
    centers: list[float],
    *,
    n: int,
    psf: npt.NDArray[np.float32] | None = None,
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
def cone_apply(
    data: npt.NDArray[np.float32],
    theta: list[float],
    *,
    sod: float,
    sdd: float,
    pixel: float,
    center_col: float,
    center_row: float,
    tilt: float,
    shape: tuple[int, int, int],
    n_rows: int,
    n_cols: int,
    z_offset: float = 0.0,
    psf: npt.NDArray[np.float32] | None = None,
    adjoint: bool = False,
    n_threads: int | None = None,
) -> npt.NDArray[np.float32]: ...
def parallel_iterative(
    projections: npt.NDArray[np.float32],
    theta: list[float],
    centers: list[float],
    *,
    n: int,
    algorithm: str,
    iterations: int,
    x0: npt.NDArray[np.float32] | None = None,
    psf: npt.NDArray[np.float32] | None = None,
    weights: npt.NDArray[np.float32] | None = None,
    nonnegative: bool = True,
    tol: float | None = None,
    discrepancy: float | None = None,
    n_subsets: int = 1,
    tv_weight: float = 0.0,
    callback: Any = None,
    callback_x: bool = False,
    n_threads: int | None = None,
) -> _IterOutcome: ...
def cone_iterative(
    projections: npt.NDArray[np.float32],
    theta: list[float],
    *,
    sod: float,
    sdd: float,
    pixel: float,
    center_col: float,
    center_row: float,
    tilt: float,
    shape: tuple[int, int, int],
    z_offset: float = 0.0,
    algorithm: str,
    iterations: int,
    x0: npt.NDArray[np.float32] | None = None,
    psf: npt.NDArray[np.float32] | None = None,
    weights: npt.NDArray[np.float32] | None = None,
    nonnegative: bool = True,
    tol: float | None = None,
    discrepancy: float | None = None,
    n_subsets: int = 1,
    tv_weight: float = 0.0,
    callback: Any = None,
    callback_x: bool = False,
    n_threads: int | None = None,
) -> _IterOutcome: ...
