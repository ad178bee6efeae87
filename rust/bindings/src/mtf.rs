//! Bindings of the mtf kernels.

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use scintomo_core::mtf;
use scintomo_core::mtf::edge_fit;

use crate::util::{run, Image2};
use crate::with_view;

/// Per-row centroid (px) of the Hamming-windowed row derivative of a float64 image.
#[pyfunction]
#[pyo3(signature = (image, *, n_threads = None))]
fn mtf_row_centroids<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f64>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let v = image.as_array();
    let out = run(py, n_threads, || mtf::row_centroids(v))?;
    Ok(out.into_pyarray(py))
}

type Binned<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<u64>>,
    f64,
);

/// Sums and counts per 1/oversampling-px bin of `col - edge(row)`, with
/// `edge(row) = sum_k coeffs[k] row^k`; returns (sums, offset_sums, counts, origin_px).
#[pyfunction]
#[pyo3(signature = (image, coeffs, rows, oversampling, *, n_threads = None))]
fn mtf_bin_esf<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f64>,
    coeffs: Vec<f64>,
    rows: usize,
    oversampling: usize,
    n_threads: Option<usize>,
) -> PyResult<Binned<'py>> {
    let v = image.as_array();
    let (s, p, c, o) = run(py, n_threads, || {
        mtf::bin_esf(v, &coeffs, rows, oversampling)
    })?;
    Ok((
        s.into_pyarray(py),
        p.into_pyarray(py),
        c.into_pyarray(py),
        o,
    ))
}

/// Least-squares per-row shift (px) of the rows against a tabulated ESF.
#[pyfunction]
#[pyo3(signature = (image, coeffs, rows, origin, step, esf, grad, *, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn mtf_row_shifts<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, f64>,
    coeffs: Vec<f64>,
    rows: usize,
    origin: f64,
    step: f64,
    esf: Vec<f64>,
    grad: Vec<f64>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let v = image.as_array();
    let out = run(py, n_threads, || {
        mtf::row_shifts(v, &coeffs, rows, origin, step, &esf, &grad)
    })?;
    Ok(out.into_pyarray(py))
}

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
    m.add_function(wrap_pyfunction!(mtf_row_centroids, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_bin_esf, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_row_shifts, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_gradient_sums, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_fit_edge, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_bootstrap_esf, m)?)?;
    Ok(())
}
