//! Bindings of the mtf kernels.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use scintomo_core::mtf;

use crate::util::run;

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

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mtf_row_centroids, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_bin_esf, m)?)?;
    m.add_function(wrap_pyfunction!(mtf_row_shifts, m)?)?;
    Ok(())
}
