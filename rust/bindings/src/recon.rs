//! Bindings of the recon kernels.

use numpy::{IntoPyArray, PyArray2, PyArray3, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;
use scintomo_core::recon::{self, Filter, Geometry};
use scintomo_core::CoreError;

use crate::errors::PyCoreError;
use crate::util::run;

/// Reconstruct (angle, row, column) float32 projections into (row, n_out,
/// n_out) float32 slices with the built-in FBP or gridding.
#[pyfunction]
#[pyo3(signature = (projections, theta, weights, centers, *, algorithm, filter, n_out, pad_len,
                    mask_radius = None, kernel_width = 5, grid_len = None, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn recon_builtin<'py>(
    py: Python<'py>,
    projections: PyReadonlyArray3<'py, f32>,
    theta: Vec<f64>,
    weights: Vec<f64>,
    centers: Vec<f64>,
    algorithm: &str,
    filter: &str,
    n_out: usize,
    pad_len: usize,
    mask_radius: Option<f64>,
    kernel_width: usize,
    grid_len: Option<usize>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let filter = Filter::parse(filter).map_err(PyCoreError)?;
    let geo = Geometry {
        theta,
        weights,
        centers,
        n_out,
        pad_len,
        mask_radius,
        filter,
    };
    let v = projections.as_array();
    let out = match algorithm {
        "fbp" => run(py, n_threads, || recon::fbp(v, &geo))?,
        "gridrec" => run(py, n_threads, || {
            recon::gridrec_on(v, &geo, kernel_width, grid_len)
        })?,
        o => {
            return Err(
                PyCoreError(CoreError::parameter(format!("unknown algorithm {o:?}"))).into(),
            )
        }
    };
    Ok(out.into_pyarray(py))
}

/// Median over `size` columns along each row, edges mirrored.
#[pyfunction]
#[pyo3(signature = (a, size, *, n_threads = None))]
fn median_rows<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f32>,
    size: usize,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let v = a.as_array();
    Ok(run(py, n_threads, || recon::stripe::median_rows(v, size))?.into_pyarray(py))
}

type Three<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
);

/// (sorted, median-smoothed sorted, smoothed back in the original order).
#[pyfunction]
#[pyo3(signature = (sino, size, *, n_threads = None))]
fn sort_median<'py>(
    py: Python<'py>,
    sino: PyReadonlyArray2<'py, f32>,
    size: usize,
    n_threads: Option<usize>,
) -> PyResult<Three<'py>> {
    let v = sino.as_array();
    let (a, b, c) = run(py, n_threads, || recon::stripe::sort_median(v, size))?;
    Ok((a.into_pyarray(py), b.into_pyarray(py), c.into_pyarray(py)))
}

/// Paganin phase retrieval of an (image, row, column) float32 stack of
/// transmissions; lengths in metres.
#[pyfunction]
#[pyo3(signature = (stack, *, pixel_size, distance, wavelength, delta_beta, pad = true,
                    log = true, n_threads = None))]
#[allow(clippy::too_many_arguments)]
fn paganin<'py>(
    py: Python<'py>,
    stack: PyReadonlyArray3<'py, f32>,
    pixel_size: f64,
    distance: f64,
    wavelength: f64,
    delta_beta: f64,
    pad: bool,
    log: bool,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let p = recon::phase::Paganin {
        pixel_size,
        distance,
        wavelength,
        delta_beta,
        pad,
        log,
    };
    let v = stack.as_array();
    Ok(run(py, n_threads, || recon::phase::paganin(v, &p))?.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(paganin, m)?)?;
    m.add_function(wrap_pyfunction!(recon_builtin, m)?)?;
    m.add_function(wrap_pyfunction!(median_rows, m)?)?;
    m.add_function(wrap_pyfunction!(sort_median, m)?)?;
    Ok(())
}
