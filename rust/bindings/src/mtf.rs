//! Bindings of the mtf kernels.

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use scintomo_core::mtf::edge_fit;

use crate::util::{run, Image2};
use crate::with_view;

/// Sums of |horizontal| and |vertical| neighbour differences (uint16/float32/float64).
#[pyfunction]
#[pyo3(signature = (image, *, n_threads = None))]
fn mtf_gradient_sums(
    py: Python<'_>,
    image: Image2<'_>,
    n_threads: Option<usize>,
) -> PyResult<(f64, f64)> {
    with_view!(image, Image2, |v| run(py, n_threads, || Ok(
        edge_fit::gradient_sums(v)
    )))
}

/// Slanted-edge geometry in one call (ISO centroids, windowed centroids,
/// matched-filter refinement to convergence, projection, flat noise); returns a
/// dict: coeffs (ascending powers of the row), rows_used, edges (per row),
/// sums, psum, counts, origin, iterations, converged, sign, noise.
#[pyfunction]
#[pyo3(signature = (image, *, fit_order = 1, oversampling = 4, max_refine = 20, tol_px = 1e-3, n_threads = None))]
fn mtf_fit_edge<'py>(
    py: Python<'py>,
    image: Image2<'py>,
    fit_order: usize,
    oversampling: usize,
    max_refine: usize,
    tol_px: f64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let f = with_view!(image, Image2, |v| run(py, n_threads, || {
        edge_fit::fit_edge(v, fit_order, oversampling, max_refine, tol_px)
    }))?;
    let d = PyDict::new(py);
    d.set_item("coeffs", f.coeffs)?;
    d.set_item("rows_used", f.rows_used)?;
    d.set_item("edges", f.edges.into_pyarray(py))?;
    d.set_item("sums", f.sums.into_pyarray(py))?;
    d.set_item("psum", f.psum.into_pyarray(py))?;
    d.set_item("counts", f.counts.into_pyarray(py))?;
    d.set_item("origin", f.origin)?;
    d.set_item("iterations", f.iterations)?;
    d.set_item("converged", f.converged)?;
    d.set_item("sign", f.sign)?;
    d.set_item("noise", f.noise)?;
    Ok(d)
}

/// Bootstrap over rows of the projected ESF: (n_boot, nb) bin means on the
/// regular grid ``origin + (i + 0.5) / oversampling`` (px); only offsets in
/// ``[lo, hi]`` px are projected.
#[pyfunction]
#[pyo3(signature = (image, edges, order, origin, nb, oversampling, n_boot, seed, *, lo = f64::NEG_INFINITY, hi = f64::INFINITY, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn mtf_bootstrap_esf<'py>(
    py: Python<'py>,
    image: Image2<'py>,
    edges: PyReadonlyArray1<'py, f64>,
    order: usize,
    origin: f64,
    nb: usize,
    oversampling: usize,
    n_boot: usize,
    seed: u64,
    lo: f64,
    hi: f64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let e = edges.as_slice()?.to_vec();
    let out = with_view!(image, Image2, |v| run(py, n_threads, || {
        edge_fit::bootstrap_esf(v, &e, order, origin, nb, oversampling, n_boot, seed, lo, hi)
    }))?;
    let arr = ndarray::Array2::from_shape_vec((n_boot, nb), out)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mtf_gradient_sums, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_fit_edge, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_bootstrap_esf, m)?)?;
    register_bars(m)?;
    Ok(())
}

// --- bars ---

use scintomo_core::mtf::bars;

type Stats<'py> = (
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<f64>>,
);

/// Local spectra for bar-group detection: per window (strip, position) the
/// peak frequency (cycles/px), the concentration of the AC power around it and
/// the peak power per sample; `transpose`: profiles along the image columns.
#[pyfunction]
#[pyo3(signature = (image, window, strip, strip_step, window_step, *, transpose = false, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn mtf_bar_window_stats<'py>(
    py: Python<'py>,
    image: Image2<'py>,
    window: usize,
    strip: usize,
    strip_step: usize,
    window_step: usize,
    transpose: bool,
    n_threads: Option<usize>,
) -> PyResult<Stats<'py>> {
    let st = with_view!(image, Image2, |v| run(py, n_threads, || {
        bars::window_stats(v, transpose, window, strip, strip_step, window_step)
    }))?;
    Ok((
        st.freq.into_pyarray(py),
        st.conc.into_pyarray(py),
        st.power.into_pyarray(py),
    ))
}

type Contrasts<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<bool>>,
);

/// Per bar group (`rois` = [(r0, r1, c0, c1)], `freqs` in cycles/px,
/// `orientation` 0 auto / 1 vertical / 2 horizontal): (max, min) of the folded
/// profile's per-bin medians, the (refined) frequency and whether the bars are
/// vertical.
#[pyfunction]
#[pyo3(signature = (image, rois, freqs, orientation, *, refine = true, n_bins = None, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn mtf_bar_contrasts<'py>(
    py: Python<'py>,
    image: Image2<'py>,
    rois: Vec<[usize; 4]>,
    freqs: Vec<f64>,
    orientation: Vec<u8>,
    refine: bool,
    n_bins: Option<usize>,
    n_threads: Option<usize>,
) -> PyResult<Contrasts<'py>> {
    let orient: Vec<bars::Orientation> = orientation
        .iter()
        .map(|o| match o {
            1 => bars::Orientation::Vertical,
            2 => bars::Orientation::Horizontal,
            _ => bars::Orientation::Auto,
        })
        .collect();
    let r = with_view!(image, Image2, |v| run(py, n_threads, || {
        bars::group_contrasts(v, &rois, &freqs, &orient, refine, n_bins)
    }))?;
    let hi: Vec<f64> = r.iter().map(|g| g.hi).collect();
    let lo: Vec<f64> = r.iter().map(|g| g.lo).collect();
    let f: Vec<f64> = r.iter().map(|g| g.freq).collect();
    let vert: Vec<bool> = r.iter().map(|g| g.vertical).collect();
    Ok((
        hi.into_pyarray(py),
        lo.into_pyarray(py),
        f.into_pyarray(py),
        vert.into_pyarray(py),
    ))
}

/// Region growing over the window grid: label per cell (-1: not `ok`), seeds
/// by decreasing score, 8-neighbours within `tol` (relative) of the seed's
/// frequency.
#[pyfunction]
#[pyo3(signature = (ok, freq, score, tol))]
fn mtf_bar_regions<'py>(
    py: Python<'py>,
    ok: PyReadonlyArray2<'py, bool>,
    freq: PyReadonlyArray2<'py, f64>,
    score: PyReadonlyArray2<'py, f64>,
    tol: f64,
) -> PyResult<Bound<'py, PyArray2<i64>>> {
    let (o, f, s) = (ok.as_array(), freq.as_array(), score.as_array());
    let l = run(py, None, || bars::grow_regions(o, f, s, tol))?;
    Ok(l.into_pyarray(py))
}

fn register_bars(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mtf_bar_regions, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_bar_window_stats, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_bar_contrasts, m)?)?;
    Ok(())
}
